/**
 * What the p2p benchmark (bench/p2p.ts) and its peer children (p2p-peer-child.ts) say to each other over the
 * Node IPC channel: one request `{ id, call }`, one reply `{ id, result }` or `{ id, error }`. Types only.
 *
 * A child hosts named members: a Y.Doc with a `Replicator` on one transport (a `ChorusPeer` document in the
 * direct or circuit-only mode, or a `WebSocketTransport` to the relay). Times are `nowAbs()`
 * (performance.timeOrigin + performance.now(), milliseconds since the epoch): comparable across processes on
 * one machine.
 */
import type { Membership } from '@chorus/p2p'

/** How a member reaches the others. */
export type Mode = 'direct' | 'circuit' | 'ws'

/** One received stamp of a measured phase. */
export interface Sample {
  /** Receive time minus send time (ms). */
  latency: number
  writer: number
  seq: number
  /** Send time relative to the phase's start (ms). */
  sentAfter: number
  /** Came by gossip (true) or on a direct sync stream / the WebSocket (false). */
  gossip: boolean
}

/** What a child measured of one member during one phase. */
export interface Collected {
  samples: Sample[]
  /** Stamps of this block's measured phase expected from other writers but not (yet) received. */
  missing: number
}

/** The child's event loop and GC while `monitor` was on. */
export interface Health {
  /** Event-loop delay, p99 and max (ms), from perf_hooks.monitorEventLoopDelay at 1 ms resolution. */
  loopP99: number
  loopMax: number
  /** Garbage-collection pauses: the longest, and their sum (ms). */
  gcMax: number
  gcTotal: number
}

export interface Status {
  /** Peers with a linked sync stream, libp2p connections (to anyone), gossipsub mesh and subscribers of the topic. */
  linked: number
  /** The linked peers' ids (the relay's node among them, for a circuit member). */
  linkedPeers: string[]
  connections: number
  mesh: number
  subscribers: number
  /** DocumentTransport.stats and Replicator.stats, flattened. */
  counters: Record<string, number>
}

export interface CatchUpResult {
  /** Dial (or WebSocket open) to sync step 2 from the holder applied (ms). */
  syncMs: number
  /** Opening a Space on the replica, its newest message, and the state-vector comparison (ms). */
  checkMs: number
  /** y-protocols bytes the joiner received / sent on the link (the Replicator's messages). */
  payloadIn: number
  payloadOut: number
  /** TCP bytes on the joiner's connection (noise, yamux, identify, gossipsub included), when known. */
  wireIn: number
  wireOut: number
}

/** `seed`: the base64 Ed25519 seed of the peer's key (the bench makes keys, since memberships name the peer id). */
export type Call =
  | { op: 'clock' }
  /** A libp2p peer with one member; resolves with its id and dialable addresses (circuit: once it has one). */
  | { op: 'peer'; name: string; mode: 'direct' | 'circuit'; seed: string; membership: Membership; relay?: { addr: string; peerId: string } }
  | { op: 'dial'; name: string; addrs: string[] }
  /** Resolves once the member is linked to every peer in `peers` and has them in its gossipsub mesh. */
  | { op: 'ready'; name: string; peers: string[]; timeoutMs: number }
  | { op: 'ws'; name: string; url: string }
  /** Writes `count` stamps at `rate`/s from `startAt` (nowAbs); resolves when the last is written. */
  | { op: 'write'; name: string; block: number; writer: number; writers: number; rate: number; count: number; startAt: number; measured: boolean }
  /** Waits up to `waitMs` for the `expected` stamps (per other writer) of `block`, then hands over the samples. */
  | { op: 'collect'; name: string; block: number; writers: number; self: number; expected: number; startAt: number; waitMs: number }
  | { op: 'monitor'; on: boolean }
  /** The member's links and counters (`Status`), e.g. to explain stamps that never arrived. */
  | { op: 'status'; name: string }
  /** The catch-up holder: a direct peer whose doc is loaded from the update in `file`. */
  | { op: 'hold'; file: string; seed: string; membership: Membership }
  /** A late joiner (torn down after): connect to `addr` (peer `holder`) or to the relay's WebSocket, catch up, check. */
  | { op: 'join'; via: 'p2p'; seed: string; membership: Membership; addr: string; holder: string; expect: { sv: string; last: string } }
  | { op: 'join'; via: 'ws'; url: string; expect: { sv: string; last: string } }
  | { op: 'stop' }

export interface Request {
  id: number
  call: Call
}

export type Reply = { id: number; result: unknown } | { id: number; error: string }
