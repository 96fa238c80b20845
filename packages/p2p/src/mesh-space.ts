/**
 * How a Node agent joins a space over libp2p, the way `openRelaySpace` joins over WebSocket:
 *
 * ```ts
 * const { space, synced, close } = await openMeshSpace({ relay: 'http://127.0.0.1:8550', space: 'team',
 *   participant: { id: 'bot', name: 'Builder', kind: 'ai' }, keyFile: '.data/bot/peer.key' })
 * await synced()
 * space.messages.send({ from: 'bot', channel: 'general', content: 'on the mesh' })
 * ```
 *
 * It asks the relay (over HTTP, once) for the participant's memberships and the relay's node, starts a peer that
 * bootstraps from it, and syncs each document it is a member of with whichever members it meets, the relay
 * among them; claims and locks are leases from the relay over libp2p. After that the relay may go away: the peer
 * keeps syncing with the others, and leases fail with `lease_unavailable` until it is back.
 */
import { ChorusError, connectSpace, HUB_ENTITY_TYPES, Space, type ChorusErrorCode, type ParticipantKind, type ReplicatorOptions, type SpaceConnection, type SpaceOptions } from '@chorus/sync'
import { ChorusPeer, type ChorusPeerOptions } from './chorus-peer.ts'
import type { DocumentTransport } from './document-transport.ts'
import { peerLeaseClient, type RelayPeer } from './lease-channel.ts'
import { parseMembership, type Membership } from './membership.ts'
import { ephemeralPeerKey, loadOrCreatePeerKey } from './peer-key.ts'
import type { RelayLeaseClient } from '@chorus/sync'

export interface MeshSpaceOptions extends Omit<SpaceOptions, 'id' | 'leases'> {
  /** The relay's HTTP URL: where memberships come from, and whose node is the bootstrap peer. */
  relay: string
  space: string
  /** Who this peer acts for; registered in the space (as over REST) if it is not yet. */
  participant: { id: string; name: string; kind: ParticipantKind }
  /** Where the peer's key lives, so its peer id stays the same across runs; default a fresh key each run. */
  keyFile?: string
  /** Bearer token, when the relay requires one. */
  token?: string
  /** Listen addresses, mDNS, discovery interval, ... (the key and bootstrap come from the options above). */
  peer?: Omit<ChorusPeerOptions, 'key' | 'bootstrap'>
  replicator?: ReplicatorOptions
}

export interface MeshSpace {
  readonly space: Space
  readonly peer: ChorusPeer
  readonly leases: RelayLeaseClient
  readonly connection: SpaceConnection
  /** The memberships the relay gave, by document. */
  readonly memberships: ReadonlyMap<string, Membership>
  /** The relay's node. */
  readonly relayPeer: RelayPeer
  /** Resolves once the main document has synced with the relay's node. */
  synced(): Promise<void>
  /** Stops syncing, closes the lease client, stops the peer and destroys the space. */
  close(): Promise<void>
}

export async function openMeshSpace(options: MeshSpaceOptions): Promise<MeshSpace> {
  const { relay, space: spaceId, participant, keyFile, token, peer: peerOptions, replicator, ...spaceOptions } = options
  const base = relay.replace(/\/+$/, '')
  const call = async (path: string, body?: unknown): Promise<Record<string, unknown>> => {
    let res: Response
    try {
      res = await fetch(`${base}${path}`, {
        method: body === undefined ? 'GET' : 'POST',
        headers: { 'content-type': 'application/json', ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      })
    } catch (e) {
      throw new ChorusError('lease_unavailable', `could not reach the relay at ${base}: ${e instanceof Error ? e.message : String(e)}`)
    }
    const json = (await res.json().catch(() => ({}))) as Record<string, unknown>
    if (!res.ok) {
      const code = typeof json.error === 'string' ? json.error : 'invalid_input'
      throw new ChorusError(code as ChorusErrorCode, `${path}: ${typeof json.message === 'string' ? json.message : `HTTP ${res.status}`}`)
    }
    return json
  }
  const key = keyFile === undefined ? await ephemeralPeerKey() : await loadOrCreatePeerKey(keyFile)
  const at = `/spaces/${encodeURIComponent(spaceId)}`
  await call(`${at}/entities/register`, { entity_id: participant.id, entity_type: HUB_ENTITY_TYPES[participant.kind], name: participant.name })
  const granted = await call(`${at}/p2p/membership`, { peer_id: key.peerId, entity_id: participant.id })
  const memberships = new Map<string, Membership>(((granted.memberships as unknown[] | undefined) ?? []).map(parseMembership).map((m) => [m.credential.doc, m]))
  const main = memberships.get(spaceId)
  const relayInfo = granted.relay as { peer_id?: unknown; multiaddrs?: unknown } | undefined
  if (main === undefined || typeof relayInfo?.peer_id !== 'string' || !Array.isArray(relayInfo.multiaddrs)) {
    throw new ChorusError('corrupt', `the relay at ${base} gave no membership of ${spaceId}`)
  }
  const relayPeer: RelayPeer = { peerId: relayInfo.peer_id, multiaddrs: relayInfo.multiaddrs.filter((a): a is string => typeof a === 'string') }
  const peer = await ChorusPeer.start({ ...peerOptions, key, bootstrap: [...relayPeer.multiaddrs ?? []] })
  const leases = peerLeaseClient(peer, { relay: relayPeer, membership: main })
  const space = new Space({ ...spaceOptions, id: spaceId, leases })
  const transports: DocumentTransport[] = []
  let connection: SpaceConnection
  try {
    connection = await connectSpace(
      space,
      (d) => {
        const membership = memberships.get(d.name)
        if (membership === undefined) return undefined // a restricted channel of another kind stays local
        const transport = peer.document(membership)
        transports.push(transport)
        return transport
      },
      replicator,
    )
  } catch (e) {
    leases.close()
    await peer.stop()
    space.destroy()
    throw e
  }
  const mainReplicator = connection.replicators.get(spaceId)
  return {
    space,
    peer,
    leases,
    connection,
    memberships,
    relayPeer,
    synced: () => mainReplicator?.whenSynced(relayPeer.peerId) ?? Promise.resolve(),
    close: async () => {
      await connection.stop()
      leases.close()
      await peer.stop()
      space.destroy()
    },
  }
}
