import { ChorusError } from '../errors.ts'
import { RelayLeaseClient } from '../leases/relay-client.ts'
import type { ReplicatorOptions } from '../sync/replicator.ts'
import { restrictedChannelOf, type ParticipantKind, type RestrictedChannel } from '../schema.ts'
import { connectSpace, type SpaceConnection } from './space-sync.ts'
import { Space, type SpaceOptions } from '../space/space.ts'
import { syncUrl, WebSocketTransport, type WebSocketConstructor, type WebSocketTransportOptions } from './websocket-transport.ts'

export interface RelaySpaceOptions extends Omit<SpaceOptions, 'id' | 'leases'> {
  /** The relay: `http://host:port` (or https, ws, wss). */
  relay: string
  /** The space's name on the relay. */
  space: string
  /** Bearer token, when the relay requires one. */
  token?: string
  /**
   * Who this replica acts for. It decides which restricted channel this replica syncs (`ai-only` for an ai,
   * `human-only` for a human); without it only the main document is shared.
   */
  participant?: { id: string; kind: ParticipantKind }
  /** Defaults to the global `WebSocket` (browsers, Node 22+). */
  WebSocket?: WebSocketConstructor
  /** Passed to each document's WebSocketTransport (backoff, timeouts, status listener). */
  transport?: Omit<WebSocketTransportOptions, 'url' | 'WebSocket'>
  replicator?: ReplicatorOptions
}

/** A space replica shared through a relay, with the relay's leases. */
export interface RelaySpace {
  readonly space: Space
  readonly leases: RelayLeaseClient
  readonly connection: SpaceConnection
  /** The WebSocket transport of each synced document, keyed by document name. */
  readonly transports: ReadonlyMap<string, WebSocketTransport>
  /** Resolves once the main document has synced with the relay (at once if it already has). */
  synced(): Promise<void>
  /** Reconnects at once every document that is waiting to retry (call it when the network comes back). */
  reconnect(): void
  /** Stops syncing, closes the lease connection and destroys the space (its documents stay as they are). */
  close(): Promise<void>
}

/**
 * Opens a space on a relay: a `Space` whose documents sync over WebSocket and whose claims and locks are leases
 * from the relay (renewed automatically, fenced, `lease_lost` events). The way a Node agent joins:
 *
 * ```ts
 * const { space, synced, close } = await openRelaySpace({ relay: 'http://127.0.0.1:8550', space: 'team',
 *   participant: { id: 'bot', kind: 'ai' } })
 * await synced()
 * const bot = space.join({ id: 'bot', name: 'Builder', kind: 'ai' })
 * ```
 */
export async function openRelaySpace(options: RelaySpaceOptions): Promise<RelaySpace> {
  const { relay, token, participant, transport, replicator, WebSocket: WS, ...spaceOptions } = options
  const leases = new RelayLeaseClient({ relay, token, WebSocket: WS })
  const space = new Space({ ...spaceOptions, id: options.space, leases })
  const mine = participant === undefined ? undefined : restrictedChannelOf(participant.kind)
  let connection: SpaceConnection
  const transports = new Map<string, WebSocketTransport>()
  try {
    connection = await connectSpace(
      space,
      (d) => {
        const channel = d.name === space.id ? undefined : (d.name.slice(space.id.length + 1) as RestrictedChannel)
        if (channel !== undefined && channel !== mine) return undefined
        const url = syncUrl(relay, d.name, { token, participant: participant?.id })
        const t = new WebSocketTransport({ ...transport, url, WebSocket: WS })
        transports.set(d.name, t)
        return t
      },
      replicator,
    )
  } catch (e) {
    leases.close()
    space.destroy()
    throw e
  }
  const main = connection.replicators.get(space.id)
  if (main === undefined) throw new ChorusError('closed', 'the main document has no transport')
  return {
    space,
    leases,
    connection,
    transports,
    reconnect: () => {
      for (const t of transports.values()) t.retryNow()
    },
    synced: () => main.whenSynced('relay'),
    close: async () => {
      await connection.stop()
      leases.close()
      space.destroy()
    },
  }
}
