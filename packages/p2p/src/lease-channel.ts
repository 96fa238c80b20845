/**
 * Leases from a peer over libp2p: the relay's lease service on `/chorus/lease/1.0.0`, speaking the same JSON
 * messages as its `/leases` WebSocket (leases/wire.ts in @chorus/sync), one per length-prefixed frame. The peer
 * opens with its credential for a document of the space; the relay acts for the participant it names, in that
 * space only. Without the relay (not reachable in time), every request fails with `lease_unavailable` (L10).
 */
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { ChorusError, MAX_LEASE_FRAME_BYTES, RelayLeaseClient, type Clock, type LeaseChannelFactory } from '@chorus/sync'
import type { ChorusPeer } from './chorus-peer.ts'
import { FramedStream } from './framed-stream.ts'
import type { Membership } from './membership.ts'

export const LEASE_PROTOCOL = '/chorus/lease/1.0.0'
/** A lease frame: a request or reply, or the opening credential (an invite chain fits too): 16 KiB. */
export const LEASE_STREAM_LIMITS = { maxMessageBytes: MAX_LEASE_FRAME_BYTES, maxQueuedBytes: 1024 * 1024 }

const encoder = new TextEncoder()
const decoder = new TextDecoder()

export interface RelayPeer {
  /** The relay's peer id (`/capabilities` → `p2p.peerId`). */
  peerId: string
  /** Where to dial it if not connected (`/capabilities` → `p2p.multiaddrs`). */
  multiaddrs?: readonly string[]
}

/** A channel to the relay's lease service over `peer`'s libp2p node, shown `membership`'s credential. */
export function libp2pLeaseChannel(peer: ChorusPeer, relay: RelayPeer, membership: Membership): LeaseChannelFactory {
  const relayId = peerIdFromString(relay.peerId)
  const credential = encoder.encode(JSON.stringify(membership.credential))
  return {
    name: `libp2p ${LEASE_PROTOCOL} to ${relay.peerId}`,
    async open(events, timeoutMs) {
      const signal = AbortSignal.timeout(timeoutMs)
      if (peer.node.getConnections(relayId).length === 0 && relay.multiaddrs !== undefined && relay.multiaddrs.length > 0) {
        await peer.node.dial(relay.multiaddrs.map((a) => multiaddr(a)), { signal })
      }
      const stream = await peer.node.dialProtocol(relayId, LEASE_PROTOCOL, { signal, runOnLimitedConnection: true })
      const framed = new FramedStream(stream, LEASE_STREAM_LIMITS)
      framed.onMessage = (frame) => events.message(decoder.decode(frame))
      framed.onClose = (error) => events.closed(error?.message ?? 'stream closed')
      framed.send(credential)
      return {
        send: (text) => framed.send(encoder.encode(text)),
        close: () => framed.close(),
      }
    },
    // The relay's libp2p identity is its signing key.
    publicKey: () => Promise.resolve(Buffer.from(relayId.publicKey?.raw ?? new Uint8Array()).toString('base64url')),
  }
}

export interface PeerLeaseClientOptions {
  relay: RelayPeer
  /** A membership of the space the leases are for (its main document, or a restricted one). */
  membership: Membership
  connectTimeoutMs?: number
  requestTimeoutMs?: number
  clock?: Clock
}

/** A `LeaseClient` (for `Space`, `LeaseKeeper`, ...) that reaches the relay over libp2p. */
export function peerLeaseClient(peer: ChorusPeer, options: PeerLeaseClientOptions): RelayLeaseClient {
  if (peerIdFromString(options.relay.peerId).type !== 'Ed25519') throw new ChorusError('invalid_input', 'the relay peer id must be an Ed25519 one')
  return new RelayLeaseClient({
    channel: libp2pLeaseChannel(peer, options.relay, options.membership),
    connectTimeoutMs: options.connectTimeoutMs,
    requestTimeoutMs: options.requestTimeoutMs,
    clock: options.clock,
  })
}
