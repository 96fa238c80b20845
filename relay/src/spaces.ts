/**
 * The relay's loaded spaces by name (`SpaceEntry`, space-entry.ts): a space loads from the store on first use and
 * unloads after `idleMs` without anyone on it. With a store that has group commit (`GroupCommitStore`:
 * SqliteStore), the registry opens one group per turn of the event loop across all spaces and tells each space
 * when the group holding its updates is committed (or lost: the space is then evicted, its connections closed with
 * 1011 so that the clients resync).
 */
import * as Y from 'yjs'
import { Awareness } from 'y-protocols/awareness'
import { ChorusError, isGroupCommitStore, persist, type Store } from '@chorus/sync'
import { silentLogger, type Logger } from './logger.ts'
import { SpaceEntry, type CommitGate } from './space-entry.ts'

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
   * fan-out held until it is committed (see space-entry.ts). False appends each update on its own.
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
        compactEvery: this.compactEvery,
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
