/**
 * Keeps one space's `Y.Doc` in a `Store`: loads what is stored, then appends every later update.
 *
 * ```ts
 * const doc = new Y.Doc()
 * const persistence = await persist(doc, new SqliteStore('.data/cache.sqlite'), 'team')
 * doc.getMap('state').set('k', 1) // with SqliteStore, on disk before `set` returns
 * await persistence.destroy()
 * ```
 *
 * With `groupCommit: true` and a store that offers it (`GroupCommitStore`, e.g. SqliteStore), updates are appended
 * with `appendGrouped` instead: all the updates of one turn of the event loop, across every persisted doc on that
 * store, go into one transaction committed right after the turn. Cheaper (one commit instead of one per update),
 * but an update is durable only once that commit is done (`flush()` resolves, or the store's
 * `onGroupCommitted` listeners run), not when the doc's update event returns. The relay uses it and holds its
 * fan-out until the commit; without the option nothing changes.
 */
import * as Y from 'yjs'
import { ChorusError } from '../errors.ts'
import { isGroupCommitStore, STORE_ORIGIN, type Store } from './store.ts'

export interface PersistOptions {
  /** Compact after this many appended updates (default 500); `Infinity` turns automatic compaction off. */
  compactEvery?: number
  /**
   * Called with each failed append or automatic compaction. Failures are also raised by the next `flush()`
   * (or `destroy()`), so without `onError` they still surface.
   */
  onError?: (e: unknown) => void
  /**
   * Append through the store's group commit when it has one (see the module comment). Default false: each update
   * is appended on its own, committed (with SqliteStore) before the doc's update event returns.
   */
  groupCommit?: boolean
}

export interface PersistenceStats {
  /** Updates this Persistence appended to the store. */
  appended: number
  /** Compactions this Persistence completed. */
  compactions: number
  /** The highest sequence number known to be stored for the space. */
  lastSeq: number
}

/**
 * Updates applied from the store carry `STORE_ORIGIN` as their transaction origin (history, not news), and
 * updates with that origin are never appended back.
 */
export interface Persistence {
  readonly stats: Readonly<PersistenceStats>
  /** Resolves when every append issued so far (and any running compaction) has settled. */
  flush(): Promise<void>
  /** Replace everything stored so far by one snapshot of the doc. */
  compact(): Promise<void>
  /** Stop persisting the doc and flush; the store stays open. */
  destroy(): Promise<void>
}

export const DEFAULT_COMPACT_EVERY = 500

export async function persist(
  doc: Y.Doc,
  store: Store,
  space: string,
  options: PersistOptions = {},
): Promise<Persistence> {
  const compactEvery = options.compactEvery ?? DEFAULT_COMPACT_EVERY
  if (!(compactEvery === Infinity || (Number.isSafeInteger(compactEvery) && compactEvery > 0))) {
    throw new ChorusError('invalid_input', `compactEvery must be a positive integer or Infinity, got ${compactEvery}`)
  }
  const persistence = new StorePersistence(doc, store, space, compactEvery, options.onError, options.groupCommit === true)
  await persistence.start()
  return persistence
}

class StorePersistence implements Persistence {
  readonly stats: PersistenceStats = { appended: 0, compactions: 0, lastSeq: 0 }
  private readonly doc: Y.Doc
  private readonly store: Store
  private readonly space: string
  private readonly compactEvery: number
  private readonly onError: ((e: unknown) => void) | undefined
  private readonly pending = new Set<Promise<void>>()
  private compactions: Promise<void> = Promise.resolve()
  private compactionQueued = false
  private sinceCompaction = 0
  private compactedThrough = 0
  // Set when a seq we did not expect shows up: another writer shares the space, so its updates may be missing
  // from our doc and a snapshot of the doc alone would drop them.
  private foreign = false
  private failure: { error: unknown } | undefined
  private destroyed = false
  private readonly appendUpdate: (update: Uint8Array) => Promise<number>

  constructor(
    doc: Y.Doc,
    store: Store,
    space: string,
    compactEvery: number,
    onError: ((e: unknown) => void) | undefined,
    groupCommit: boolean,
  ) {
    this.doc = doc
    this.store = store
    this.space = space
    this.compactEvery = compactEvery
    this.onError = onError
    this.appendUpdate =
      groupCommit && isGroupCommitStore(store)
        ? (update) => store.appendGrouped(space, update)
        : (update) => store.append(space, update)
  }

  async start(): Promise<void> {
    // Subscribe before loading so that nothing the doc does while the load is in flight goes unstored.
    this.doc.on('update', this.onUpdate)
    this.doc.on('destroy', this.onDocDestroy)
    // What the doc held before persist() will never come through an update event.
    if (Y.encodeStateVector(this.doc).length > 1) this.write(Y.encodeStateAsUpdate(this.doc))
    try {
      const stored = await this.store.load(this.space)
      this.apply(stored.updates)
      this.foreign = this.stats.lastSeq > stored.lastSeq
      this.stats.lastSeq = Math.max(this.stats.lastSeq, stored.lastSeq)
    } catch (e) {
      this.unsubscribe()
      throw e
    }
  }

  async flush(): Promise<void> {
    // An append that settles may queue a compaction, and a compaction waits for appends: repeat until quiet.
    for (;;) {
      await this.settle()
      const compactions = this.compactions
      await compactions
      if (this.pending.size === 0 && compactions === this.compactions) break
    }
    const failure = this.failure
    this.failure = undefined
    if (failure !== undefined) throw failure.error
  }

  compact(): Promise<void> {
    const run = this.compactions.then(() => this.compactNow())
    this.compactions = run.catch(() => undefined)
    return run
  }

  async destroy(): Promise<void> {
    this.destroyed = true
    this.unsubscribe()
    await this.flush()
  }

  private readonly onUpdate = (update: Uint8Array, origin: unknown): void => {
    if (origin !== STORE_ORIGIN) this.write(update)
  }

  private readonly onDocDestroy = (): void => {
    this.destroyed = true
    this.unsubscribe()
  }

  private unsubscribe(): void {
    this.doc.off('update', this.onUpdate)
    this.doc.off('destroy', this.onDocDestroy)
  }

  /**
   * Issues the append now: a synchronous store (SqliteStore) has committed it before this returns, or, with group
   * commit, has added it to the transaction committed after this turn of the event loop.
   */
  private write(update: Uint8Array): void {
    let appended: Promise<number>
    try {
      // The same promise for a native one; anything else a store returns (a thenable, a number) is wrapped.
      appended = Promise.resolve(this.appendUpdate(update))
    } catch (e) {
      // A store that throws instead of rejecting: reported as a rejection would be, after this event.
      const failed: Promise<void> = Promise.resolve().then(() => {
        this.pending.delete(failed)
        this.fail(e)
      })
      this.pending.add(failed)
      return
    }
    const tracked: Promise<void> = appended.then(
      (seq) => {
        this.pending.delete(tracked)
        this.appended(seq)
      },
      (e: unknown) => {
        this.pending.delete(tracked)
        this.fail(e)
      },
    )
    this.pending.add(tracked)
  }

  private appended(seq: number): void {
    this.stats.appended++
    if (seq !== this.stats.lastSeq + 1) this.foreign = true
    this.stats.lastSeq = Math.max(this.stats.lastSeq, seq)
    this.sinceCompaction++
    if (this.sinceCompaction >= this.compactEvery && !this.compactionQueued && !this.destroyed) {
      this.compactionQueued = true
      this.compact().catch((e: unknown) => this.fail(e))
    }
  }

  private async compactNow(): Promise<void> {
    this.compactionQueued = false
    await this.settle()
    const throughSeq = this.stats.lastSeq
    if (throughSeq <= this.compactedThrough) return
    const merge = this.foreign
    this.foreign = false
    this.sinceCompaction = 0
    try {
      if (merge) this.apply((await this.store.load(this.space)).updates)
      await this.store.compact(this.space, Y.encodeStateAsUpdate(this.doc), throughSeq)
    } catch (e) {
      this.foreign ||= merge
      throw e
    }
    this.compactedThrough = throughSeq
    this.stats.compactions++
  }

  /**
   * Applies stored updates in one transaction, after checking that each decodes, so a corrupt row fails before
   * the doc changes. (Not `Y.mergeUpdates`: it is quadratic, 15 s for 20k updates against 0.1 s for this.)
   */
  private apply(updates: Uint8Array[]): void {
    updates.forEach((update, index) => {
      try {
        Y.decodeUpdate(update)
      } catch (e) {
        throw new ChorusError(
          'corrupt',
          `space ${this.space}: stored update ${index} of ${updates.length} could not be decoded`,
          { space: this.space, index, cause: e },
        )
      }
    })
    try {
      const applyAll = (): void => updates.forEach((update) => Y.applyUpdate(this.doc, update, STORE_ORIGIN))
      Y.transact(this.doc, applyAll, STORE_ORIGIN)
    } catch (e) {
      throw new ChorusError('corrupt', `space ${this.space}: stored updates could not be applied`, {
        space: this.space,
        cause: e,
      })
    }
  }

  private async settle(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled(this.pending)
  }

  private fail(e: unknown): void {
    this.failure ??= { error: e }
    this.onError?.(e)
  }
}
