/**
 * Where the relay keeps its durable state: the spaces' updates (a `Store`) and the leases (a `LeaseLedger`). One
 * spec names both (`--store`, `CHORUS_STORE`); this module is the only place that reads it and opens an engine,
 * so another engine is added here and nowhere else.
 *
 * - `sqlite:PATH`: embedded SQLite in the folder PATH, `chorus.sqlite` (spaces) and `leases.sqlite` (leases).
 *   The default is `sqlite:` followed by the relay's data folder.
 */
import { join } from 'node:path'
import { ChorusError, type Clock, type LeaseLedger, type Store } from '@chorus/sync'
import { SqliteStore } from '@chorus/sync/sqlite'
import { LEASE_LEDGER_FILE, SqliteLeaseLedger } from './sqlite-lease-ledger.ts'

export const STORE_FILE = 'chorus.sqlite'

/** The accepted forms of a storage spec, as error messages and the usage text name them. */
export const STORAGE_FORMS = 'sqlite:PATH (a folder)'

export type StorageSpec = { engine: 'sqlite'; dir: string }

/** The store and the lease ledger the relay runs on. */
export interface Storage {
  readonly spec: StorageSpec
  readonly store: Store
  readonly ledger: LeaseLedger
  /** Closes the ledger, and the store unless it was handed in. */
  close(): Promise<void>
}

/** The default spec: SQLite in the data folder. */
export const defaultStorage = (dataDir: string): string => `sqlite:${dataDir}`

/** Reads a spec such as `sqlite:.data/relay`; anything else is `invalid_input` naming the accepted forms. */
export function parseStorageSpec(text: string): StorageSpec {
  const colon = text.indexOf(':')
  if (colon < 0) throw new ChorusError('invalid_input', `"${text}" names no storage engine; expected ${STORAGE_FORMS}`)
  const engine = text.slice(0, colon)
  if (engine === 'sqlite') {
    const dir = text.slice(colon + 1)
    if (dir.trim() === '') throw new ChorusError('invalid_input', `sqlite: needs a folder; expected ${STORAGE_FORMS}`)
    return { engine, dir }
  }
  // Only the engine is repeated back: a database URL may carry a password.
  throw new ChorusError('invalid_input', `unknown storage engine "${engine}"; expected ${STORAGE_FORMS}`)
}

/**
 * Opens what `spec` names. `store`, when given, is used instead of the spec's store and is not closed by
 * `close()` (tests hand in a `MemoryStore`); the ledger runs on `clock`.
 */
export async function openStorage(spec: string, options: { clock: Clock; store?: Store }): Promise<Storage> {
  const parsed = parseStorageSpec(spec)
  const ledger = new SqliteLeaseLedger(join(parsed.dir, LEASE_LEDGER_FILE), { clock: options.clock })
  const given = options.store
  let store: Store
  try {
    store = given ?? new SqliteStore(join(parsed.dir, STORE_FILE))
  } catch (e) {
    await ledger.close()
    throw e
  }
  return {
    spec: parsed,
    store,
    ledger,
    async close() {
      if (given === undefined) await store.close()
      await ledger.close()
    },
  }
}
