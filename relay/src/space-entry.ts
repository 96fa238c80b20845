/**
 * One loaded space of the relay: its `Y.Doc`, its `Awareness`, the connections on it and its persistence (the
 * registry in spaces.ts loads and unloads them).
 *
 * Persist before fan-out: no connection hears of an update before it is committed to the store. On a store with
 * group commit (`GroupCommitStore`: SqliteStore) every update received in one turn of the event loop, across all
 * spaces, is appended to one transaction, committed right after that turn. Until that commit, a space that has
 * uncommitted updates holds everything it would send to its connections (the updates, sync replies computed
 * from the doc, awareness, greetings), in order per connection, and sends it right after the commit, updates held
 * one after another merged into one message; if the commit fails, it sends none of it and is evicted (its
 * connections closed with 1011, so the clients resync).
 * An update that does not come from a connection (the relay's own writes, the REST API) is committed at once, with
 * whatever else is pending, so its writer may go on as if it were stored, as with a plain store. On a store
 * without group commit (MemoryStore, custom stores), each update is appended on its own before it is fanned out.
 */
import * as Y from 'yjs'
import { removeAwarenessStates, type Awareness } from 'y-protocols/awareness'
import { encodeAwarenessMessage, encodeSyncUpdate, PeerOrigin, STORE_ORIGIN, type Persistence } from '@chorus/sync'
import type { Logger } from './logger.ts'

/** One connection as a space sees it. */
export interface SpacePeer {
  /** Queue one y-protocols message; never throws. */
  send(message: Uint8Array): void
  close(code: number, reason: string): void
}

interface AwarenessChanges {
  added: number[]
  updated: number[]
  removed: number[]
}

/** What a space holds until a commit: a message for one connection, a broadcast, or a sender's callback. */
type Held =
  | { readonly kind: 'to'; readonly message: Uint8Array; readonly to: SpacePeer }
  /** For every connection but `skip`; `update` for a document update, so that a run of them can go out merged. */
  | { readonly kind: 'all'; readonly message: Uint8Array; readonly skip: unknown; readonly update?: Uint8Array }
  | { readonly kind: 'run'; readonly run: () => void }

const isUpdate = (h: Held | undefined): h is Held & { kind: 'all'; update: Uint8Array } => h?.kind === 'all' && h.update !== undefined

/** How a space waits for its store's group commit (given by its `SpaceRegistry`). */
export interface CommitGate {
  /**
   * `entry` has just appended an update to the open group: call `settled` right after that group ends, with
   * `undefined` once it is committed or with the error that lost it.
   */
  hold(entry: SpaceEntry, settled: (error: unknown) => void): void
  /** Commit the open group now (and settle every holder). */
  commitNow(): void
}

export class SpaceEntry {
  readonly name: string
  readonly doc: Y.Doc
  readonly awareness: Awareness
  readonly persistence: Persistence
  private readonly peers = new Set<SpacePeer>()
  /** The connection that last announced each awareness client: its states go when that connection does. */
  private readonly owners = new Map<number, SpacePeer>()
  private readonly gate: CommitGate | undefined
  /** While an update of this space awaits its commit: the messages that wait with it, in order. */
  private held: Held[] | undefined
  private disposed = false

  /** `gate`: the persistence appends with group commit, and fan-out waits for it (see the module comment). */
  constructor(name: string, doc: Y.Doc, awareness: Awareness, persistence: Persistence, gate?: CommitGate) {
    this.name = name
    this.doc = doc
    this.awareness = awareness
    this.persistence = persistence
    this.gate = gate
    // persist() subscribed to 'update' before this handler exists, and handlers run in subscription order: each
    // update is appended to the store (committed, or added to the open group) before it is fanned out.
    doc.on('update', this.fanOut)
    awareness.on('update', this.onAwareness)
  }

  /**
   * Send `message` to `peer` in order after everything the space holds for it: at once when no update of the
   * space awaits its commit, else right after that commit (and never if it fails). Every message computed from
   * the doc goes this way, so none can carry an update that is not stored yet.
   */
  sendTo(peer: SpacePeer, message: Uint8Array): void {
    if (this.held === undefined) peer.send(message)
    else this.held.push({ kind: 'to', message, to: peer })
  }

  /**
   * Run `send` at once when no update of the space awaits its commit, else right after that commit, in order
   * with the messages held (never if the commit fails): for senders other than connections, such as the
   * replicator that links the space to libp2p peers.
   */
  afterCommit(send: () => void): void {
    if (this.held === undefined) send()
    else this.held.push({ kind: 'run', run: send })
  }

  /** `sendTo` every connection but `skip`; held, the recipients are those connected when it is sent. */
  private broadcast(message: Uint8Array, skip: unknown, update?: Uint8Array): void {
    if (this.held !== undefined) this.held.push({ kind: 'all', message, skip, update })
    else for (const peer of this.peers) if (peer !== skip) peer.send(message)
  }

  get connections(): ReadonlySet<SpacePeer> {
    return this.peers
  }

  join(peer: SpacePeer): void {
    if (!this.disposed) this.peers.add(peer)
  }

  /** Remove `peer` and the awareness states it announced (no ghost participants). */
  leave(peer: SpacePeer): void {
    if (!this.peers.delete(peer)) return
    const owned: number[] = []
    for (const [client, owner] of this.owners) if (owner === peer) owned.push(client)
    for (const client of owned) this.owners.delete(client)
    if (!this.disposed && owned.length > 0) removeAwarenessStates(this.awareness, owned, 'disconnect')
  }

  /** Close every connection, e.g. when the space cannot be stored any more. */
  closeAll(code: number, reason: string): void {
    for (const peer of [...this.peers]) peer.close(code, reason)
  }

  /** Stop fanning out, flush and detach persistence, drop the doc. Failures of the flush are logged. */
  async dispose(logger: Logger): Promise<void> {
    if (this.disposed) return
    this.disposed = true
    this.held = undefined
    this.doc.off('update', this.fanOut)
    this.awareness.off('update', this.onAwareness)
    try {
      await this.persistence.destroy()
    } catch (e) {
      logger.error('could not flush a space while unloading it', { space: this.name, error: e })
    }
    this.awareness.destroy()
    this.doc.destroy()
  }

  private readonly fanOut = (update: Uint8Array, origin: unknown): void => {
    const message = encodeSyncUpdate(update)
    const gate = this.gate
    // An update applied from the store (a compaction merging another writer's) is stored already: it only keeps
    // its place in the order.
    const fresh = gate !== undefined && origin !== STORE_ORIGIN
    if (fresh && this.held === undefined) {
      this.held = []
      gate.hold(this, this.settled)
    }
    this.broadcast(message, origin, update)
    // Not from a connection (nor from a libp2p peer, which is one too): the relay's own write, or one made over
    // REST, whose caller is answered as soon as it returns. It is committed now, as a plain append would be.
    if (fresh && !this.peers.has(origin as SpacePeer) && !(origin instanceof PeerOrigin)) gate.commitNow()
  }

  /** The group holding this space's updates ended: send what waited for it, or drop it all if it failed. */
  private readonly settled = (error: unknown): void => {
    const held = this.held
    this.held = undefined
    if (held === undefined || error !== undefined || this.disposed) return
    // A connection that left meanwhile (or is closed by one of these sends, too far behind) gets nothing more.
    for (let i = 0; i < held.length; ) {
      const h = held[i] as Held
      if (h.kind === 'run') {
        h.run()
        i++
        continue
      }
      if (h.kind === 'to') {
        if (this.peers.has(h.to)) h.to.send(h.message)
        i++
        continue
      }
      // Updates broadcast one after another go out as one merged update: one message per connection instead of
      // one per update, however many writers a busy space has. A connection may get back its own updates with
      // others' (Yjs ignores what it has, as with the stock server, which echoes every update).
      let end = i + 1
      if (isUpdate(h)) while (isUpdate(held[end])) end++
      if (end - i === 1) {
        for (const peer of this.peers) if (peer !== h.skip) peer.send(h.message)
      } else {
        const run = held.slice(i, end) as Array<Held & { kind: 'all'; update: Uint8Array }>
        const merged = encodeSyncUpdate(Y.mergeUpdates(run.map((u) => u.update)))
        const only = run.every((u) => u.skip === h.skip) ? h.skip : undefined
        for (const peer of this.peers) if (peer !== only) peer.send(merged)
      }
      i = end
    }
  }

  private readonly onAwareness = (changes: AwarenessChanges, origin: unknown): void => {
    const from = this.peers.has(origin as SpacePeer) ? (origin as SpacePeer) : undefined
    if (from !== undefined) {
      for (const client of changes.added) this.owners.set(client, from)
      for (const client of changes.updated) this.owners.set(client, from)
    }
    for (const client of changes.removed) this.owners.delete(client)
    const changed = [...changes.added, ...changes.updated, ...changes.removed]
    // To every connection, the sender too: the stock client closes a socket that is silent for 30 s, and its
    // own renewals echoed back are what keeps a quiet space talking.
    const message = encodeAwarenessMessage(this.awareness, changed)
    this.broadcast(message, undefined)
  }
}
