/**
 * Builds the documents the load and memory benchmarks read: spaces written through the typed API, and the
 * same messages as plain objects in a Y.Array (the baseline).
 */
import * as Y from 'yjs'
import { ManualClock, Space, VOTES, type Member, type Message } from '@chorus/sync'

export const SPACE_ID = 'bench-space'
export const WRITERS = 10
/** Consecutive messages one writer sends in the "one writer per run" mix. */
export const RUN_LENGTH = 100
/** Messages per transaction while building (every run fits in one: BATCH is a multiple of RUN_LENGTH). */
const BATCH = 1000
/** Yjs client ids of the writers (any distinct uint32 values). */
const writerClient = (w: number): number => 1_000_001 + w

export type Mix = 'runs' | 'interleaved'
export const MIX_LABEL: Record<Mix, string> = {
  runs: `one writer per run (${WRITERS} writers, runs of ${RUN_LENGTH})`,
  interleaved: `interleaved (${WRITERS} writers alternating)`,
}

const writerOf = (i: number, mix: Mix): number => (mix === 'runs' ? Math.floor(i / RUN_LENGTH) % WRITERS : i % WRITERS)

const FILLER = 'The quick brown fox jumps over the lazy dog while the agents agree on who reviews main.py next. '.repeat(4)

/** A distinct message body of exactly `bytes` ASCII bytes. */
export const content = (i: number, bytes = 200): string => {
  const head = `message ${i}: `
  return head + FILLER.slice(0, bytes - head.length)
}

/** The stored message record (what the log line holds after the timestamp). */
export interface MessageRecord {
  channel: string
  from: string
  priority: 'normal'
  content: string
}

export interface Built {
  update: Uint8Array
  /** Build time (ms), encoding included. */
  ms: number
  /** The newest message, to check a loaded replica against. */
  last: string
}

const START = 1_700_000_000_000

/**
 * A space with `n` messages of 200 bytes from 10 writers, written through the typed API
 * (`space.messages.send`) in transactions of 1000 messages. Each writer is its own Yjs client: `doc.clientID`
 * is set before every message, which is what a writer's own replica would do. Timestamps advance 1 ms per
 * message so the order is known.
 */
export const buildSpace = (n: number, mix: Mix, onProgress?: (done: number) => void): Built => {
  const t0 = performance.now()
  const clock = new ManualClock(START)
  const space = new Space({ id: SPACE_ID, clock })
  const writers = Array.from({ length: WRITERS }, (_, w) => space.join({ id: `writer-${w}`, name: `Writer ${w}`, kind: 'ai' }).id)
  const doc = space.doc
  let last = ''
  for (let start = 0; start < n; start += BATCH) {
    const end = Math.min(n, start + BATCH)
    doc.transact(() => {
      for (let i = start; i < end; i++) {
        const w = writerOf(i, mix)
        doc.clientID = writerClient(w)
        clock.advance(1)
        last = content(i)
        space.messages.send({ from: writers[w] as string, content: last })
      }
    })
    if (onProgress !== undefined && end % 100_000 === 0) onProgress(end)
  }
  const update = Y.encodeStateAsUpdate(doc)
  space.destroy()
  return { update, ms: performance.now() - t0, last }
}

/**
 * The baseline: the same messages as plain objects (`{ at, channel, from, priority, content }`) in a Y.Array,
 * each writer its own client. A run is inserted with one call (one Yjs item per run, as the space gets); in the
 * interleaved mix every message is its own insert. Inserting at `arr.length` uses Yjs' search markers;
 * `push` would walk the list from its start on every call.
 */
export const buildArray = (n: number, mix: Mix, onProgress?: (done: number) => void): Built => {
  const t0 = performance.now()
  const doc = new Y.Doc()
  const arr = doc.getArray<MessageRecord & { at: number }>('messages')
  const step = mix === 'runs' ? RUN_LENGTH : 1
  let last = ''
  for (let start = 0; start < n; start += BATCH) {
    const end = Math.min(n, start + BATCH)
    doc.transact(() => {
      for (let i = start; i < end; i += step) {
        const w = writerOf(i, mix)
        doc.clientID = writerClient(w)
        const batch: Array<MessageRecord & { at: number }> = []
        for (let j = i; j < Math.min(end, i + step); j++) {
          last = content(j)
          batch.push({ at: START + j + 1, channel: 'general', from: `writer-${w}`, priority: 'normal', content: last })
        }
        arr.insert(arr.length, batch)
      }
    })
    if (onProgress !== undefined && end % 100_000 === 0) onProgress(end)
  }
  const update = Y.encodeStateAsUpdate(doc)
  doc.destroy()
  return { update, ms: performance.now() - t0, last }
}

/** What a freshly loaded replica returns first. */
export interface Loaded {
  applyMs: number
  openMs: number
  firstQueryMs: number
  recent: ReadonlyArray<Pick<Message, 'content'>>
  release: () => void
}

/** Loads a space update into a fresh replica: apply the update, wrap it in a Space, ask for the newest 50. */
export const loadSpace = (update: Uint8Array): Loaded => {
  const t0 = performance.now()
  const doc = new Y.Doc({ guid: SPACE_ID })
  Y.applyUpdate(doc, update)
  const t1 = performance.now()
  const space = new Space({ id: SPACE_ID, doc })
  const t2 = performance.now()
  const recent = space.messages.recent({ limit: 50 })
  const t3 = performance.now()
  return { applyMs: t1 - t0, openMs: t2 - t1, firstQueryMs: t3 - t2, recent, release: () => space.destroy() }
}

/** Loads the baseline array and reads its newest 50 records. */
export const loadArray = (update: Uint8Array): Loaded => {
  const t0 = performance.now()
  const doc = new Y.Doc()
  Y.applyUpdate(doc, update)
  const arr = doc.getArray<MessageRecord & { at: number }>('messages')
  const t1 = performance.now()
  const recent = arr.slice(-50)
  const t2 = performance.now()
  return { applyMs: t1 - t0, openMs: 0, firstQueryMs: t2 - t1, recent, release: () => doc.destroy() }
}

export const SMALL = { participants: 5, messages: 200, tasks: 20, proposals: 5, stateKeys: 10 } as const

/** The small space of the memory benchmark: 5 participants, 200 messages, 20 tasks, 5 proposals (all voted), 10 state keys. */
export const buildSmallSpace = (): Uint8Array => {
  const clock = new ManualClock(START)
  const space = new Space({ id: SPACE_ID, clock, random: seeded(1) })
  const members: Member[] = []
  for (let p = 0; p < SMALL.participants; p++) {
    members.push(space.join({ id: `p${p}`, name: `Participant ${p}`, kind: p < 3 ? 'ai' : 'human' }))
    clock.advance(10)
  }
  const m = (i: number): Member => members[i % members.length] as Member
  for (let i = 0; i < SMALL.messages; i++) {
    m(i).send(content(i))
    clock.advance(10)
  }
  for (let i = 0; i < SMALL.tasks; i++) {
    m(i).createTask({ title: `Task ${i}`, description: 'Review the change and report back.' })
    clock.advance(10)
  }
  for (let i = 0; i < SMALL.proposals; i++) {
    const p = m(i).propose({ title: `Proposal ${i}`, description: 'Adopt the new review rota.' })
    for (let v = 0; v < SMALL.participants; v++) m(v).vote(p.id, VOTES[(i + v) % VOTES.length] as (typeof VOTES)[number])
    clock.advance(10)
  }
  for (let i = 0; i < SMALL.stateKeys; i++) m(i).set(`key-${i}`, { step: i, status: 'working' })
  const update = Y.encodeStateAsUpdate(space.doc)
  space.destroy()
  return update
}

/** A small deterministic random source (mulberry32). */
export const seeded = (seed: number): (() => number) => {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
