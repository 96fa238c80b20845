/**
 * A Transport carries y-protocols messages (sync step 1/2, update, awareness) between this replica and its
 * peers. It only frames and routes bytes; the sync protocol itself lives in `Replicator`, so every transport
 * (in-memory, WebSocket, libp2p, a stream) speaks exactly the same protocol.
 */

/** A transport-scoped name for the other end of a connection. */
export type PeerId = string

export type TransportStatus = 'connecting' | 'connected' | 'disconnected'

export interface TransportListener {
  /**
   * A connection to `peer` opened (or reopened): the replicator starts catch-up with it here. A transport may
   * call it again for a peer still connected to have catch-up run once more (e.g. after it may have lost messages).
   */
  peerJoined(peer: PeerId): void
  /** The connection to `peer` closed; nothing more is sent to it until it joins again. */
  peerLeft(peer: PeerId): void
  /** One whole y-protocols message from `peer`. */
  message(peer: PeerId, message: Uint8Array): void
  /** The transport's own connection state (a client transport reports its link to a server here). */
  status?(status: TransportStatus): void
}

export interface Transport {
  /** Peers currently connected. */
  readonly peers: ReadonlySet<PeerId>
  /** Start carrying messages; the listener receives everything from now on. */
  start(listener: TransportListener): Promise<void>
  /** Send one message to one peer; silently dropped if the peer is not connected. */
  send(peer: PeerId, message: Uint8Array): void
  /** Send one message to every connected peer. */
  broadcast(message: Uint8Array): void
  /** Close every connection and release every handle. */
  stop(): Promise<void>
}
