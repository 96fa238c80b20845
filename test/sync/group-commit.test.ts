/**
 * SqliteStore's group commit (`GroupCommitStore`): grouped appends of one turn of the event loop share one
 * transaction, committed right after that turn; nothing of a group is visible, resolved or reported before its
 * commit; an append that fails fails its whole group. And persist() uses it only when asked to.
 */
import { statSync } from 'node:fs'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { afterEach, beforeEach, describe, expect, it, onTestFinished, vi } from 'vitest'
import * as Y from 'yjs'
import { isChorusError, isGroupCommitStore, MemoryStore, persist } from '@chorus/sync'
import { SqliteStore, type SqliteStoreOptions } from '@chorus/sync/sqlite'
import { tempDir } from '../support/temp.ts'
import { nextTurn } from '../support/wait.ts'

let path = ''
const stores: SqliteStore[] = []
const readers: DatabaseSync[] = []

beforeEach(() => {
  path = join(tempDir('chorus-group-'), 'store.sqlite')
})

afterEach(async () => {
  for (const reader of readers.splice(0)) reader.close()
  for (const store of stores.splice(0)) await store.close()
})

const open = (options: SqliteStoreOptions = {}): SqliteStore => {
  const store = new SqliteStore(path, options)
  stores.push(store)
  return store
}

/** A second connection: it sees only what is committed. */
const reader = (): DatabaseSync => {
  const db = new DatabaseSync(path, { readOnly: true })
  readers.push(db)
  return db
}

const rows = (db: DatabaseSync): Array<{ space: string; seq: number; data: number }> =>
  db
    .prepare('SELECT space, seq, data FROM updates ORDER BY space, seq')
    .all()
    .map((row) => ({ space: String(row.space), seq: Number(row.seq), data: (row.data as Uint8Array)[0] ?? -1 }))

const bytes = (...values: number[]): Uint8Array => new Uint8Array(values)

describe('SqliteStore group commit', () => {
  it('is a GroupCommitStore; MemoryStore is not', () => {
    expect(isGroupCommitStore(open())).toBe(true)
    expect(isGroupCommitStore(new MemoryStore())).toBe(false)
  })

  it('appends of one turn share one transaction, committed after the turn, and resolve only then', async () => {
    const store = open()
    const db = reader()
    const ends: unknown[] = []
    store.onGroupCommitted((error) => ends.push(error))
    await store.append('a', bytes(0))

    const appended = [store.appendGrouped('a', bytes(1)), store.appendGrouped('b', bytes(2)), store.appendGrouped('a', bytes(3))]
    let resolved = false
    void Promise.all(appended).then(() => {
      resolved = true
    })
    expect(store.groupOpen).toBe(true)
    await Promise.resolve()
    // Still this turn: nothing committed, resolved or reported.
    expect(rows(db)).toEqual([{ space: 'a', seq: 1, data: 0 }])
    expect(resolved).toBe(false)
    expect(ends).toEqual([])

    expect(await Promise.all(appended)).toEqual([2, 1, 3])
    expect(ends).toEqual([undefined])
    expect(store.groupOpen).toBe(false)
    expect(rows(db)).toEqual([
      { space: 'a', seq: 1, data: 0 },
      { space: 'a', seq: 2, data: 1 },
      { space: 'a', seq: 3, data: 3 },
      { space: 'b', seq: 1, data: 2 },
    ])
  })

  it('commitGroup commits now and tells the listeners before it returns', () => {
    const store = open()
    const db = reader()
    const ends: unknown[] = []
    const stop = store.onGroupCommitted((error) => ends.push(error))
    void store.appendGrouped('a', bytes(1))
    store.commitGroup()
    expect(ends).toEqual([undefined])
    expect(rows(db)).toHaveLength(1)
    store.commitGroup() // nothing open: nothing to do
    stop()
    void store.appendGrouped('a', bytes(2))
    store.commitGroup()
    expect(ends).toEqual([undefined])
    expect(rows(db)).toHaveLength(2)
    return Promise.resolve()
  })

  it('every other call commits the open group first, keeping its own contract', async () => {
    const store = open()
    const db = reader()
    const grouped = store.appendGrouped('a', bytes(1))
    // A plain append is committed before its promise exists, and so is the group before it.
    const plain = store.append('a', bytes(2))
    expect(rows(db).map((r) => r.data)).toEqual([1, 2])
    expect([await grouped, await plain]).toEqual([1, 2])
    void store.appendGrouped('a', bytes(3))
    expect(await store.load('a')).toEqual({ updates: [bytes(1), bytes(2), bytes(3)], lastSeq: 3 })
    void store.appendGrouped('a', bytes(4))
    await store.compact('a', bytes(9), 4)
    expect(await store.load('a')).toEqual({ updates: [bytes(9)], lastSeq: 4 })
    expect(await store.appendGrouped('a', bytes(5))).toBe(5)
    await store.remove('a')
    expect(await store.appendGrouped('a', bytes(6))).toBe(1)
  })

  it('an append that fails fails its whole group: each of its appends rejects and none is stored', async () => {
    const store = open()
    const db = reader()
    const ends: unknown[] = []
    store.onGroupCommitted((error) => ends.push(error))
    expect(await store.appendGrouped('a', bytes(1))).toBe(1)

    const first = store.appendGrouped('a', bytes(2))
    const other = store.appendGrouped('b', bytes(3))
    // Cannot be bound as a blob: the insert throws inside the open transaction.
    const bad = store.appendGrouped('a', { not: 'bytes' } as unknown as Uint8Array)
    const outcomes = await Promise.allSettled([first, other, bad])
    expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'rejected', 'rejected'])
    expect(ends).toHaveLength(2)
    expect(ends[0]).toBeUndefined()
    expect(ends[1]).toBeInstanceOf(Error)
    expect(store.groupOpen).toBe(false)
    expect(rows(db)).toEqual([{ space: 'a', seq: 1, data: 1 }])
    // The seqs of the lost group are handed out again.
    expect(await Promise.all([store.appendGrouped('a', bytes(4)), store.appendGrouped('b', bytes(5))])).toEqual([2, 1])
  })

  it('two connections to one file, both grouping, never hand out the same seq', async () => {
    const a = open()
    const b = open()
    const seqs: number[] = []
    for (let turn = 0; turn < 6; turn++) {
      const store = turn % 2 === 0 ? a : b
      seqs.push(...(await Promise.all([store.appendGrouped('s', bytes(turn)), store.appendGrouped('s', bytes(turn))])))
    }
    // And within one turn of this process: b's write commits a's open group first instead of waiting for its lock.
    const mixed = [a.appendGrouped('s', bytes(20)), b.appendGrouped('s', bytes(21)), a.appendGrouped('s', bytes(22))]
    await b.append('s', bytes(23))
    seqs.push(...(await Promise.all(mixed)))
    expect(seqs).toEqual(Array.from({ length: 15 }, (_, i) => i + 1))
    expect((await a.load('s')).lastSeq).toBe(16)
  })

  it('close commits an open group', async () => {
    const store = open()
    const appended = store.appendGrouped('a', bytes(1))
    await store.close()
    expect(await appended).toBe(1)
    expect(rows(reader())).toHaveLength(1)
    await expect(store.appendGrouped('a', bytes(2))).rejects.toMatchObject({ code: 'closed' })
  })

  it('checkpoints the WAL on a timer, off the write path, and stops with close', async () => {
    // The store's interval timer is the test's to fire; the commits after each turn still run on their own.
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] })
    onTestFinished(() => void vi.useRealTimers())
    const setSpy = vi.spyOn(globalThis, 'setInterval')
    const clearSpy = vi.spyOn(globalThis, 'clearInterval')
    const store = open({ checkpointIntervalMs: 10, walAutocheckpointPages: 0 })
    const timer = setSpy.mock.results.at(-1)?.value as unknown
    expect(setSpy).toHaveBeenLastCalledWith(expect.any(Function), 10)
    setSpy.mockRestore()
    const before = statSync(path).size
    await Promise.all(Array.from({ length: 300 }, (_, i) => store.appendGrouped(`s${i % 30}`, new Uint8Array(200).fill(i))))
    // Committed to the WAL only: the database file has not grown yet.
    expect(statSync(path).size).toBe(before)
    vi.advanceTimersByTime(10)
    expect(statSync(path).size).toBeGreaterThan(before)
    expect(clearSpy).not.toHaveBeenCalledWith(timer)
    await store.close()
    expect(clearSpy).toHaveBeenCalledWith(timer)
    clearSpy.mockRestore()
  })

  it('refuses bad checkpoint options', () => {
    for (const options of [{ checkpointIntervalMs: -1 }, { checkpointIntervalMs: NaN }, { walAutocheckpointPages: 1.5 }]) {
      let error: unknown
      try {
        open(options)
      } catch (e) {
        error = e
      }
      expect(isChorusError(error, 'invalid_input')).toBe(true)
    }
    return Promise.resolve()
  })
})

describe('persist() and group commit', () => {
  it('without the option, each update is committed before the update event returns (unchanged)', async () => {
    const store = open()
    const db = reader()
    const doc = new Y.Doc()
    const persistence = await persist(doc, store, 'plain')
    doc.getMap('m').set('k', 1)
    expect(rows(db)).toHaveLength(1)
    expect(store.groupOpen).toBe(false)
    await persistence.destroy()
  })

  it('with groupCommit, the updates of one turn go into one commit after it; flush waits for it', async () => {
    const store = open()
    const db = reader()
    const ends: unknown[] = []
    store.onGroupCommitted((error) => ends.push(error))
    const docs = [new Y.Doc(), new Y.Doc()]
    const [one, two] = await Promise.all(docs.map((doc, i) => persist(doc, store, `g${i}`, { groupCommit: true })))
    for (const doc of docs) for (let i = 0; i < 3; i++) doc.getMap('m').set(`k${i}`, i)
    expect(rows(db)).toHaveLength(0)
    await one?.flush()
    expect(ends).toEqual([undefined])
    expect(rows(db)).toHaveLength(6)
    expect(one?.stats).toMatchObject({ appended: 3, lastSeq: 3 })
    await two?.flush()
    expect(two?.stats).toMatchObject({ appended: 3, lastSeq: 3 })

    const again = new Y.Doc()
    await (await persist(again, store, 'g1')).destroy()
    expect(again.getMap('m').toJSON()).toEqual({ k0: 0, k1: 1, k2: 2 })
    await one?.destroy()
    await two?.destroy()
  })

  it('with groupCommit on a store without it, appends are plain', async () => {
    const store = new MemoryStore()
    const doc = new Y.Doc()
    const persistence = await persist(doc, store, 's', { groupCommit: true })
    doc.getMap('m').set('k', 1)
    await persistence.flush()
    expect((await store.load('s')).lastSeq).toBe(1)
    await persistence.destroy()
  })

  it('a group opened in one turn is committed before the next', async () => {
    const store = open()
    void store.appendGrouped('a', bytes(1))
    await nextTurn()
    expect(store.groupOpen).toBe(false)
  })
})
