/**
 * The acceptance suite every `Store` passes. Run it from a vitest file:
 *
 * ```ts
 * runStoreTests('MemoryStore', async () => ({ store: new MemoryStore(), cleanup: async () => {} }))
 * ```
 *
 * `open` gives a fresh, empty store per test. `reopen`, when given, opens the same data again after the test
 * has closed `store` (durable stores); `cleanup` closes whatever is still open and deletes the data.
 */
import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { isChorusError } from '../errors.ts'
import type { Store } from '../store/store.ts'

export interface StoreHarness {
  store: Store
  reopen?: () => Promise<Store>
  cleanup: () => Promise<void>
}

export function runStoreTests(name: string, open: () => Promise<StoreHarness>): void {
  const withStore = async (fn: (h: StoreHarness) => Promise<void>): Promise<void> => {
    const harness = await open()
    try {
      await fn(harness)
    } finally {
      await harness.cleanup()
    }
  }

  describe(`Store acceptance: ${name}`, () => {
    it('an unknown space loads empty and is not listed', () =>
      withStore(async ({ store }) => {
        expect(await store.load('nothing')).toEqual({ updates: [], lastSeq: 0 })
        expect(await store.spaces()).toEqual([])
      }))

    it('appended updates load back byte-equal and in order', () =>
      withStore(async ({ store }) => {
        const updates = [bytes(1, 2, 3), bytes(), bytes(255), bytes(4, 5)]
        for (const u of updates) await store.append('s', u)
        const loaded = await store.load('s')
        expect(loaded.updates).toEqual(updates)
        expect(loaded.lastSeq).toBe(4)
      }))

    it('stores exactly the viewed bytes and copies them in and out', () =>
      withStore(async ({ store }) => {
        const buffer = bytes(9, 8, 7, 6, 5)
        await store.append('s', buffer.subarray(1, 4))
        buffer.fill(0)
        const first = await store.load('s')
        expect(first.updates).toEqual([bytes(8, 7, 6)])
        first.updates[0]?.fill(0)
        expect((await store.load('s')).updates).toEqual([bytes(8, 7, 6)])
      }))

    it('sequence numbers strictly increase per space', () =>
      withStore(async ({ store }) => {
        const seqs: number[] = []
        for (let i = 0; i < 20; i++) seqs.push(await store.append('s', bytes(i)))
        for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBeGreaterThan(seqs[i - 1] ?? Infinity)
        expect((await store.load('s')).lastSeq).toBe(seqs.at(-1))
      }))

    it('concurrent appends get distinct seqs and all load', () =>
      withStore(async ({ store }) => {
        const seqs = await Promise.all(Array.from({ length: 50 }, (_, i) => store.append('s', bytes(i))))
        expect(new Set(seqs).size).toBe(50)
        expect((await store.load('s')).updates).toHaveLength(50)
      }))

    it('compact keeps later updates and the rebuilt doc equals the original', () =>
      withStore(async ({ store }) => {
        const { doc, updates } = editedDoc(30)
        const seqs: number[] = []
        for (const u of updates.slice(0, 20)) seqs.push(await store.append('s', u))
        const throughSeq = seqs.at(-1) ?? 0
        const snapshot = Y.mergeUpdates(updates.slice(0, 20))
        for (const u of updates.slice(20)) await store.append('s', u)
        await store.compact('s', snapshot, throughSeq)

        const loaded = await store.load('s')
        expect(loaded.updates).toHaveLength(1 + 10)
        expect(loaded.updates[0]).toEqual(snapshot)
        expect(loaded.updates.slice(1)).toEqual(updates.slice(20))
        expectSameDoc(rebuild(loaded.updates), doc)
      }))

    it('compacting everything keeps lastSeq and later seqs continue above it', () =>
      withStore(async ({ store }) => {
        const { doc, updates } = editedDoc(5)
        let last = 0
        for (const u of updates) last = await store.append('s', u)
        await store.compact('s', Y.encodeStateAsUpdate(doc), last)
        const loaded = await store.load('s')
        expect(loaded).toEqual({ updates: [Y.encodeStateAsUpdate(doc)], lastSeq: last })
        expect(await store.spaces()).toEqual(['s'])
        expect(await store.append('s', bytes(1))).toBeGreaterThan(last)
        expectSameDoc(rebuild(loaded.updates), doc)
      }))

    it('compact rejects a throughSeq beyond the log or behind the snapshot', () =>
      withStore(async ({ store }) => {
        await store.append('s', bytes(1))
        const last = await store.append('s', bytes(2))
        await expectChorusError(store.compact('s', bytes(), last + 1), 'invalid_input')
        await expectChorusError(store.compact('unknown', bytes(), 1), 'invalid_input')
        await store.compact('s', bytes(7), last)
        await expectChorusError(store.compact('s', bytes(8), last - 1), 'conflict')
        expect((await store.load('s')).updates).toEqual([bytes(7)])
      }))

    it('spaces are isolated', () =>
      withStore(async ({ store }) => {
        await store.append('a', bytes(1))
        await store.append('b', bytes(2))
        await store.append('a', bytes(3))
        await store.compact('b', bytes(20), 1)
        expect(await store.load('a')).toEqual({ updates: [bytes(1), bytes(3)], lastSeq: 2 })
        expect(await store.load('b')).toEqual({ updates: [bytes(20)], lastSeq: 1 })
        expect(await store.spaces()).toEqual(['a', 'b'])
      }))

    it('remove forgets a space and nothing else', () =>
      withStore(async ({ store }) => {
        await store.append('a', bytes(1))
        await store.append('a', bytes(2))
        await store.compact('a', bytes(12), 1)
        await store.append('b', bytes(3))
        await store.remove('a')
        await store.remove('never-stored')
        expect(await store.load('a')).toEqual({ updates: [], lastSeq: 0 })
        expect(await store.load('b')).toEqual({ updates: [bytes(3)], lastSeq: 1 })
        expect(await store.spaces()).toEqual(['b'])
      }))

    it('reopening keeps everything and seqs continue above the last', async (ctx) => {
      await withStore(async ({ store, reopen }) => {
        if (reopen === undefined) return ctx.skip()
        const { doc, updates } = editedDoc(12)
        let last = 0
        for (const u of updates.slice(0, 8)) last = await store.append('s', u)
        await store.compact('s', Y.mergeUpdates(updates.slice(0, 8)), last)
        for (const u of updates.slice(8)) last = await store.append('s', u)
        await store.append('other', bytes(1))
        const before = await store.load('s')
        await store.close()

        const again = await reopen()
        expect(await again.load('s')).toEqual(before)
        expect(await again.spaces()).toEqual(['other', 's'])
        expectSameDoc(rebuild(before.updates), doc)
        expect(await again.append('s', bytes(1))).toBeGreaterThan(last)

        // The case a max(seq) over the remaining rows gets wrong: compaction removed every row.
        const tip = await again.append('other', bytes(2))
        await again.compact('other', bytes(3), tip)
        await again.close()
        const third = await reopen()
        expect(await third.append('other', bytes(4))).toBeGreaterThan(tip)
      })
    })

    it('round-trips a 5 MiB update', () =>
      withStore(async ({ store }) => {
        const big = new Uint8Array(5 * 1024 * 1024)
        for (let i = 0; i < big.length; i++) big[i] = (i * 2654435761) >>> 24
        await store.append('big', big)
        await store.append('big', bytes(1))
        const loaded = await store.load('big')
        expect(loaded.updates).toHaveLength(2)
        expect(sameBytes(loaded.updates[0], big)).toBe(true)
        expect(loaded.updates[1]).toEqual(bytes(1))
        await store.compact('big', big, 2)
        expect(sameBytes((await store.load('big')).updates[0], big)).toBe(true)
      }))

    it('close is idempotent and later calls fail with a ChorusError', () =>
      withStore(async ({ store }) => {
        await store.append('s', bytes(1))
        await store.close()
        await store.close()
        await expectChorusError(store.load('s'), 'closed')
        await expectChorusError(store.append('s', bytes(2)), 'closed')
      }))
  })
}

function bytes(...values: number[]): Uint8Array {
  return new Uint8Array(values)
}

// toEqual on megabytes is slow and prints a useless diff; Buffer is not available to browser stores.
function sameBytes(a: Uint8Array | undefined, b: Uint8Array): boolean {
  return a !== undefined && a.length === b.length && a.every((v, i) => v === b[i])
}

/** A doc edited in `n` separate transactions, with the update each one produced. */
function editedDoc(n: number): { doc: Y.Doc; updates: Uint8Array[] } {
  const doc = new Y.Doc()
  const updates: Uint8Array[] = []
  doc.on('update', (u: Uint8Array) => updates.push(u))
  const map = doc.getMap<number>('state')
  const text = doc.getText('notes')
  for (let i = 0; i < n; i++) {
    doc.transact(() => {
      map.set(`k${i % 7}`, i)
      text.insert(text.length, `line ${i}\n`)
      if (i % 5 === 4) text.delete(0, 3)
    })
  }
  return { doc, updates }
}

function rebuild(updates: Uint8Array[]): Y.Doc {
  const doc = new Y.Doc()
  doc.transact(() => {
    for (const u of updates) Y.applyUpdate(doc, u)
  })
  return doc
}

function expectSameDoc(actual: Y.Doc, expected: Y.Doc): void {
  expect(actual.getMap('state').toJSON()).toEqual(expected.getMap('state').toJSON())
  expect(actual.getText('notes').toJSON()).toBe(expected.getText('notes').toJSON())
  expect(Y.encodeStateVector(actual)).toEqual(Y.encodeStateVector(expected))
}

async function expectChorusError(promise: Promise<unknown>, code: string): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(isChorusError(error), `expected a ChorusError '${code}', got ${String(error)}`).toBe(true)
  expect((error as { code?: unknown }).code).toBe(code)
}
