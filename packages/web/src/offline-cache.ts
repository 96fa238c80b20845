import { IndexeddbPersistence, clearDocument } from 'y-indexeddb'
import type * as Y from 'yjs'

/** One document kept in IndexedDB. */
interface CachedDocument {
  readonly name: string
  readonly persistence: IndexeddbPersistence
}

/**
 * A space's documents kept in IndexedDB with y-indexeddb: every update, local or from the relay, is written as it
 * happens, and a page that opens the cache again (offline, after a reload) starts from everything it had.
 */
export class OfflineCache {
  private readonly documents: CachedDocument[]

  private constructor(documents: CachedDocument[]) {
    this.documents = documents
  }

  /** The IndexedDB database that holds document `name` (one per document, as y-indexeddb keeps them). */
  static databaseName(prefix: string, name: string): string {
    return `${prefix}:${name}`
  }

  /** Opens (or creates) the database of each document and loads what it holds into the document. */
  static async open(prefix: string, documents: ReadonlyArray<{ name: string; doc: Y.Doc }>): Promise<OfflineCache> {
    const cached = documents.map((d) => ({ name: d.name, persistence: new IndexeddbPersistence(OfflineCache.databaseName(prefix, d.name), d.doc) }))
    const cache = new OfflineCache(cached)
    try {
      await Promise.all(cached.map((c) => c.persistence.whenSynced))
    } catch (e) {
      await cache.close()
      throw e
    }
    return cache
  }

  /** Deletes the stored documents of a space (e.g. on leaving it on a shared computer). */
  static async clear(prefix: string, names: readonly string[]): Promise<void> {
    await Promise.all(names.map((n) => clearDocument(OfflineCache.databaseName(prefix, n))))
  }

  /**
   * Resolves once every update written so far is committed to disk. y-indexeddb does not wait for its writes; a
   * read-only transaction on the same store runs only after the read-write ones queued before it have committed.
   */
  async stored(): Promise<void> {
    await Promise.all(this.documents.map((d) => committed(d.persistence)))
  }

  async close(): Promise<void> {
    await Promise.all(this.documents.map((d) => d.persistence.destroy()))
  }
}

const committed = (persistence: IndexeddbPersistence): Promise<void> => {
  const db = persistence.db
  if (db === null) return persistence.whenSynced.then(() => committed(persistence))
  return new Promise((resolve, reject) => {
    const tx = db.transaction(['updates'], 'readonly')
    tx.objectStore('updates').count()
    tx.oncomplete = () => resolve()
    tx.onerror = () => reject(tx.error ?? new Error('IndexedDB read failed'))
    tx.onabort = () => reject(tx.error ?? new Error('IndexedDB read aborted'))
  })
}
