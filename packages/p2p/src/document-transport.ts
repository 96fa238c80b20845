/**
 * The `Transport` of one document over libp2p (see `ChorusPeer`, which owns the node and routes to it).
 *
 * Direct links: one `/chorus/sync/1.0.0` stream per remote member, opened by either side on every new
 * connection. The dialer sends the document's stream tag; a listener that holds the document answers with its
 * credential, the dialer checks it and answers with its own, and the listener checks that. Only then does
 * either side send anything of the document, and the replicator starts catch-up (sync step 1) on the link.
 * On a new connection the peer with the smaller id dials; the other dials only if no stream came within
 * `DIAL_GRACE_MS` (the smaller one may not hold the document yet). When both sides dialed anyway, both keep the
 * stream opened by the smaller peer id.
 *
 * Broadcasts: a message of up to `maxGossipBytes` is published on the document's gossipsub topic, which reaches
 * members this peer has no link to; linked members that are not (yet) on the topic get it directly. Larger
 * messages (catch-up, big updates) go only on direct links. A gossip message is sealed with the document key and
 * carries its publisher's credential: a receiver applies it only if that credential is valid for the
 * publisher (gossipsub signs who published), so holding the key is not enough to write. What arrives by gossip
 * was forwarded by gossipsub to the topic's mesh at once, so the replicator's forwarding of it to peers in that
 * mesh is skipped (it still goes to other linked members, and to the replica's other transports).
 *
 * Gossip may drop a message (a peer not yet in the mesh, a full queue), so every `RESYNC_MS` each link runs
 * catch-up again (a state vector exchange): whatever was missed arrives then.
 */
import type { Connection, Stream } from '@libp2p/interface'
import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import { ChorusError, type PeerId, type Transport, type TransportListener } from '@chorus/sync'
import { documentSecrets, SEAL_OVERHEAD, type DocumentSecrets } from './document-secrets.ts'
import { FramedStream } from './framed-stream.ts'
import { verifyCredential, type Credential, type Membership } from './membership.ts'

export const SYNC_PROTOCOL = '/chorus/sync/1.0.0'
/** The largest message on a direct stream (a catch-up of a big space is one message). */
export const MAX_MESSAGE_BYTES = 64 * 1024 * 1024
/** The largest message sent by gossip; larger ones go on direct streams only. */
export const MAX_GOSSIP_BYTES = 64 * 1024
/** Bytes that may wait for one slow peer before its stream is cut (it resyncs when it reconnects). */
export const MAX_QUEUED_BYTES = 128 * 1024 * 1024
/** How long a new stream may take to present its credentials. */
export const HANDSHAKE_MS = 10_000
/** How long the larger peer id waits for the smaller to open the sync stream before it opens one itself. */
export const DIAL_GRACE_MS = 1_500
/** How often each link runs catch-up again, for what gossip may have dropped. */
export const RESYNC_MS = 15_000

export const STREAM_LIMITS = { maxMessageBytes: MAX_MESSAGE_BYTES, maxQueuedBytes: MAX_QUEUED_BYTES }

const MAX_CREDENTIAL_BYTES = 16 * 1024
const MAX_KNOWN_PUBLISHERS = 1024
const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** What a document transport needs from the peer that hosts it. */
export interface DocumentHost {
  readonly peerId: string
  /** Remote peers with an open connection. */
  connectedPeers(): string[]
  openStream(peer: string): Promise<Stream>
  /** Subscribe to the topic, or stop (`subscribed` false). */
  subscribe(transport: DocumentTransport, subscribed: boolean): void
  publish(topic: string, data: Uint8Array): void
  gossipSubscribers(topic: string): ReadonlySet<string>
  /** The peers gossipsub forwards the topic's messages to right away (its mesh for the topic). */
  gossipMesh(topic: string): ReadonlySet<string>
  report(error: unknown, context: string): void
  now(): number
}

export interface DocumentTransportOptions {
  /** Relay keys trusted to vouch for members. Default: the key at the root of this peer's own credential. */
  trusted?: readonly string[]
  /** Default `MAX_GOSSIP_BYTES`. */
  maxGossipBytes?: number
}

export interface DocumentTransportStats {
  /** Direct links refused: a bad or missing credential, or a handshake that did not finish in time. */
  refused: number
  /** Gossip messages that were not sealed with this document's key, and were dropped. */
  unreadable: number
  /** Gossip messages sealed with the key whose publisher showed no valid credential, and were dropped. */
  unauthorized: number
  gossipSent: number
  gossipReceived: number
}

interface Link {
  readonly peer: string
  readonly framed: FramedStream
  /** Whoever opened the stream; of two links to one peer, the one opened by the smaller id stays. */
  readonly dialer: string
  linked: boolean
}

const rootIssuer = (c: Credential): string => (typeof c.issuer === 'string' ? c.issuer : rootIssuer(c.issuer))

export class DocumentTransport implements Transport {
  readonly doc: string
  readonly membership: Membership
  readonly secrets: DocumentSecrets
  readonly stats: DocumentTransportStats = { refused: 0, unreadable: 0, unauthorized: 0, gossipSent: 0, gossipReceived: 0 }
  private readonly host: DocumentHost
  private readonly trusted: ReadonlySet<string>
  private readonly maxGossipBytes: number
  private readonly credentialFrame: Uint8Array
  /** Linked peers, by remote peer id. */
  private readonly links = new Map<string, Link>()
  /** Streams still in their handshake. */
  private readonly pending = new Set<Link>()
  private readonly joined = new Set<string>()
  private listener: TransportListener | undefined
  /** Set while a gossip message is being delivered (see the module comment). */
  private fromGossip = false
  /** Publishers' credentials already checked, by publisher and credential bytes. */
  private readonly publishers = new Map<string, Credential>()
  private resync: ReturnType<typeof setInterval> | undefined

  constructor(host: DocumentHost, membership: Membership, options: DocumentTransportOptions = {}) {
    this.host = host
    this.membership = membership
    this.doc = membership.credential.doc
    if (membership.credential.peer !== host.peerId) {
      throw new ChorusError('invalid_input', `the credential is for peer ${membership.credential.peer}, not this peer (${host.peerId})`)
    }
    this.secrets = documentSecrets(membership.key)
    this.trusted = new Set(options.trusted ?? [rootIssuer(membership.credential)])
    this.maxGossipBytes = options.maxGossipBytes ?? MAX_GOSSIP_BYTES
    this.credentialFrame = encoder.encode(JSON.stringify(membership.credential))
  }

  get peers(): ReadonlySet<PeerId> {
    return this.joined
  }

  get started(): boolean {
    return this.listener !== undefined
  }

  start(listener: TransportListener): Promise<void> {
    if (this.listener !== undefined) return Promise.reject(new ChorusError('invalid_input', 'transport already started'))
    this.listener = listener
    this.host.subscribe(this, true)
    for (const peer of this.host.connectedPeers()) this.dial(peer)
    // peerJoined again for a linked peer: the replicator runs catch-up with it once more.
    this.resync = setInterval(() => {
      for (const peer of this.joined) this.listener?.peerJoined(peer)
    }, RESYNC_MS)
    this.resync.unref?.()
    listener.status?.('connected')
    return Promise.resolve()
  }

  stop(): Promise<void> {
    if (this.listener === undefined) return Promise.resolve()
    this.host.subscribe(this, false)
    clearInterval(this.resync)
    const links = [...this.links.values(), ...this.pending]
    this.listener = undefined
    for (const link of links) link.framed.close()
    this.links.clear()
    this.pending.clear()
    this.joined.clear()
    return Promise.resolve()
  }

  send(peer: PeerId, message: Uint8Array): void {
    this.sendTo(peer, message, this.fromGossip)
  }

  /** True while a gossip message is being delivered: a sender that defers its sends notes it for `sendTo`. */
  get deliveringGossip(): boolean {
    return this.fromGossip
  }

  /** `send`, where the caller says whether `message` forwards what came by gossip. */
  sendTo(peer: PeerId, message: Uint8Array, gossiped: boolean): void {
    const link = this.links.get(peer)
    if (link === undefined) return
    // The replicator forwards what it just got by gossip to each peer: members on the topic have it already.
    if (gossiped && this.host.gossipMesh(this.secrets.topic).has(peer)) return
    link.framed.send(message)
  }

  broadcast(message: Uint8Array): void {
    if (this.listener === undefined) return
    if (message.length <= this.maxGossipBytes) {
      const subscribers = this.host.gossipSubscribers(this.secrets.topic)
      if (subscribers.size > 0) {
        this.host.publish(this.secrets.topic, this.secrets.seal(encoding.encode((e) => {
          encoding.writeVarUint8Array(e, this.credentialFrame)
          encoding.writeUint8Array(e, message)
        })))
        this.stats.gossipSent++
      }
      for (const link of this.links.values()) if (!subscribers.has(link.peer)) link.framed.send(message)
      return
    }
    for (const link of this.links.values()) link.framed.send(message)
  }

  /**
   * Open a sync stream to `peer` for this document (on a new connection, or at start): at once if this peer's id
   * is the smaller, else after `DIAL_GRACE_MS` unless `peer` opened one meanwhile (so one catch-up, not two).
   */
  dial(peer: string): void {
    if (this.listener === undefined || peer === this.host.peerId) return
    if (this.host.peerId > peer) {
      const timer = setTimeout(() => {
        if (!this.linkedOrLinking(peer)) this.dialNow(peer)
      }, DIAL_GRACE_MS)
      timer.unref?.()
      return
    }
    this.dialNow(peer)
  }

  private linkedOrLinking(peer: string): boolean {
    if (this.links.has(peer)) return true
    for (const link of this.pending) if (link.peer === peer) return true
    return false
  }

  private dialNow(peer: string): void {
    if (this.listener === undefined) return
    const existing = this.links.get(peer)
    if (existing !== undefined && existing.dialer === this.host.peerId) return
    this.host.openStream(peer).then(
      (stream) => {
        if (this.listener === undefined) {
          stream.abort(new Error('document closed'))
          return
        }
        const link = this.handshake(stream, peer, this.host.peerId)
        link.framed.send(this.secrets.streamTag(this.host.peerId, peer))
      },
      // Not every peer speaks the protocol, and connections come and go: a failed dial is routine.
      () => undefined,
    )
  }

  /** A stream from `peer` whose first frame was this document's tag. */
  accept(framed: FramedStream, connection: Connection): void {
    const peer = connection.remotePeer.toString()
    if (this.listener === undefined) {
      framed.abort(new Error('document closed'))
      return
    }
    const link = this.adopt(framed, peer, peer)
    framed.send(this.credentialFrame)
    this.expectCredential(link, () => this.linkUp(link))
  }

  /** A gossip message on this document's topic, from `from` (the original publisher, as gossipsub signed it). */
  gossip(from: string, sealed: Uint8Array): void {
    const listener = this.listener
    if (listener === undefined || sealed.length > this.maxGossipBytes + MAX_CREDENTIAL_BYTES + 8 + SEAL_OVERHEAD) return
    const opened = this.secrets.open(sealed)
    if (opened === undefined) {
      this.stats.unreadable++
      return
    }
    let message: Uint8Array
    let credential: Uint8Array
    try {
      const decoder = decoding.createDecoder(opened)
      credential = decoding.readVarUint8Array(decoder)
      message = opened.subarray(decoder.pos)
    } catch {
      this.stats.unreadable++
      return
    }
    if (!this.publisherAdmitted(from, credential)) {
      this.stats.unauthorized++
      return
    }
    this.stats.gossipReceived++
    this.fromGossip = true
    try {
      listener.message(from, message)
    } finally {
      this.fromGossip = false
    }
  }

  /** Whether `credential` (JSON bytes) admits `publisher` now; checked once per publisher and credential. */
  private publisherAdmitted(publisher: string, credential: Uint8Array): boolean {
    const memo = `${publisher}\0${Buffer.from(credential).toString('base64')}`
    let known = this.publishers.get(memo)
    if (known === undefined) {
      let input: unknown
      try {
        input = credential.length > MAX_CREDENTIAL_BYTES ? undefined : JSON.parse(decoder.decode(credential))
      } catch {
        input = undefined
      }
      const verdict = verifyCredential(input, { trusted: this.trusted, doc: this.doc, peer: publisher, now: this.host.now() })
      if (!verdict.ok) return false
      known = verdict.credential
      if (this.publishers.size >= MAX_KNOWN_PUBLISHERS) this.publishers.clear()
      this.publishers.set(memo, known)
    }
    return known.expiresAt === null || known.expiresAt > this.host.now()
  }

  private handshake(stream: Stream, peer: string, dialer: string): Link {
    const framed = new FramedStream(stream, STREAM_LIMITS)
    const link = this.adopt(framed, peer, dialer)
    // The listener speaks first (its credential); ours follows once it checks out.
    this.expectCredential(link, () => {
      framed.send(this.credentialFrame)
      this.linkUp(link)
    })
    return link
  }

  private adopt(framed: FramedStream, peer: string, dialer: string): Link {
    const link: Link = { peer, framed, dialer, linked: false }
    this.pending.add(link)
    const timer = setTimeout(() => {
      if (!link.linked && framed.isOpen) this.refuse(link, 'no credential in time')
    }, HANDSHAKE_MS)
    timer.unref?.()
    framed.onClose = () => {
      clearTimeout(timer)
      this.dropped(link)
    }
    return link
  }

  /** The next frame on `link` must be a credential of its peer for this document. */
  private expectCredential(link: Link, accepted: () => void): void {
    link.framed.onMessage = (frame) => {
      let input: unknown
      try {
        if (frame.length > MAX_CREDENTIAL_BYTES) throw new Error('too large')
        input = JSON.parse(decoder.decode(frame))
      } catch {
        input = undefined
      }
      const verdict = verifyCredential(input, { trusted: this.trusted, doc: this.doc, peer: link.peer, now: this.host.now() })
      if (!verdict.ok) {
        this.refuse(link, verdict.reason)
        return
      }
      link.framed.onMessage = (message) => this.listener?.message(link.peer, message)
      accepted()
    }
  }

  private refuse(link: Link, reason: string): void {
    this.stats.refused++
    this.host.report(new ChorusError('forbidden', `refused a sync stream for ${this.doc} from ${link.peer}: ${reason}`), 'membership')
    link.framed.abort(new Error(`membership refused: ${reason}`))
  }

  private linkUp(link: Link): void {
    this.pending.delete(link)
    const listener = this.listener
    if (listener === undefined) {
      link.framed.abort(new Error('document closed'))
      return
    }
    const existing = this.links.get(link.peer)
    if (existing !== undefined) {
      // Two streams to one peer: both sides keep the one opened by the smaller id (the newer if one side
      // opened both, e.g. after a reconnect the old stream has not noticed yet).
      const keepNew = existing.dialer === link.dialer || link.dialer < existing.dialer
      if (!keepNew) {
        link.framed.close()
        return
      }
      this.links.delete(link.peer)
      existing.framed.close()
    }
    link.linked = true
    this.links.set(link.peer, link)
    this.joined.add(link.peer)
    listener.peerJoined(link.peer)
  }

  private dropped(link: Link): void {
    this.pending.delete(link)
    if (this.links.get(link.peer) !== link) return
    this.links.delete(link.peer)
    this.joined.delete(link.peer)
    this.listener?.peerLeft(link.peer)
  }
}
