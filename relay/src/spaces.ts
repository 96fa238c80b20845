/**
 * The relay's loaded spaces: per name one `Y.Doc`, its `Awareness`, the connections on it and its persistence.
 * A space loads from the store on first use and unloads after `idleMs` without anyone on it.
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
import { Awareness, removeAwarenessStates } from 'y-protocols/awareness'
import {
  ChorusError,
  encodeAwarenessMessage,
  encodeSyncUpdate,
  isGroupCommitStore,
  PeerOrigin,
  persist,
  STORE_ORIGIN,
  type Persistence,
  type Store,
} from '@chorus/sync'
import { silentLogger, type Logger } from './logger.ts'

export const DEFAULT_IDLE_MS = 30_000
export const MAX_SPACE_NAME_LENGTH = 128

const SPACE_NAME = /^[A-Za-z0-9._#-]+$/

/**
 * Why `name` is not a valid space name, or null when it is: 1-128 characters of `A-Z a-z 0-9 . _ # -`
 * (`#` separates a space from its restricted-channel documents, e.g. `team#ai-only`).
 */
export function checkSpaceName(name: string): string | null {
  if (name.length === 0 || name.length > MAX_SPACE_NAME_LENGTH || !SPACE_NAME.test(name)) {
    return `invalid space name: use 1-${MAX_SPACE_NAME_LENGTH} characters of A-Z a-z 0-9 . _ # -`
  }
  return null
}

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
    if (this.held !== undefined) this.held.push({ kind: 'all', message, skip, ...(update === undefined ? {} : { update }) })
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

export interface SpaceRegistryOptions {
  store: Store
  /** Unload a space this long after its last connection left (default 30 s). */
  idleMs?: number
  logger?: Logger
  /** Passed to `persist()`: compact a space's log after this many appends (default 500). */
  compactEvery?: number
  /** Called once per load, after the space's history is applied and before any connection joins it. */
  onLoad?: (entry: SpaceEntry) => void
  /**
   * Use the store's group commit when it has one (default true): one transaction per turn of the event loop, with
   * fan-out held until it is committed (see the module comment). False appends each update on its own.
   */
  groupCommit?: boolean
}

interface Slot {
  readonly name: string
  /** Acquired and not yet released; a space with holds is never unloaded. */
  holds: number
  readonly ready: Promise<SpaceEntry>
  entry: SpaceEntry | undefined
  idle: ReturnType<typeof setTimeout> | undefined
}

export class SpaceRegistry {
  private readonly store: Store
  private readonly idleMs: number
  private readonly logger: Logger
  private readonly compactEvery: number | undefined
  private readonly onLoad: ((entry: SpaceEntry) => void) | undefined
  private readonly slots = new Map<string, Slot>()
  /** Spaces still flushing after an unload: loading one again waits for it. */
  private readonly unloading = new Map<string, Promise<void>>()
  /** Present when the store's group commit is used. */
  private readonly gate: CommitGate | undefined
  private readonly stopGroup: (() => void) | undefined
  /** Spaces with updates in the open group, and how to settle each. */
  private readonly holding = new Map<SpaceEntry, (error: unknown) => void>()
  private readonly evicted = new WeakSet<SpaceEntry>()
  private closed = false

  constructor(options: SpaceRegistryOptions) {
    const idleMs = options.idleMs ?? DEFAULT_IDLE_MS
    if (!(Number.isFinite(idleMs) && idleMs >= 0)) {
      throw new ChorusError('invalid_input', `idleMs must be a non-negative number, got ${idleMs}`)
    }
    this.store = options.store
    this.idleMs = idleMs
    this.logger = options.logger ?? silentLogger
    this.compactEvery = options.compactEvery
    this.onLoad = options.onLoad
    const store = options.store
    if (options.groupCommit !== false && isGroupCommitStore(store)) {
      this.gate = {
        hold: (entry, settled) => {
          // persist() appended just before: a group is open unless that append failed to open one. Then nothing
          // of it is stored: the space goes now, before anything is sent.
          if (!store.groupOpen) {
            const error = new Error(`space ${entry.name}: an update could not be added to the store`)
            settled(error)
            this.evict(entry, error)
            return
          }
          this.holding.set(entry, settled)
        },
        commitNow: () => store.commitGroup(),
      }
      this.stopGroup = store.onGroupCommitted(this.onGroupCommitted)
    }
  }

  /** Spaces loaded and ready (not counting one still loading). */
  get loadedCount(): number {
    let n = 0
    for (const slot of this.slots.values()) if (slot.entry !== undefined) n++
    return n
  }

  isLoaded(name: string): boolean {
    return this.slots.get(name)?.entry !== undefined
  }

  /** The space `name` if it is loaded and ready, without holding it. */
  loaded(name: string): SpaceEntry | undefined {
    return this.slots.get(name)?.entry
  }

  /**
   * The loaded space `name`, loading it from the store if needed. The caller holds it (it stays loaded) until it
   * calls `release`. Throws `invalid_input` for a bad name, `closed` after `close()`, and what the store throws.
   */
  async acquire(name: string): Promise<SpaceEntry> {
    const invalid = checkSpaceName(name)
    if (invalid !== null) throw new ChorusError('invalid_input', invalid, { space: name })
    if (this.closed) throw new ChorusError('closed', 'the relay is stopping')
    let slot = this.slots.get(name)
    if (slot === undefined) {
      slot = this.load(name)
      this.slots.set(name, slot)
    }
    slot.holds++
    if (slot.idle !== undefined) {
      clearTimeout(slot.idle)
      slot.idle = undefined
    }
    try {
      return await slot.ready
    } catch (e) {
      slot.holds--
      throw e
    }
  }

  release(entry: SpaceEntry): void {
    const slot = this.slots.get(entry.name)
    // A space that was evicted meanwhile has nothing left to schedule.
    if (slot === undefined || slot.entry !== entry || slot.holds === 0) return
    slot.holds--
    if (slot.holds > 0 || this.closed) return
    slot.idle = setTimeout(() => {
      slot.idle = undefined
      if (slot.holds === 0 && this.slots.get(slot.name) === slot) this.unload(slot, entry)
    }, this.idleMs)
    // Stopping the relay clears these; an idle timer alone must not keep a process alive.
    slot.idle.unref()
  }

  /** Unload every space (flushing each), and refuse further acquires. The store is left to its owner. */
  async close(): Promise<void> {
    this.closed = true
    const slots = [...this.slots.values()]
    this.slots.clear()
    for (const slot of slots) if (slot.idle !== undefined) clearTimeout(slot.idle)
    await Promise.all(
      slots.map(async (slot) => {
        const entry = await slot.ready.catch(() => undefined)
        if (entry !== undefined) await this.dispose(entry)
      }),
    )
    await Promise.all(this.unloading.values())
    this.stopGroup?.()
  }

  private readonly onGroupCommitted = (error: unknown): void => {
    if (this.holding.size === 0) return
    const holding = [...this.holding]
    this.holding.clear()
    for (const [entry, settled] of holding) {
      settled(error)
      if (error !== undefined) this.evict(entry, error)
    }
  }

  private load(name: string): Slot {
    const slot: Slot = { name, holds: 0, ready: this.open(name), entry: undefined, idle: undefined }
    // Registered before any acquire awaits `ready`, so `entry` is set by the time a holder can release it.
    slot.ready.then(
      (entry) => {
        slot.entry = entry
      },
      () => {
        if (this.slots.get(name) === slot) this.slots.delete(name)
      },
    )
    return slot
  }

  private async open(name: string): Promise<SpaceEntry> {
    await this.unloading.get(name)
    const doc = new Y.Doc()
    const awareness = new Awareness(doc)
    // The relay is not a participant: it announces no presence of its own.
    awareness.setLocalState(null)
    let entry: SpaceEntry | undefined
    try {
      const persistence = await persist(doc, this.store, name, {
        ...(this.compactEvery === undefined ? {} : { compactEvery: this.compactEvery }),
        groupCommit: this.gate !== undefined,
        onError: (e) => {
          if (entry !== undefined) this.evict(entry, e)
        },
      })
      // If close() ran meanwhile, it waits for this load and disposes the entry.
      entry = new SpaceEntry(name, doc, awareness, persistence, this.gate)
      try {
        this.onLoad?.(entry)
      } catch (e) {
        // A failing hook must not make the space unreachable.
        this.logger.error('a space load hook failed', { space: name, error: e })
      }
      return entry
    } catch (e) {
      awareness.destroy()
      doc.destroy()
      throw e
    }
  }

  /**
   * A write could not be stored: drop the space at once and close its connections. The clients still hold their
   * updates; when they reconnect the space loads from the store and sync step 2 sends back what it lacks.
   */
  private evict(entry: SpaceEntry, error: unknown): void {
    // Once per space: a failed group commit fails each of its appends too.
    if (this.evicted.has(entry)) return
    this.evicted.add(entry)
    this.logger.error('could not store an update; closing the space so that clients resync', {
      space: entry.name,
      error,
    })
    const slot = this.slots.get(entry.name)
    if (slot?.entry !== entry) return
    this.slots.delete(entry.name)
    if (slot.idle !== undefined) clearTimeout(slot.idle)
    entry.closeAll(1011, 'the relay could not store an update')
    this.unload(slot, entry)
  }

  private unload(slot: Slot, entry: SpaceEntry): void {
    if (this.slots.get(slot.name) === slot) this.slots.delete(slot.name)
    void this.dispose(entry)
  }

  private dispose(entry: SpaceEntry): Promise<void> {
    const previous = this.unloading.get(entry.name) ?? Promise.resolve()
    const done = previous.then(() => entry.dispose(this.logger))
    this.unloading.set(entry.name, done)
    void done.finally(() => {
      if (this.unloading.get(entry.name) === done) this.unloading.delete(entry.name)
    })
    return done
  }
}
