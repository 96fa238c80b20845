/**
 * The relay in the libp2p mesh: a node whose identity is the relay's signing key (so its peer id names the key
 * that vouches for members), listening on TCP and WebSockets, a bootstrap peer for the others, a
 * circuit-relay-v2 server (raised limits) for peers that cannot dial each other, and a replica like any other:
 * a peer that opens a sync stream for a document the relay keeps gets it loaded and synced.
 *
 * A document is found by the tag its dialer sends (derived from the document key, which only the relay and
 * members know): the relay keeps the tags of every document in its store and of every document it issued a
 * credential for. Leases come over `/chorus/lease/1.0.0`: the peer shows a credential for a document of the space
 * first, and the session acts for that participant in that space only. A document open to peers holds its space loaded; it is closed once no peer has been linked to it
 * for `idleMs`. Sends to peers wait for the group commit like every other fan-out (`SpaceEntry.afterCommit`).
 */
import type { Stream } from '@libp2p/interface'
import {
  ChorusPeer,
  documentKey,
  FramedStream,
  HANDSHAKE_MS,
  LEASE_PROTOCOL,
  LEASE_STREAM_LIMITS,
  verifyCredential,
  documentSecrets,
  issueCredential,
  peerKeyFromSeed,
  type DocumentSecrets,
  type DocumentTransport,
  type Membership,
} from '@chorus/p2p'
import { ChorusError, Replicator, type ParticipantKind, type PeerId, type Store, type Transport, type TransportListener } from '@chorus/sync'
import { memberCaller, type Caller } from './access.ts'
import type { LeaseConnection, LeaseWire } from './lease-connection.ts'
import type { Logger } from './logger.ts'
import type { SpaceEntry } from './space-entry.ts'
import type { SpaceRegistry } from './spaces.ts'

export const RELAY_PARTICIPANT = 'relay'
const DEFAULT_MESH_IDLE_MS = 30_000
const encoder = new TextEncoder()
const decoder = new TextDecoder()

export interface RelayMeshOptions {
  secretKey: Uint8Array
  /** Multiaddrs to listen on (TCP and WebSockets). */
  listen: string[]
  registry: SpaceRegistry
  store: Store
  logger: Logger
  /** Close a document this long after its last peer left (default 30 s). */
  idleMs?: number
  /** Start a lease session for `caller` over `wire` (the relay's lease service, as on `/leases`). */
  leaseSession: (wire: LeaseWire, caller: Caller) => LeaseConnection
  now: () => number
}

interface OpenDocument {
  readonly entry: SpaceEntry
  readonly transport: DocumentTransport
  readonly replicator: Replicator
  idle: ReturnType<typeof setTimeout> | undefined
}


/** A `DocumentTransport` whose sends wait for the space's group commit. */
class CommittedTransport implements Transport {
  private readonly inner: DocumentTransport
  private readonly entry: SpaceEntry
  private readonly onPeers: () => void

  constructor(inner: DocumentTransport, entry: SpaceEntry, onPeers: () => void) {
    this.inner = inner
    this.entry = entry
    this.onPeers = onPeers
  }

  get peers(): ReadonlySet<PeerId> {
    return this.inner.peers
  }

  start(listener: TransportListener): Promise<void> {
    return this.inner.start({
      ...listener,
      peerJoined: (peer) => {
        listener.peerJoined(peer)
        this.onPeers()
      },
      peerLeft: (peer) => {
        listener.peerLeft(peer)
        this.onPeers()
      },
    })
  }

  send(peer: PeerId, message: Uint8Array): void {
    const gossiped = this.inner.deliveringGossip
    this.entry.afterCommit(() => this.inner.sendTo(peer, message, gossiped))
  }

  broadcast(message: Uint8Array): void {
    this.entry.afterCommit(() => this.inner.broadcast(message))
  }

  stop(): Promise<void> {
    return this.inner.stop()
  }
}

export class RelayMesh {
  readonly peer: ChorusPeer
  private readonly options: RelayMeshOptions
  /** The secrets of every document peers may open here, by name. */
  private readonly known = new Map<string, DocumentSecrets>()
  private readonly open = new Map<string, Promise<OpenDocument | undefined>>()
  private readonly idleMs: number
  private closed = false

  private constructor(peer: ChorusPeer, options: RelayMeshOptions) {
    this.peer = peer
    this.options = options
    this.idleMs = options.idleMs ?? DEFAULT_MESH_IDLE_MS
  }

  static async start(options: RelayMeshOptions): Promise<RelayMesh> {
    const key = await peerKeyFromSeed(options.secretKey)
    // Streams may arrive before the mesh exists: they find no document until it does.
    const ref: { mesh?: RelayMesh } = {}
    let peer: ChorusPeer
    try {
      peer = await ChorusPeer.start({
        key,
        listen: options.listen,
        relayServer: true,
        mdns: false,
        pubsubDiscovery: true,
        resolveDocument: (tag, remote) => ref.mesh?.resolve(tag, remote) ?? Promise.resolve(undefined),
        onError: (error, context) => options.logger.warn('libp2p', { context, error }),
      })
    } catch (e) {
      // libp2p's own message suggests options of its configuration; say what a relay operator can change.
      const detail = e instanceof Error ? e.message.split('\n').find((line) => line.includes('EADDRINUSE') || line.includes('EADDRNOTAVAIL'))?.trim() : undefined
      throw new ChorusError('invalid_input', `the libp2p node could not listen on ${options.listen.join(', ')}${detail === undefined ? '' : ` (${detail})`}: choose other addresses with --p2p-listen, or run none with --no-p2p`)
    }
    const mesh = new RelayMesh(peer, options)
    for (const space of await options.store.spaces()) mesh.know(space)
    await peer.node.handle(LEASE_PROTOCOL, (stream, connection) => mesh.leaseStream(stream, connection.remotePeer.toString()), {
      runOnLimitedConnection: true,
      maxInboundStreams: 64,
    })
    ref.mesh = mesh
    return mesh
  }

  get multiaddrs(): string[] {
    return this.peer.multiaddrs
  }

  /** Let peers open `doc` (a space's main or restricted document). */
  know(doc: string): void {
    if (!this.known.has(doc)) this.known.set(doc, documentSecrets(documentKey(this.options.secretKey, doc)))
  }

  /** A membership of `doc` for `peer`, acting for `participant` of `kind`. */
  membership(doc: string, peer: string, participant: string, kind: ParticipantKind, expiresAt: number | null = null): Membership {
    const credential = issueCredential({ doc, peer, participant, kind, expiresAt }, this.options.secretKey)
    this.know(doc)
    return { credential, key: documentKey(this.options.secretKey, doc) }
  }

  async stop(): Promise<void> {
    this.closed = true
    const docs = await Promise.all(this.open.values())
    this.open.clear()
    for (const doc of docs) if (doc !== undefined) await this.closeDocument(doc)
    await this.peer.stop()
  }

  /** A lease stream: its first frame must be the peer's credential for a document of a space. */
  private leaseStream(stream: Stream, remote: string): void {
    const framed = new FramedStream(stream, LEASE_STREAM_LIMITS)
    const timer = setTimeout(() => framed.abort(new Error('no credential in time')), HANDSHAKE_MS)
    timer.unref()
    framed.onClose = () => clearTimeout(timer)
    framed.onMessage = (frame) => {
      clearTimeout(timer)
      let input: unknown
      try {
        input = JSON.parse(decoder.decode(frame))
      } catch {
        input = undefined
      }
      const doc = typeof input === 'object' && input !== null && 'doc' in input && typeof input.doc === 'string' ? input.doc : ''
      const verdict = verifyCredential(input, { trusted: new Set([this.publicKey]), doc, peer: remote, now: this.options.now() })
      if (!verdict.ok) {
        this.options.logger.warn('refused a libp2p lease stream', { peer: remote, reason: verdict.reason })
        framed.abort(new Error(`membership refused: ${verdict.reason}`))
        return
      }
      const { participant, kind } = verdict.credential
      const connection = this.options.leaseSession(
        {
          send: (text) => framed.send(encoder.encode(text)),
          close: () => framed.close(),
          alive: () => framed.isOpen,
          terminate: () => framed.abort(new Error('lease session ended')),
        },
        memberCaller(participant, kind, doc),
      )
      framed.onMessage = (request) => connection.receive(request, true)
      framed.onClose = () => connection.ended()
    }
  }

  /** The relay's public key (base64url): its peer id's key. */
  private get publicKey(): string {
    return Buffer.from(this.peer.key.privateKey.publicKey.raw).toString('base64url')
  }

  /** The document whose tag from `remote` is `tag` (one HMAC per known document: tags are per pair of peers). */
  private resolve(tag: Uint8Array, remote: string): Promise<DocumentTransport | undefined> {
    const self = this.peer.peerId
    let name: string | undefined
    for (const [doc, secrets] of this.known) {
      if (Buffer.from(secrets.streamTag(remote, self)).equals(tag)) {
        name = doc
        break
      }
    }
    if (name === undefined || this.closed) return Promise.resolve(undefined)
    let opening = this.open.get(name)
    if (opening === undefined) {
      opening = this.openDocument(name).catch((e: unknown) => {
        this.options.logger.warn('could not open a document for libp2p peers', { doc: name, error: e })
        this.open.delete(name)
        return undefined
      })
      this.open.set(name, opening)
    }
    return opening.then((doc) => doc?.transport)
  }

  private async openDocument(name: string): Promise<OpenDocument> {
    const entry = await this.options.registry.acquire(name)
    const membership = this.membership(name, this.peer.peerId, RELAY_PARTICIPANT, 'service')
    const transport = this.peer.document(membership)
    const replicator = new Replicator(entry.doc, entry.awareness, {
      onError: (error) => this.options.logger.warn('bad message from a libp2p peer', { doc: name, error }),
    })
    const doc: OpenDocument = { entry, transport, replicator, idle: undefined }
    await replicator.attach(new CommittedTransport(transport, entry, () => this.watchIdle(name, doc)))
    this.watchIdle(name, doc)
    return doc
  }

  /** Close `doc` once no peer has been linked to it for `idleMs`. */
  private watchIdle(name: string, doc: OpenDocument): void {
    clearTimeout(doc.idle)
    doc.idle = undefined
    if (doc.transport.peers.size > 0 || this.closed) return
    doc.idle = setTimeout(() => {
      if (doc.transport.peers.size > 0) return
      this.open.delete(name)
      void this.closeDocument(doc)
    }, this.idleMs)
    doc.idle.unref()
  }

  private async closeDocument(doc: OpenDocument): Promise<void> {
    clearTimeout(doc.idle)
    try {
      await doc.replicator.stop()
    } finally {
      this.options.registry.release(doc.entry)
    }
  }
}
