import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { DatabaseSync } from 'node:sqlite'
import { fileURLToPath } from 'node:url'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { ChorusError, isChorusError, persist, STORE_ORIGIN } from '@chorus/sync'
import { SqliteStore } from '@chorus/sync/sqlite'
import { tempDir } from '../support/temp.ts'

const writer = fileURLToPath(new URL('./fixtures/sqlite-writer.ts', import.meta.url))

let path = ''
const open: SqliteStore[] = []
const openStore = (): SqliteStore => {
  const store = new SqliteStore(path)
  open.push(store)
  return store
}

beforeEach(() => {
  path = join(tempDir('chorus-persist-'), 'cache.sqlite')
})

afterEach(async () => {
  for (const store of open.splice(0)) await store.close()
})

/** Loads `space` from a fresh connection into a fresh doc. */
async function reload(space: string): Promise<Y.Doc> {
  const doc = new Y.Doc()
  const persistence = await persist(doc, openStore(), space)
  expect(persistence.stats.appended).toBe(0)
  await persistence.destroy()
  return doc
}

function edit(doc: Y.Doc, i: number): void {
  doc.transact(() => {
    doc.getMap('state').set(`k${i % 4}`, { i, tags: ['a', String(i)] })
    doc.getText('notes').insert(0, `${i};`)
    doc.getArray<number>('log').push([i])
  })
}

function expectSameDoc(actual: Y.Doc, expected: Y.Doc): void {
  expect(actual.getMap('state').toJSON()).toEqual(expected.getMap('state').toJSON())
  expect(actual.getText('notes').toJSON()).toBe(expected.getText('notes').toJSON())
  expect(actual.getArray('log').toJSON()).toEqual(expected.getArray('log').toJSON())
  expect(Y.encodeStateVector(actual)).toEqual(Y.encodeStateVector(expected))
}

describe('persist() with SqliteStore', () => {
  it('round-trips a doc through destroy and a fresh connection', async () => {
    const store = openStore()
    const doc = new Y.Doc()
    const persistence = await persist(doc, store, 'team')
    for (let i = 0; i < 10; i++) edit(doc, i)
    doc.getMap('state').delete('k1')
    doc.getText('notes').delete(0, 4)
    await persistence.destroy()
    expect(persistence.stats.appended).toBe(12)
    await store.close()

    expectSameDoc(await reload('team'), doc)
  })

  it('compacts after compactEvery appends and reloads identically', async () => {
    const store = openStore()
    const doc = new Y.Doc()
    const persistence = await persist(doc, store, 'team', { compactEvery: 10 })
    const editAndFlush = async (from: number, to: number): Promise<void> => {
      for (let i = from; i < to; i++) edit(doc, i)
      await persistence.flush()
    }
    await editAndFlush(0, 9)
    expect(persistence.stats.compactions).toBe(0)
    await editAndFlush(9, 10)
    expect(persistence.stats.compactions).toBe(1)
    expect((await store.load('team')).updates).toHaveLength(1)
    await editAndFlush(10, 19)
    expect(persistence.stats.compactions).toBe(1)
    await editAndFlush(19, 25)
    expect(persistence.stats).toEqual({ appended: 25, compactions: 2, lastSeq: 25 })
    // A burst past the threshold is compacted once, through its last update.
    expect(await store.load('team')).toMatchObject({ lastSeq: 25, updates: [expect.any(Uint8Array)] })
    expectSameDoc(await reload('team'), doc)

    edit(doc, 25)
    edit(doc, 26)
    await persistence.compact()
    expect(persistence.stats.compactions).toBe(3)
    expect((await store.load('team')).updates).toHaveLength(1)
    edit(doc, 27)
    await persistence.destroy()
    expectSameDoc(await reload('team'), doc)
  })

  it('stores updates of every origin except STORE_ORIGIN', async () => {
    const source = new Y.Doc()
    edit(source, 1)
    const doc = new Y.Doc()
    Y.applyUpdate(doc, Y.encodeStateAsUpdate(source), 'remote-peer')
    // Content the doc had before persist() is stored too.
    const persistence = await persist(doc, openStore(), 'team')
    expect(persistence.stats.appended).toBe(1)
    edit(source, 2)
    Y.applyUpdate(doc, Y.encodeStateAsUpdate(source, Y.encodeStateVector(doc)), 'remote-peer')
    await persistence.destroy()
    expect(persistence.stats.appended).toBe(2)
    expectSameDoc(await reload('team'), source)
  })

  it('loads stored updates in one transaction with STORE_ORIGIN', async () => {
    const doc = new Y.Doc()
    const first = await persist(doc, openStore(), 'team')
    for (let i = 0; i < 5; i++) edit(doc, i)
    await first.destroy()

    const fresh = new Y.Doc()
    const origins: unknown[] = []
    fresh.on('afterTransaction', (tr: Y.Transaction) => origins.push(tr.origin))
    const second = await persist(fresh, openStore(), 'team')
    expect(origins).toEqual([STORE_ORIGIN])
    await second.destroy()
  })

  it('a snapshot keeps what another writer appended to the same space', async () => {
    const a = new Y.Doc()
    const b = new Y.Doc()
    const pa = await persist(a, openStore(), 'team', { compactEvery: Infinity })
    const pb = await persist(b, openStore(), 'team', { compactEvery: Infinity })
    a.getMap('state').set('from-a', 1)
    b.getMap('state').set('from-b', 2)
    a.getMap('state').set('again-a', 3)
    await pb.flush()
    await pa.compact()
    await pa.destroy()
    await pb.destroy()
    expect(await openStore().load('team')).toMatchObject({ lastSeq: 3 })
    expect((await reload('team')).getMap('state').toJSON()).toEqual({ 'from-a': 1, 'from-b': 2, 'again-a': 3 })
  })

  it("a corrupt stored update gives ChorusError 'corrupt' and leaves the doc untouched", async () => {
    const doc = new Y.Doc()
    const persistence = await persist(doc, openStore(), 'team space')
    for (let i = 0; i < 3; i++) edit(doc, i)
    await persistence.destroy()
    const db = new DatabaseSync(path)
    db.prepare('UPDATE updates SET data = ? WHERE space = ? AND seq = 2').run(
      new TextEncoder().encode('not a yjs update at all'),
      'team space',
    )
    db.close()

    const store = openStore()
    const fresh = new Y.Doc()
    const error = await persist(fresh, store, 'team space').catch((e: unknown) => e)
    expect(isChorusError(error, 'corrupt')).toBe(true)
    expect((error as ChorusError).message).toContain('team space')
    expect((error as ChorusError).details).toMatchObject({ space: 'team space', index: 1 })
    expect(fresh.getArray('log').length).toBe(0)
    // A failed persist() does not keep listening.
    edit(fresh, 9)
    expect((await store.load('team space')).lastSeq).toBe(3)
  })

  it('reports failed appends to onError and from flush()', async () => {
    const store = openStore()
    const doc = new Y.Doc()
    const errors: unknown[] = []
    const persistence = await persist(doc, store, 'team', { onError: (e) => errors.push(e) })
    await store.close()
    edit(doc, 1)
    const error = await persistence.flush().catch((e: unknown) => e)
    expect(isChorusError(error, 'closed')).toBe(true)
    expect(errors).toEqual([error])
    await persistence.destroy()
  })

  it('keeps every reported write when the writing process is killed with SIGKILL', async () => {
    const reportedBeforeKill = 200
    const child = spawn(process.execPath, [writer, path, 'crash', '1000000', '25'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stderr = ''
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    const exited = once(child, 'exit')

    let reported = -1
    for await (const line of createInterface({ input: child.stdout })) {
      const match = /^wrote (\d+)$/.exec(line)
      if (match !== null) reported = Number(match[1])
      if (reported + 1 >= reportedBeforeKill) {
        child.kill('SIGKILL')
        break
      }
    }
    const [, signal] = (await exited) as [number | null, NodeJS.Signals | null]
    expect(reported + 1, `writer stopped early: ${stderr}`).toBeGreaterThanOrEqual(reportedBeforeKill)
    expect(signal).toBe('SIGKILL')

    const doc = await reload('crash')
    const writes = doc.getMap<number>('writes')
    for (let i = 0; i <= reported; i++) expect(writes.get(`k${i}`)).toBe(i)
    // Whatever else made it to disk is a gap-free continuation.
    expect([...writes.keys()].sort((x, y) => Number(x.slice(1)) - Number(y.slice(1)))).toEqual(
      Array.from({ length: writes.size }, (_, i) => `k${i}`),
    )
    expect(doc.getText('log').toJSON()).toBe(Array.from({ length: writes.size }, (_, i) => `${i}\n`).join(''))
  })
})
