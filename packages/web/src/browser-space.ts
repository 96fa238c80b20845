import * as Y from 'yjs'
import { openRelaySpace, RESTRICTED_CHANNELS, restrictedChannelOf, type ParticipantKind, type RelaySpace, type RelaySpaceOptions, type RestrictedChannel } from '@chorus/sync'
import { OfflineCache } from './offline-cache.ts'

/**
 * - `offline`: no link to the relay (the browser is offline or the relay is down); reads and writes still work.
 * - `connecting`: a link is opening. `syncing`: linked, catching up. `online`: linked and caught up.
 * - `closed`: `close()` was called.
 */
export type ConnectionStatus = 'offline' | 'connecting' | 'syncing' | 'online' | 'closed'

export interface BrowserSpaceOptions extends Omit<RelaySpaceOptions, 'doc' | 'restricted' | 'participant'> {
  /** Who this page acts for: it decides which restricted channel the page holds (a human gets `human-only`). */
  participant: { id: string; kind: ParticipantKind }
  /** Prefix of the IndexedDB database names (default `chorus`); databases are named `<prefix>:<document>`. */
  cachePrefix?: string
  /** Told every change of the connection status. */
  onStatus?: (status: ConnectionStatus) => void
}

export interface BrowserSpace extends RelaySpace {
  /** The link to the relay right now. */
  readonly status: ConnectionStatus
  /** Resolves once every change made so far is committed to IndexedDB (safe to close or reload the page). */
  stored(): Promise<void>
}

/** The documents a participant of `kind` holds: the main one and the restricted channel of its kind, if any. */
const documentsFor = (space: string, kind: ParticipantKind): { main: Y.Doc; restricted: Partial<Record<RestrictedChannel, Y.Doc>> } => {
  const channel = restrictedChannelOf(kind)
  return { main: new Y.Doc({ guid: space }), restricted: channel === undefined ? {} : { [channel]: new Y.Doc({ guid: `${space}#${channel}` }) } }
}

/**
 * Opens a space in a browser: its documents load from IndexedDB first (so a page that is offline, or reloaded
 * while offline, shows everything it had), then sync with the relay over WebSocket whenever it is reachable.
 * Claims and locks are leases from the relay, as in Node; without the relay they fail with `lease_unavailable`.
 *
 * ```ts
 * const web = await openBrowserSpace({ relay: location.origin, space: 'team', participant: { id: 'ada', kind: 'human' } })
 * const ada = web.space.join({ id: 'ada', name: 'Ada', kind: 'human' })
 * ada.send('hello from the browser')
 * ```
 */
export async function openBrowserSpace(options: BrowserSpaceOptions): Promise<BrowserSpace> {
  const { cachePrefix = 'chorus', onStatus, transport, ...relayOptions } = options
  const { main, restricted } = documentsFor(options.space, options.participant.kind)
  const names = [options.space, ...Object.keys(restricted).map((c) => `${options.space}#${c}`)]
  const docs = [main, ...Object.values(restricted)]
  const cache = await OfflineCache.open(cachePrefix, names.map((name, i) => ({ name, doc: docs[i] as Y.Doc })))

  let status: ConnectionStatus = 'offline'
  let relaySpace: RelaySpace | undefined
  const update = (): void => {
    if (relaySpace === undefined) return
    const mainTransport = relaySpace.transports.get(options.space)
    const main = relaySpace.connection.replicators.get(options.space)
    let next: ConnectionStatus
    switch (mainTransport?.state) {
      case 'connected':
        next = main?.isSynced('relay') === true ? 'online' : 'syncing'
        break
      case 'connecting':
        next = 'connecting'
        break
      case 'closed':
        next = 'closed'
        break
      default:
        next = 'offline'
    }
    if (next === status) return
    status = next
    onStatus?.(next)
  }

  try {
    relaySpace = await openRelaySpace({
      ...relayOptions,
      doc: main,
      restricted,
      transport: {
        ...transport,
        isOnline: () => globalThis.navigator?.onLine ?? true,
        onStatus: (s) => {
          transport?.onStatus?.(s)
          update()
        },
      },
    })
  } catch (e) {
    await cache.close()
    throw e
  }
  const opened = relaySpace
  const onSynced = (): void => update()
  opened.connection.replicators.get(options.space)?.on('synced', onSynced)
  // The browser knows first: back online, reconnect now rather than at the next backoff; gone offline, drop the
  // sockets, which a browser leaves open (and writes would go nowhere until they time out).
  const onOnline = (): void => opened.reconnect()
  const onOffline = (): void => {
    for (const t of opened.transports.values()) t.dropConnection()
  }
  globalThis.addEventListener?.('online', onOnline)
  globalThis.addEventListener?.('offline', onOffline)
  update()

  return {
    ...opened,
    get status() {
      return status
    },
    stored: () => cache.stored(),
    close: async () => {
      globalThis.removeEventListener?.('online', onOnline)
      globalThis.removeEventListener?.('offline', onOffline)
      opened.connection.replicators.get(options.space)?.off('synced', onSynced)
      await opened.close()
      await cache.stored()
      await cache.close()
      status = 'closed'
      onStatus?.('closed')
    },
  }
}

/** Forgets what this browser stored of a space (every document of it, whatever kind of participant wrote it). */
export const clearStoredSpace = (space: string, cachePrefix = 'chorus'): Promise<void> =>
  OfflineCache.clear(cachePrefix, [space, ...Object.keys(RESTRICTED_CHANNELS).map((c) => `${space}#${c}`)])
