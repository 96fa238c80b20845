import { persist, type Persistence, type PersistOptions } from './persistence.ts'
import type { Space } from '../space/space.ts'
import type { Store } from './store.ts'

/** Persistence of every document of a space. */
export interface SpacePersistence {
  readonly documents: ReadonlyMap<string, Persistence>
  flush(): Promise<void>
  destroy(): Promise<void>
}

/**
 * Loads a space's documents from `store` and keeps every later change there, so the replica survives restarts
 * and works offline. Each document is stored under its own name (`<space>`, `<space>#ai-only`, ...).
 */
export const persistSpace = async (space: Space, store: Store, options: PersistOptions = {}): Promise<SpacePersistence> => {
  const documents = new Map<string, Persistence>()
  for (const d of space.documents) documents.set(d.name, await persist(d.doc, store, d.name, options))
  return {
    documents,
    flush: async () => {
      for (const p of documents.values()) await p.flush()
    },
    destroy: async () => {
      for (const p of documents.values()) await p.destroy()
    },
  }
}
