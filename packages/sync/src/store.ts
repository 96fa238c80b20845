/**
 * A Store keeps the updates of spaces durable: an append-only log per space plus compaction into a snapshot.
 * Implementations: `MemoryStore` (tests), `SqliteStore` (an agent's offline cache, the relay's store),
 * IndexedDB in the browser.
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

/** Transaction origin of updates applied from a Store: they are history, not news, so no live events fire. */
export const STORE_ORIGIN: unique symbol = Symbol.for('chorus.store')
