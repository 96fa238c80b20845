/**
 * Runs the y-protocols sync and awareness protocols for one `Y.Doc` over any number of transports.
 *
 * Every message is one y-protocols message: `[type: varUint, ...]` with types 0 sync, 1 awareness, 2 auth,
 * 3 query-awareness, exactly what the stock y-websocket client and server exchange. A replica attached to
 * several transports bridges them: what it learns from one peer it forwards to every other peer.
 */
import type * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import { ObservableV2 } from 'lib0/observable'
import * as syncProtocol from 'y-protocols/sync'
import * as awarenessProtocol from 'y-protocols/awareness'
import type { Awareness } from 'y-protocols/awareness'
import { ChorusError } from '../errors.ts'
import type { PeerId, Transport, TransportListener } from '../transports/transport.ts'

export const messageSync = 0
export const messageAwareness = 1
export const messageAuth = 2
export const messageQueryAwareness = 3

/** Sync step 1: this replica's state vector; the peer answers with what this replica lacks. */
export const encodeSyncStep1 = (doc: Y.Doc): Uint8Array =>
  encoding.encode((e) => {
    encoding.writeVarUint(e, messageSync)
    syncProtocol.writeSyncStep1(e, doc)
  })

/** Sync step 2: everything in `doc` that a peer with `stateVector` lacks (everything when omitted). */
export const encodeSyncStep2 = (doc: Y.Doc, stateVector?: Uint8Array): Uint8Array =>
  encoding.encode((e) => {
    encoding.writeVarUint(e, messageSync)
    syncProtocol.writeSyncStep2(e, doc, stateVector)
  })

/** A live document update (as emitted by `doc.on('update')`). */
export const encodeSyncUpdate = (update: Uint8Array): Uint8Array =>
  encoding.encode((e) => {
    encoding.writeVarUint(e, messageSync)
    syncProtocol.writeUpdate(e, update)
  })

/** The awareness states of `clients` (a client without a state is sent as removed). */
export const encodeAwarenessMessage = (awareness: Awareness, clients: readonly number[]): Uint8Array =>
  encoding.encode((e) => {
    encoding.writeVarUint(e, messageAwareness)
    encoding.writeVarUint8Array(e, awarenessProtocol.encodeAwarenessUpdate(awareness, [...clients]))
  })

export const encodeQueryAwareness = (): Uint8Array =>
  encoding.encode((e) => encoding.writeVarUint(e, messageQueryAwareness))

/**
 * The transaction origin (doc) and change origin (awareness) of everything received from one peer, so a
 * change is never echoed to the peer it came from. `origin instanceof PeerOrigin` tells remote from local.
 */
export class PeerOrigin {
  readonly transport: Transport
  readonly peer: PeerId
  constructor(transport: Transport, peer: PeerId) {
    this.transport = transport
    this.peer = peer
  }
}

export interface ReplicatorStats {
  /** Messages received from peers. */
  received: number
  /** Messages handed to transports (a broadcast counts once per transport). */
  sent: number
  /** Received messages that could not be decoded or applied; each was ignored. */
  malformed: number
  /** Sends that a transport refused by throwing (e.g. a message over its size limit). */
  sendErrors: number
}

export interface ReplicatorOptions {
  /** Told about every malformed message and refused send; the replicator itself never throws for them. */
  onError?: (error: unknown, from: { transport: Transport; peer: PeerId | null }) => void
}

export type ReplicatorEvents = {
  /** Sync step 2 from `peer` has been applied: this replica holds everything `peer` had when it joined. */
  synced: (peer: PeerId, transport: Transport) => void
}

interface Link {
  readonly origin: PeerOrigin
  /** Value of the replicator's epoch counter when this link opened. */
  readonly epoch: number
  synced: boolean
}

interface Attachment {
  readonly transport: Transport
  readonly links: Map<PeerId, Link>
}

interface AwarenessChanges {
  added: number[]
  updated: number[]
  removed: number[]
}

const rethrow = (error: Error): never => {
  throw error
}

/**
 * Reads one sync message (after its type) into `doc` and returns the reply it calls for, if any, and which
 * sync step it was. Bad updates throw instead of being logged by y-protocols, so callers can count them.
 */
export const answerSyncMessage = (decoder: decoding.Decoder, doc: Y.Doc, origin: unknown): { reply: Uint8Array | null; step: number } => {
  const encoder = encoding.createEncoder()
  encoding.writeVarUint(encoder, messageSync)
  const step = syncProtocol.readSyncMessage(decoder, encoder, doc, origin, rethrow)
  return { reply: encoding.length(encoder) > 1 ? encoding.toUint8Array(encoder) : null, step }
}

/** One client's entry in an awareness update: whose, at which clock, and whether it is a state or a removal. */
export interface AwarenessEntry {
  client: number
  clock: number
  present: boolean
}

/**
 * Decodes a whole awareness update, throwing `corrupt` for a malformed one. Call it before applying an update,
 * because `applyAwarenessUpdate` mutates as it reads.
 */
export const readAwarenessUpdate = (update: Uint8Array): AwarenessEntry[] => {
  const decoder = decoding.createDecoder(update)
  const count = decoding.readVarUint(decoder)
  const entries: AwarenessEntry[] = []
  for (let i = 0; i < count; i++) {
    const client = decoding.readVarUint(decoder)
    const clock = decoding.readVarUint(decoder)
    const state: unknown = JSON.parse(decoding.readVarString(decoder))
    if (state !== null && (typeof state !== 'object' || Array.isArray(state))) {
      throw new ChorusError('corrupt', 'an awareness state must be an object or null')
    }
    entries.push({ client, clock, present: state !== null })
  }
  return entries
}

export class Replicator {
  readonly doc: Y.Doc
  readonly awareness: Awareness
  private readonly onError: ReplicatorOptions['onError']
  private readonly attachments = new Map<Transport, Attachment>()
  /** Which peer each remote awareness state was last applied from; these go when that peer leaves. */
  private readonly learnedFrom = new Map<number, PeerOrigin>()
  /** Remote states removed on a peer's word: their clock, the epoch then, and the link that said so. */
  private readonly departed = new Map<number, { clock: number; epoch: number; via: PeerOrigin | null }>()
  private epoch = 0
  private readonly events = new ObservableV2<ReplicatorEvents>()
  private readonly waiters = new Set<(error: Error) => void>()
  private readonly counters: ReplicatorStats = { received: 0, sent: 0, malformed: 0, sendErrors: 0 }
  private stopped = false

  constructor(doc: Y.Doc, awareness: Awareness, options: ReplicatorOptions = {}) {
    this.doc = doc
    this.awareness = awareness
    this.onError = options.onError
    doc.on('update', this.onDocUpdate)
    awareness.on('update', this.onAwarenessUpdate)
  }

  get stats(): Readonly<ReplicatorStats> {
    return { ...this.counters }
  }

  on<N extends keyof ReplicatorEvents>(name: N, f: ReplicatorEvents[N]): void {
    this.events.on(name, f)
  }

  off<N extends keyof ReplicatorEvents>(name: N, f: ReplicatorEvents[N]): void {
    this.events.off(name, f)
  }

  /** Start `transport` and replicate over it. */
  async attach(transport: Transport): Promise<void> {
    if (this.stopped) throw new ChorusError('closed', 'the replicator has stopped')
    if (this.attachments.has(transport)) throw new ChorusError('invalid_input', 'transport is already attached')
    // Registered before start: a transport may report peers from inside start().
    const attachment: Attachment = { transport, links: new Map() }
    this.attachments.set(transport, attachment)
    const listener: TransportListener = {
      peerJoined: (peer) => {
        if (this.attachments.get(transport) === attachment) this.peerJoined(attachment, peer)
      },
      peerLeft: (peer) => {
        if (this.attachments.get(transport) === attachment) this.peerLeft(attachment, peer)
      },
      message: (peer, message) => {
        if (this.attachments.get(transport) === attachment) this.receive(attachment, peer, message)
      },
    }
    try {
      await transport.start(listener)
    } catch (error) {
      this.forget(attachment)
      throw error
    }
  }

  /** Stop `transport`; awareness states learned only through it are removed. */
  async detach(transport: Transport): Promise<void> {
    const attachment = this.attachments.get(transport)
    if (attachment === undefined) return
    this.forget(attachment)
    await transport.stop()
  }

  /** Detach every transport. The doc and awareness are left to their owner. */
  async stop(): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    this.doc.off('update', this.onDocUpdate)
    this.awareness.off('update', this.onAwarenessUpdate)
    const closed = new ChorusError('closed', 'the replicator has stopped')
    for (const reject of this.waiters) reject(closed)
    this.waiters.clear()
    await Promise.all([...this.attachments.keys()].map((t) => this.detach(t)))
  }

  isSynced(peer: PeerId, transport?: Transport): boolean {
    for (const a of this.attachments.values()) {
      if (transport !== undefined && a.transport !== transport) continue
      if (a.links.get(peer)?.synced === true) return true
    }
    return false
  }

  /** Resolves once sync step 2 from `peer` (on `transport`, or on any) has been applied; rejects on stop(). */
  whenSynced(peer: PeerId, transport?: Transport): Promise<void> {
    if (this.isSynced(peer, transport)) return Promise.resolve()
    if (this.stopped) return Promise.reject(new ChorusError('closed', 'the replicator has stopped'))
    return new Promise<void>((resolve, reject) => {
      const done = (): void => {
        this.events.off('synced', onSynced)
        this.waiters.delete(fail)
      }
      const onSynced = (p: PeerId, t: Transport): void => {
        if (p !== peer || (transport !== undefined && t !== transport)) return
        done()
        resolve()
      }
      const fail = (error: Error): void => {
        done()
        reject(error)
      }
      this.events.on('synced', onSynced)
      this.waiters.add(fail)
    })
  }

  private readonly onDocUpdate = (update: Uint8Array, origin: unknown): void => {
    this.broadcast(encodeSyncUpdate(update), origin instanceof PeerOrigin ? origin : null)
  }

  private readonly onAwarenessUpdate = (changes: AwarenessChanges, origin: unknown): void => {
    const from = this.ownOrigin(origin)
    const own = this.awareness.clientID
    for (const id of [...changes.added, ...changes.updated]) {
      if (id === own) continue
      this.departed.delete(id)
      if (from === null) this.learnedFrom.delete(id)
      else this.learnedFrom.set(id, from)
    }
    for (const id of changes.removed) {
      this.learnedFrom.delete(id)
      const clock = this.awareness.meta.get(id)?.clock
      if (id !== own && origin instanceof PeerOrigin && clock !== undefined) {
        this.departed.set(id, { clock, epoch: this.epoch, via: from })
      }
    }
    const changed = [...changes.added, ...changes.updated, ...changes.removed]
    // When a peer marks this replica offline, y-protocols bumps the local clock and reports it as removed;
    // that peer must hear the re-assertion too, so this replica's own state is never withheld.
    const exclude = changed.includes(own) ? null : from
    this.broadcast(encodeAwarenessMessage(this.awareness, changed), exclude)
  }

  private ownOrigin(origin: unknown): PeerOrigin | null {
    if (!(origin instanceof PeerOrigin)) return null
    const attachment = this.attachments.get(origin.transport)
    return attachment?.links.get(origin.peer)?.origin === origin ? origin : null
  }

  private peerJoined(attachment: Attachment, peer: PeerId): void {
    const existing = attachment.links.get(peer)
    if (existing === undefined) {
      attachment.links.set(peer, this.newLink(attachment, peer))
    } else {
      existing.synced = false
    }
    this.send(attachment, peer, encodeSyncStep1(this.doc))
    // A fresh clock for this replica's own state: a peer that removed it when the link last dropped ignores
    // the same clock again (y-protocols, stock y-websocket server included). The renewal goes to every peer.
    const local = this.awareness.getLocalState()
    if (local !== null) this.awareness.setLocalState(local)
    const known = [...this.awareness.getStates().keys()].filter((id) => id !== this.awareness.clientID)
    if (known.length > 0) this.send(attachment, peer, encodeAwarenessMessage(this.awareness, known))
  }

  private peerLeft(attachment: Attachment, peer: PeerId): void {
    const link = attachment.links.get(peer)
    if (link === undefined) return
    attachment.links.delete(peer)
    this.dropLearned(link.origin)
  }

  /** Remove awareness states whose latest version came from `origin`, so a departed peer leaves no ghost. */
  private dropLearned(origin: PeerOrigin): void {
    const ids: number[] = []
    for (const [id, from] of this.learnedFrom) if (from === origin) ids.push(id)
    for (const id of ids) this.learnedFrom.delete(id)
    // Peers that still see the client drop it too; if it is in fact alive it re-asserts with a higher clock.
    if (ids.length > 0) awarenessProtocol.removeAwarenessStates(this.awareness, ids, origin)
  }

  private forget(attachment: Attachment): void {
    this.attachments.delete(attachment.transport)
    for (const link of attachment.links.values()) this.dropLearned(link.origin)
    attachment.links.clear()
  }

  private receive(attachment: Attachment, peer: PeerId, message: Uint8Array): void {
    this.counters.received++
    let link = attachment.links.get(peer)
    if (link === undefined) {
      // A message before peerJoined: accept it, but the handshake waits for peerJoined.
      link = this.newLink(attachment, peer)
      attachment.links.set(peer, link)
    }
    let reply: Uint8Array | null = null
    let becameSynced = false
    try {
      const decoder = decoding.createDecoder(message)
      const type = decoding.readVarUint(decoder)
      switch (type) {
        case messageSync: {
          const answer = answerSyncMessage(decoder, this.doc, link.origin)
          if (answer.step === syncProtocol.messageYjsSyncStep2 && !link.synced) becameSynced = true
          reply = answer.reply
          break
        }
        case messageAwareness: {
          const update = decoding.readVarUint8Array(decoder)
          this.readmit(link, readAwarenessUpdate(update))
          awarenessProtocol.applyAwarenessUpdate(this.awareness, update, link.origin)
          break
        }
        case messageQueryAwareness:
          reply = encodeAwarenessMessage(this.awareness, [...this.awareness.getStates().keys()])
          break
        case messageAuth:
          break
        default:
          throw new ChorusError('corrupt', `unknown message type ${type}`)
      }
    } catch (error) {
      this.counters.malformed++
      this.report(error, attachment.transport, peer)
      return
    }
    if (reply !== null) this.send(attachment, peer, reply)
    if (becameSynced) {
      link.synced = true
      this.events.emit('synced', [peer, attachment.transport])
    }
  }

  private newLink(attachment: Attachment, peer: PeerId): Link {
    return { origin: new PeerOrigin(attachment.transport, peer), epoch: ++this.epoch, synced: false }
  }

  /**
   * A state removed on a peer's word (it left, or a peer said the client left) comes back at the same clock
   * when links reopen, and y-protocols ignores an equal clock: the client would stay invisible until its
   * next renewal (up to 15 s). Forgetting the clock lets it in again, but only from a link that is newer
   * than the removal or from the link that reported it (links are FIFO), since any other link may still
   * carry a copy sent before the client left.
   */
  private readmit(link: Link, entries: readonly AwarenessEntry[]): void {
    for (const { client, clock, present } of entries) {
      const gone = this.departed.get(client)
      if (!present || gone === undefined || gone.clock !== clock) continue
      if (link.epoch <= gone.epoch && link.origin !== gone.via) continue
      if (!this.awareness.states.has(client)) this.awareness.meta.delete(client)
      this.departed.delete(client)
    }
  }

  private broadcast(message: Uint8Array, exclude: PeerOrigin | null): void {
    for (const attachment of this.attachments.values()) {
      if (exclude !== null && exclude.transport === attachment.transport) {
        for (const peer of attachment.links.keys()) if (peer !== exclude.peer) this.send(attachment, peer, message)
        continue
      }
      try {
        attachment.transport.broadcast(message)
        this.counters.sent++
      } catch (error) {
        this.counters.sendErrors++
        this.report(error, attachment.transport, null)
      }
    }
  }

  private send(attachment: Attachment, peer: PeerId, message: Uint8Array): void {
    // A throw here would surface in whatever transaction triggered the send, e.g. the user's own write.
    try {
      attachment.transport.send(peer, message)
      this.counters.sent++
    } catch (error) {
      this.counters.sendErrors++
      this.report(error, attachment.transport, peer)
    }
  }

  private report(error: unknown, transport: Transport, peer: PeerId | null): void {
    try {
      this.onError?.(error, { transport, peer })
    } catch {
      // A failing error callback must not break replication either.
    }
  }
}
