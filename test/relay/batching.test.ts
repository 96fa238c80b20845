/**
 * Group commit on the relay: the updates of one turn of the event loop, across spaces, are stored in one commit,
 * and persist-before-fan-out still holds: no connection hears of an update (as an update, or inside a sync reply)
 * before it is committed. Checked at the moment of each send, against a second sqlite connection (which sees only
 * committed rows), and end to end over real sockets. A failed commit sends nothing and closes the space with 1011.
 */
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import * as Y from 'yjs'
import * as decoding from 'lib0/decoding'
import {
  encodeSyncStep1,
  encodeSyncStep2,
  encodeSyncUpdate,
  MemoryStore,
  messageSync,
  type GroupCommitStore,
} from '@chorus/sync'
import { SqliteStore } from '@chorus/sync/sqlite'
import { CloseCode, SpaceRegistry, STORE_FILE, type SpaceEntry, type SpacePeer } from '@chorus/relay'
import { closed, fixturePerTest, opened } from '../support/relay.ts'
import { nextTurn, until, updates } from '../support/wait.ts'

const f = fixturePerTest()

type SyncKind = 'step1' | 'step2' | 'update'

/** The sync payload of a y-protocols message, or undefined for other message types. */
function syncPayload(message: Uint8Array): { kind: SyncKind; payload: Uint8Array } | undefined {
  const decoder = decoding.createDecoder(message)
  if (decoding.readVarUint(decoder) !== messageSync) return undefined
  const kind = (['step1', 'step2', 'update'] as const)[decoding.readVarUint(decoder)]
  if (kind === undefined) throw new Error('unknown sync message type')
  return { kind, payload: decoding.readVarUint8Array(decoder) }
}

/** How many structs of `update` are not in `stored` (every stored update and snapshot, of any space). */
function missingFrom(stored: readonly Uint8Array[], update: Uint8Array): number {
  const doc = new Y.Doc()
  Y.transact(doc, () => {
    for (const u of stored) Y.applyUpdate(doc, u)
  })
  return Y.decodeUpdate(Y.diffUpdate(update, Y.encodeStateVector(doc))).structs.length
}

/** Everything committed to a SqliteStore file, read through another connection. */
function committedRows(db: DatabaseSync): Uint8Array[] {
  return db
    .prepare('SELECT data FROM snapshots UNION ALL SELECT data FROM updates')
    .all()
    .map((row) => row.data as Uint8Array)
}

/**
 * Watches sends: `check` counts every sync update or step 2 and records a violation for each carrying a struct
 * that `stored()` lacks at that moment.
 */
function sendChecker(stored: () => Uint8Array[]): { check: (message: Uint8Array) => void; checked: number; violations: string[] } {
  const state = {
    checked: 0,
    violations: [] as string[],
    check: (message: Uint8Array): void => {
      const sync = syncPayload(message)
      if (sync === undefined || sync.kind === 'step1') return
      state.checked++
      const missing = missingFrom(stored(), sync.payload)
      if (missing > 0) state.violations.push(`${sync.kind} sent with ${missing} uncommitted struct(s)`)
    },
  }
  return state
}

class FakePeer implements SpacePeer {
  readonly received: Uint8Array[] = []
  closedWith: number | undefined
  private readonly entry: SpaceEntry
  private readonly onSend: ((message: Uint8Array) => void) | undefined

  constructor(entry: SpaceEntry, onSend?: (message: Uint8Array) => void) {
    this.entry = entry
    this.onSend = onSend
    entry.join(this)
  }

  send(message: Uint8Array): void {
    this.onSend?.(message)
    this.received.push(message)
  }

  close(code: number): void {
    this.closedWith = code
    this.entry.leave(this)
  }

  payloads(kind: SyncKind): Uint8Array[] {
    return this.received.flatMap((m) => {
      const sync = syncPayload(m)
      return sync?.kind === kind ? [sync.payload] : []
    })
  }
}

/**
 * A MemoryStore with group commit whose commits the test controls: after `delayMs` (0: right after the turn, as
 * SqliteStore does), failing when `failNext` is set. `committed` is what its commits have stored so far.
 */
class GatedStore extends MemoryStore implements GroupCommitStore {
  delayMs = 0
  failNext = false
  commits = 0
  readonly committed: Uint8Array[] = []
  private group: Array<{ space: string; update: Uint8Array; resolve: (seq: number) => void; reject: (e: Error) => void }> | undefined
  private readonly listeners = new Set<(error: unknown) => void>()

  get groupOpen(): boolean {
    return this.group !== undefined
  }

  appendGrouped(space: string, update: Uint8Array): Promise<number> {
    let group = this.group
    if (group === undefined) {
      const opened: NonNullable<typeof this.group> = []
      this.group = group = opened
      const commit = (): void => {
        if (this.group === opened) this.commitGroup()
      }
      if (this.delayMs > 0) setTimeout(commit, this.delayMs)
      else setImmediate(commit)
    }
    const target = group
    return new Promise((resolve, reject) => target.push({ space, update: update.slice(), resolve, reject }))
  }

  commitGroup(): void {
    const group = this.group
    if (group === undefined) return
    this.group = undefined
    let error: Error | undefined
    if (this.failNext) {
      this.failNext = false
      const lost = new Error('disk full')
      error = lost
      for (const a of group) a.reject(lost)
    } else {
      this.commits++
      for (const a of group) {
        this.committed.push(a.update)
        void super.append(a.space, a.update).then(a.resolve, a.reject)
      }
    }
    for (const listener of [...this.listeners]) listener(error)
  }

  onGroupCommitted(listener: (error: unknown) => void): () => void {
    const entry = (error: unknown): void => listener(error)
    this.listeners.add(entry)
    return () => this.listeners.delete(entry)
  }

  override load(space: string): ReturnType<MemoryStore['load']> {
    this.commitGroup()
    return super.load(space)
  }

  override append(space: string, update: Uint8Array): Promise<number> {
    this.commitGroup()
    return super.append(space, update)
  }

  override compact(space: string, snapshot: Uint8Array, throughSeq: number): Promise<void> {
    this.commitGroup()
    return super.compact(space, snapshot, throughSeq)
  }

  override close(): Promise<void> {
    this.commitGroup()
    return super.close()
  }
}

/** A writer's doc and the updates it produced, in order. */
function source(): { doc: Y.Doc; updates: Uint8Array[] } {
  const doc = new Y.Doc()
  const updates: Uint8Array[] = []
  doc.on('update', (u: Uint8Array) => updates.push(u))
  return { doc, updates }
}

describe('relay group commit: SpaceRegistry on SqliteStore', () => {
  it('one commit per turn across spaces; no peer hears of an update before that commit; echo rules unchanged', async () => {
    const path = join(f.dir, 'batch.sqlite')
    const store = new SqliteStore(path)
    const db = new DatabaseSync(path, { readOnly: true })
    const registry = new SpaceRegistry({ store })
    let commits = 0
    store.onGroupCommitted((error) => {
      if (error === undefined) commits++
    })
    try {
      const entries = await Promise.all(['s0', 's1', 's2'].map((name) => registry.acquire(name)))
      const checker = sendChecker(() => committedRows(db))
      const spaces = entries.map((entry) => ({
        entry,
        writer: new FakePeer(entry, checker.check),
        watchers: [new FakePeer(entry, checker.check), new FakePeer(entry, checker.check)],
        source: source(),
      }))

      // One turn: three updates per space from its writer, then a watcher of s0 asks for the doc's state.
      for (const { entry, writer, source: s } of spaces) {
        for (let k = 0; k < 3; k++) {
          s.doc.getMap('m').set(`k${k}`, k)
          Y.applyUpdate(entry.doc, s.updates.at(-1) as Uint8Array, writer)
        }
      }
      const [first] = spaces as [(typeof spaces)[number]]
      const asking = first.watchers[0] as FakePeer
      first.entry.sendTo(asking, encodeSyncStep2(first.entry.doc))
      // Held: nothing sent, nothing committed, and the checker does see these updates as missing.
      for (const { watchers, writer } of spaces) for (const peer of [writer, ...watchers]) expect(peer.received).toEqual([])
      expect(committedRows(db)).toEqual([])
      expect(missingFrom(committedRows(db), first.source.updates[0] as Uint8Array)).toBeGreaterThan(0)

      await nextTurn()
      expect(commits).toBe(1)
      expect(committedRows(db)).toHaveLength(9)
      expect(checker.violations).toEqual([])
      // The three updates of a space's turn go out as one merged update: one message per watcher.
      expect(checker.checked).toBe(3 * 2 + 1)
      for (const { writer, watchers, source: s } of spaces) {
        expect(writer.received).toEqual([]) // not sent back to the connection it came from
        for (const watcher of watchers) expect(watcher.payloads('update')).toEqual([Y.mergeUpdates(s.updates)])
      }
      // Held messages keep their order: the reply came after the updates.
      expect(asking.received.map((m) => syncPayload(m)?.kind)).toEqual(['update', 'step2'])

      // A write that does not come from a connection (the relay's own, or REST) is committed before it returns,
      // and fanned out at once to every connection.
      const [, second] = spaces as [(typeof spaces)[number], (typeof spaces)[number]]
      second.entry.doc.getMap('m').set('local', true)
      expect(commits).toBe(2)
      expect(committedRows(db)).toHaveLength(10)
      expect(second.writer.received).toHaveLength(1)
      expect(checker.violations).toEqual([])

      // Quiet turns send at once: awareness or a reply with nothing pending is not held.
      second.entry.sendTo(second.writer, encodeSyncStep1(second.entry.doc))
      expect(second.writer.received).toHaveLength(2)
      for (const entry of entries) registry.release(entry)
    } finally {
      await registry.close()
      await store.close()
      db.close()
    }
  })

  it('updates of one turn from several connections go out merged to all of them; other messages keep their place', async () => {
    const store = new SqliteStore(join(f.dir, 'merge.sqlite'))
    const registry = new SpaceRegistry({ store })
    try {
      const entry = await registry.acquire('mixed')
      const [a, b, watcher] = [new FakePeer(entry), new FakePeer(entry), new FakePeer(entry)]
      const [fromA, fromB] = [source(), source()]
      fromA.doc.getMap('m').set('a1', 1)
      Y.applyUpdate(entry.doc, fromA.updates.at(-1) as Uint8Array, a)
      fromB.doc.getMap('m').set('b1', 1)
      Y.applyUpdate(entry.doc, fromB.updates.at(-1) as Uint8Array, b)
      // A message for one connection ends the run: what follows it is sent after it, in a run of its own.
      entry.sendTo(watcher, encodeSyncStep1(entry.doc))
      fromA.doc.getMap('m').set('a2', 2)
      Y.applyUpdate(entry.doc, fromA.updates.at(-1) as Uint8Array, a)
      await nextTurn()

      const [first, second] = [Y.mergeUpdates([fromA.updates[0], fromB.updates[0]] as Uint8Array[]), fromA.updates[1]]
      expect(watcher.received.map((m) => syncPayload(m)?.kind)).toEqual(['update', 'step1', 'update'])
      expect(watcher.payloads('update')).toEqual([first, second])
      // A run from several connections goes to each of them too (Yjs ignores what it has); one from a single
      // connection does not go back to it.
      expect(a.payloads('update')).toEqual([first])
      expect(b.payloads('update')).toEqual([first, second])
      const replica = new Y.Doc()
      for (const update of watcher.payloads('update')) Y.applyUpdate(replica, update)
      expect(replica.getMap('m').toJSON()).toEqual({ a1: 1, b1: 1, a2: 2 })
      registry.release(entry)
    } finally {
      await registry.close()
      await store.close()
    }
  })

  it('a failed commit sends nothing, closes the spaces in it with 1011 and leaves the others alone', async () => {
    const store = new GatedStore()
    const registry = new SpaceRegistry({ store })
    try {
      const entries = await Promise.all(['s0', 's1', 's2'].map((name) => registry.acquire(name)))
      const spaces = entries.map((entry) => ({ entry, writer: new FakePeer(entry), watcher: new FakePeer(entry), source: source() }))
      const [s0, s1, s2] = spaces as [(typeof spaces)[number], (typeof spaces)[number], (typeof spaces)[number]]

      store.failNext = true
      for (const { entry, writer, source: s } of [s0, s1]) {
        s.doc.getMap('m').set('lost', 1)
        Y.applyUpdate(entry.doc, s.updates.at(-1) as Uint8Array, writer)
      }
      s0.entry.sendTo(s0.watcher, encodeSyncStep2(s0.entry.doc))
      await nextTurn()

      for (const { writer, watcher } of [s0, s1]) {
        expect(watcher.received).toEqual([])
        expect(writer.received).toEqual([])
        expect([writer.closedWith, watcher.closedWith]).toEqual([CloseCode.internalError, CloseCode.internalError])
      }
      expect(registry.isLoaded('s0')).toBe(false)
      expect(registry.isLoaded('s1')).toBe(false)
      expect(store.committed).toEqual([])

      // s2 had nothing in the failed group: still loaded, its connections open, and its next update goes out.
      expect([s2.writer.closedWith, s2.watcher.closedWith]).toEqual([undefined, undefined])
      expect(registry.isLoaded('s2')).toBe(true)
      s2.source.doc.getMap('m').set('kept', 1)
      Y.applyUpdate(s2.entry.doc, s2.source.updates.at(-1) as Uint8Array, s2.writer)
      expect(s2.watcher.received).toEqual([])
      await nextTurn()
      expect(s2.watcher.payloads('update')).toEqual(s2.source.updates)
      registry.release(s2.entry)
    } finally {
      await registry.close()
    }
  })

  it('without group commit (option off, or a store without it) each update is stored before it is fanned out', async () => {
    const path = join(f.dir, 'plain.sqlite')
    const sqlite = new SqliteStore(path)
    const db = new DatabaseSync(path, { readOnly: true })
    const memory = new RecordingStore()
    const cases = [
      { store: sqlite, groupCommit: false, stored: () => committedRows(db) },
      { store: memory, groupCommit: true, stored: () => memory.appended },
    ]
    for (const { store, groupCommit, stored } of cases) {
      const registry = new SpaceRegistry({ store, groupCommit })
      const entry = await registry.acquire('s')
      const checker = sendChecker(stored)
      const writer = new FakePeer(entry)
      const watcher = new FakePeer(entry, checker.check)
      const s = source()
      for (let k = 0; k < 3; k++) {
        s.doc.getMap('m').set(`k${k}`, k)
        Y.applyUpdate(entry.doc, s.updates.at(-1) as Uint8Array, writer)
      }
      // Sent at once, each after its own append.
      expect(watcher.payloads('update')).toEqual(s.updates)
      expect(checker).toMatchObject({ checked: 3, violations: [] })
      registry.release(entry)
      await registry.close()
    }
    await sqlite.close()
    db.close()
  })
})

/** A MemoryStore that records each appended update as it is appended. */
class RecordingStore extends MemoryStore {
  readonly appended: Uint8Array[] = []
  override append(space: string, update: Uint8Array): Promise<number> {
    this.appended.push(update.slice())
    return super.append(space, update)
  }
}

/** A raw y-websocket client: a doc it writes from, and a doc built from every sync update or step 2 it receives. */
function rawClient(url: string, space: string): { ws: WebSocket; doc: Y.Doc; received: Uint8Array[]; write: (key: string) => void } {
  const ws = f.raw(url, `/sync/${space}`)
  const doc = new Y.Doc()
  const received: Uint8Array[] = []
  const writer = new Y.Doc()
  writer.on('update', (u: Uint8Array) => ws.send(encodeSyncUpdate(u)))
  ws.on('message', (data: Buffer) => {
    const sync = syncPayload(new Uint8Array(data))
    if (sync === undefined || sync.kind === 'step1') return
    received.push(sync.payload)
    Y.applyUpdate(doc, sync.payload)
  })
  return { ws, doc, received, write: (key) => writer.getMap('m').set(key, key) }
}

describe('relay group commit end to end', () => {
  it('on sqlite: every sync message the relay sends holds only committed updates', async () => {
    const { url } = await f.startRelay()
    const db = new DatabaseSync(join(f.dir, STORE_FILE), { readOnly: true })
    const checker = sendChecker(() => committedRows(db))
    // Checked in the relay's own send, against what another connection sees committed at that moment.
    const proto = WebSocket.prototype as unknown as { send: (this: WebSocket, ...args: unknown[]) => void }
    const send = proto.send
    proto.send = function (this: WebSocket, ...args: unknown[]) {
      // Server-side sockets have no url (ws docs): those are the relay's.
      if (!this.url && args[0] instanceof Uint8Array) checker.check(args[0])
      send.apply(this, args)
    }
    try {
      const spaces = ['e2e-a', 'e2e-b']
      const clients = spaces.map((space) => ({ writer: rawClient(url, space), watchers: [rawClient(url, space), rawClient(url, space)] }))
      await Promise.all(clients.flatMap((c) => [c.writer, ...c.watchers]).map((c) => opened(c.ws)))
      for (let k = 0; k < 30; k++) for (const c of clients) c.writer.write(`k${k}`)
      // A sync step 1 in the middle of it: its step 2 reply holds the doc's state.
      for (const c of clients) c.watchers[0]?.ws.send(encodeSyncStep1(new Y.Doc()))
      for (let k = 30; k < 40; k++) for (const c of clients) c.writer.write(`k${k}`)
      for (const c of clients) {
        for (const watcher of c.watchers) await until(() => watcher.doc.getMap('m').size === 40, 'a watcher has every update', { on: updates(watcher.doc) })
      }
      expect(checker.violations).toEqual([])
      // At least one update per watcher was checked (updates of one turn go out merged, so maybe not 40).
      expect(checker.checked).toBeGreaterThanOrEqual(2 * 2)
      // The writer never gets its own updates back.
      for (const c of clients) expect(c.writer.received).toEqual([])
    } finally {
      proto.send = send
      db.close()
    }
  })

  it('with a slow commit, a client receives each update only after it is committed; a failed one closes with 1011', async () => {
    const store = new GatedStore()
    const { url } = await f.startRelay({ store })
    store.delayMs = 30
    const checked = { received: 0, early: 0 }
    const writer = rawClient(url, 'slow')
    const watcher = rawClient(url, 'slow')
    watcher.ws.on('message', (data: Buffer) => {
      const sync = syncPayload(new Uint8Array(data))
      if (sync === undefined || sync.kind === 'step1') return
      checked.received++
      if (missingFrom(store.committed, sync.payload) > 0) checked.early++
    })
    await Promise.all([opened(writer.ws), opened(watcher.ws)])
    for (let k = 0; k < 10; k++) writer.write(`k${k}`)
    await until(() => watcher.doc.getMap('m').size === 10, 'the watcher has every update', { on: updates(watcher.doc) })
    // Updates that arrived in one turn come as one merged message.
    const received = checked.received
    expect(received).toBeGreaterThanOrEqual(1)
    expect(received).toBeLessThanOrEqual(10)
    expect(checked.early).toBe(0)
    expect(store.commits).toBeGreaterThan(0)

    const writerClosed = closed(writer.ws)
    const watcherClosed = closed(watcher.ws)
    store.failNext = true
    writer.write('lost')
    expect((await watcherClosed).code).toBe(CloseCode.internalError)
    expect((await writerClosed).code).toBe(CloseCode.internalError)
    expect(watcher.doc.getMap('m').has('lost')).toBe(false)
    expect(checked.received).toBe(received)
    expect(missingFrom(store.committed, writer.received.at(-1) ?? new Uint8Array([0, 0]))).toBe(0)
  })
})
