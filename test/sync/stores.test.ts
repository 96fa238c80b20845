import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { describe, expect, it } from 'vitest'
import { isChorusError, MemoryStore, type Store } from '@chorus/sync'
import { SQLITE_SCHEMA_VERSION, SqliteStore } from '@chorus/sync/sqlite'
import { runStoreTests } from '@chorus/sync/testing/suites'
import { makeTempDir, tempDir } from '../support/temp.ts'

runStoreTests('MemoryStore', () => Promise.resolve({ store: new MemoryStore(), cleanup: () => Promise.resolve() }))

runStoreTests('SqliteStore', () => {
  const dir = makeTempDir('chorus-store-')
  const path = join(dir.path, 'store.sqlite')
  const opened: Store[] = [new SqliteStore(path)]
  return Promise.resolve({
    store: opened[0] as Store,
    reopen: () => {
      const store = new SqliteStore(path)
      opened.push(store)
      return Promise.resolve(store)
    },
    cleanup: async () => {
      for (const store of opened) await store.close()
      dir.remove()
    },
  })
})

runStoreTests("SqliteStore(':memory:', durability full)", () => {
  const store = new SqliteStore(':memory:', { durability: 'full' })
  return Promise.resolve({ store, cleanup: () => store.close() })
})

describe('SqliteStore on disk', () => {
  const withDir = (fn: (dir: string) => Promise<void>) => () => fn(tempDir('chorus-sqlite-'))

  it(
    'creates missing parent folders and uses WAL with the chosen synchronous level',
    withDir(async (dir) => {
      const path = join(dir, 'a', 'b', 'cache.sqlite')
      const store = new SqliteStore(path, { durability: 'full' })
      await store.append('s', new Uint8Array([1]))
      const db = new DatabaseSync(path)
      expect(db.prepare('PRAGMA journal_mode').get()).toEqual({ journal_mode: 'wal' })
      expect(db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get()).toEqual({
        value: SQLITE_SCHEMA_VERSION,
      })
      db.close()
      await store.close()
    }),
  )

  it(
    'refuses a file written with a newer schema version',
    withDir(async (dir) => {
      const path = join(dir, 'store.sqlite')
      await new SqliteStore(path).close()
      const db = new DatabaseSync(path)
      db.prepare("UPDATE meta SET value = ? WHERE key = 'schema_version'").run(SQLITE_SCHEMA_VERSION + 1)
      db.close()
      const error = catchError(() => new SqliteStore(path))
      expect(isChorusError(error, 'corrupt')).toBe(true)
      expect(String(error)).toMatch(/schema version 2/)
      return Promise.resolve()
    }),
  )

  it(
    'reports a file that is not a database as corrupt',
    withDir((dir) => {
      const path = join(dir, 'junk.sqlite')
      writeFileSync(path, 'this is not an SQLite database, only some text that is long enough'.repeat(100))
      expect(isChorusError(catchError(() => new SqliteStore(path)), 'corrupt')).toBe(true)
      return Promise.resolve()
    }),
  )

  it(
    'two connections to one file never hand out the same seq',
    withDir(async (dir) => {
      const path = join(dir, 'shared.sqlite')
      const a = new SqliteStore(path)
      const b = new SqliteStore(path)
      const seqs: number[] = []
      for (let i = 0; i < 20; i++) seqs.push(await (i % 2 === 0 ? a : b).append('s', new Uint8Array([i])))
      expect(seqs).toEqual(Array.from({ length: 20 }, (_, i) => i + 1))
      await a.compact('s', new Uint8Array([99]), 20)
      expect(await b.append('s', new Uint8Array([20]))).toBe(21)
      expect(await b.load('s')).toEqual({ updates: [new Uint8Array([99]), new Uint8Array([20])], lastSeq: 21 })
      await a.close()
      await b.close()
    }),
  )
})

function catchError(fn: () => unknown): unknown {
  try {
    fn()
  } catch (e) {
    return e
  }
  return undefined
}
