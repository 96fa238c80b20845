/**
 * A Store keeps the updates of spaces durable: an append-only log per space plus compaction into a snapshot.
 * Implementations: `MemoryStore` (tests), `SqliteStore` (an agent's offline cache, the relay's store),
 * not IndexedDB: the browser keeps its documents with y-indexeddb instead (`OfflineCache` in @chorus/web).
 */

export interface StoredSpace {
  /** The snapshot (if any) followed by every update appended since, in append order. */
  updates: Uint8Array[]
  /** Sequence number of the last update appended, 0 when none. */
  lastSeq: number
}

export interface Store {
  /** Everything stored for `space`; an unknown space gives `{ updates: [], lastSeq: 0 }`. */
  load(space: string): Promise<StoredSpace>
  /** Durably append one update; resolves with its sequence number once it is on disk. */
  append(space: string, update: Uint8Array): Promise<number>
  /**
   * Atomically replace the snapshot and every update with seq <= `throughSeq` by `snapshot`
   * (which must contain them). Updates appended after `throughSeq` are kept.
   */
  compact(space: string, snapshot: Uint8Array, throughSeq: number): Promise<void>
  /** Spaces that have anything stored. */
  spaces(): Promise<string[]>
  /** Forget a space entirely. */
  remove(space: string): Promise<void>
  close(): Promise<void>
}

/**
 * An optional capability of a Store (`SqliteStore` has it): group commit. Appends made with `appendGrouped` in one
 * turn of the event loop, across all spaces, share one transaction, committed right after that turn (or sooner by
 * `commitGroup()`, or by any other call of the store). Nothing appended that way is durable before the commit,
 * so a caller that must not reveal an update before it is stored waits for `onGroupCommitted`. Plain `append`
 * keeps its own contract: committed before its promise exists.
 */
export interface GroupCommitStore extends Store {
  /**
   * Append `update` inside the open group transaction (opening one). Resolves with its sequence number once that
   * transaction is committed; rejects if the append or the commit fails. An append that fails ends its group
   * (rolled back: every append in it is rejected and listeners get the error).
   */
  appendGrouped(space: string, update: Uint8Array): Promise<number>
  /**
   * Whether a group transaction is open. Every `appendGrouped` since the last one ended is in it: an append that
   * fails fails its whole group, so an update is never left out of a group that then commits.
   */
  readonly groupOpen: boolean
  /** Commit the open group now; nothing to do when none is open. A failure is reported as `appendGrouped`'s is. */
  commitGroup(): void
  /**
   * `listener` is called synchronously right after each group transaction ends: with `undefined` once it is
   * committed, with the error when it failed (its appends are then lost and rejected). Returns an unsubscribe
   * function. A listener that throws is reported as an uncaught exception and does not disturb the others.
   */
  onGroupCommitted(listener: (error: unknown) => void): () => void
}

/** Whether `store` offers group commit (`GroupCommitStore`). */
export function isGroupCommitStore(store: Store): store is GroupCommitStore {
  const s = store as Partial<GroupCommitStore>
  return (
    typeof s.appendGrouped === 'function' &&
    typeof s.commitGroup === 'function' &&
    typeof s.onGroupCommitted === 'function' &&
    typeof s.groupOpen === 'boolean'
  )
}

/** Transaction origin of updates applied from a Store: they are history, not news, so no live events fire. */
export const STORE_ORIGIN: unique symbol = Symbol.for('chorus.store')
