/**
 * The acceptance suite every Transport passes (after automerge-repo's `runNetworkAdapterTests`).
 *
 * `setup` returns fresh, unstarted transports for each test. `a`, `b` (and `c`) must reach each other
 * directly once started: a broadcast from one arrives at all the others. `deliver`, when given, is called
 * whenever the suite waits (e.g. a MemoryNetwork's `deliverAll`); transports with real I/O omit it.
 * `teardown` releases whatever `setup` created; the suite stops the transports itself.
 *
 * ```ts
 * runTransportTests('memory', async () => {
 *   const net = new MemoryNetwork({ seed: 1 })
 *   return { a: net.transport('a'), b: net.transport('b'), deliver: () => { net.deliverAll() }, teardown: async () => {} }
 * })
 * ```
 */
import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { Awareness } from 'y-protocols/awareness'
import * as prng from 'lib0/prng'
import { Replicator } from '../sync/replicator.ts'
import type { PeerId, Transport, TransportListener, TransportStatus } from '../transports/transport.ts'
import { Signal } from './signal.ts'

export interface TransportTestSetup {
  a: Transport
  b: Transport
  c?: Transport
  deliver?: () => Promise<void> | void
  teardown: () => Promise<void>
}

/** Longest a single wait may take before the test fails with what it was waiting for. */
const waitLimitMs = 20_000

class Recorder implements TransportListener {
  readonly joined: PeerId[] = []
  readonly left: PeerId[] = []
  messages: Array<{ peer: PeerId; message: Uint8Array }> = []
  private readonly signal: Signal
  constructor(signal: Signal) {
    this.signal = signal
  }
  peerJoined(peer: PeerId): void {
    this.joined.push(peer)
    this.signal.notify()
  }
  peerLeft(peer: PeerId): void {
    this.left.push(peer)
    this.signal.notify()
  }
  message(peer: PeerId, message: Uint8Array): void {
    this.messages.push({ peer, message })
    this.signal.notify()
  }
  from(peer: PeerId): Uint8Array[] {
    return this.messages.filter((m) => m.peer === peer).map((m) => m.message)
  }
}

/** `transport`, with every event it reports to its listener also waking `signal`. */
const observed = (transport: Transport, signal: Signal): Transport => ({
  get peers() {
    return transport.peers
  },
  start: (listener) =>
    transport.start({
      peerJoined: (peer: PeerId) => {
        listener.peerJoined(peer)
        signal.notify()
      },
      peerLeft: (peer: PeerId) => {
        listener.peerLeft(peer)
        signal.notify()
      },
      message: (peer: PeerId, message: Uint8Array) => {
        listener.message(peer, message)
        signal.notify()
      },
      status: (status: TransportStatus) => listener.status?.(status),
    }),
  send: (peer, message) => transport.send(peer, message),
  broadcast: (message) => transport.broadcast(message),
  stop: () => transport.stop(),
})

async function until(
  what: string,
  condition: () => boolean,
  signal: Signal,
  deliver: TransportTestSetup['deliver'],
): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), waitLimitMs)
  })
  limit.catch(() => {})
  try {
    for (;;) {
      const woken = signal.next()
      await deliver?.()
      if (condition()) return
      await Promise.race([woken, limit])
    }
  } finally {
    clearTimeout(timer)
  }
}

const bytesEqual = (x: Uint8Array, y: Uint8Array): boolean => {
  if (x.length !== y.length) return false
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false
  return true
}

const contains = (list: readonly Uint8Array[], message: Uint8Array): boolean => list.some((m) => bytesEqual(m, message))

const text = new TextEncoder()

interface Connected {
  transports: Transport[]
  recorders: Recorder[]
  /** `ids[i][j]`: the PeerId by which transport i knows transport j. */
  ids: PeerId[][]
  signal: Signal
  wait: (what: string, condition: () => boolean) => Promise<void>
}

/** Start every transport with a recorder and learn, from a hello each one broadcasts, who is who. */
async function connect(setup: TransportTestSetup): Promise<Connected> {
  const transports = [setup.a, setup.b, ...(setup.c === undefined ? [] : [setup.c])]
  const signal = new Signal()
  const recorders = transports.map(() => new Recorder(signal))
  const wait = (what: string, condition: () => boolean): Promise<void> => until(what, condition, signal, setup.deliver)
  for (const [i, t] of transports.entries()) await t.start(recorders[i] ?? new Recorder(signal))
  const others = transports.length - 1
  await wait('every transport to see the others', () => transports.every((t) => t.peers.size >= others))
  const hellos = transports.map((_, i) => text.encode(`hello from ${i}`))
  for (const [i, t] of transports.entries()) t.broadcast(hellos[i] ?? new Uint8Array())
  const ids: PeerId[][] = transports.map(() => [])
  const learn = (): boolean => {
    for (const [i, r] of recorders.entries()) {
      for (const [j, hello] of hellos.entries()) {
        if (i === j) continue
        const from = r.messages.find((m) => bytesEqual(m.message, hello))
        const row = ids[i]
        if (from === undefined || row === undefined) return false
        row[j] = from.peer
      }
    }
    return true
  }
  await wait('hellos from every transport', learn)
  for (const r of recorders) r.messages = []
  return { transports, recorders, ids, signal, wait }
}

const id = (c: Connected, i: number, j: number): PeerId => {
  const peer = c.ids[i]?.[j]
  if (peer === undefined) throw new Error(`transport ${i} has not heard from transport ${j}`)
  return peer
}

const recorder = (c: Connected, i: number): Recorder => {
  const r = c.recorders[i]
  if (r === undefined) throw new Error(`no transport ${i}`)
  return r
}

const handleCounts = (): Map<string, number> => {
  const counts = new Map<string, number>()
  // Timers belong to the test runner and to awareness instances, which the tests clean up themselves.
  for (const kind of process.getActiveResourcesInfo()) {
    if (kind !== 'Timeout' && kind !== 'Immediate') counts.set(kind, (counts.get(kind) ?? 0) + 1)
  }
  return counts
}

const leftOver = (before: Map<string, number>): string[] =>
  [...handleCounts()].filter(([kind, n]) => n > (before.get(kind) ?? 0)).map(([kind, n]) => `${kind} x${n}`)

export function runTransportTests(name: string, setup: () => Promise<TransportTestSetup>): void {
  const withSetup = async (test: (s: TransportTestSetup) => Promise<void>): Promise<void> => {
    const s = await setup()
    try {
      await test(s)
    } finally {
      await Promise.all([s.a, s.b, ...(s.c === undefined ? [] : [s.c])].map((t) => t.stop()))
      await s.teardown()
    }
  }

  describe(`Transport acceptance: ${name}`, () => {
    it('peers learn of each other', () =>
      withSetup(async (s) => {
        const c = await connect(s)
        for (const [i, t] of c.transports.entries()) {
          const known = new Set<PeerId>()
          for (const j of c.transports.keys()) {
            if (i === j) continue
            known.add(id(c, i, j))
            expect(t.peers.has(id(c, i, j))).toBe(true)
            expect(recorder(c, i).joined).toContain(id(c, i, j))
          }
          expect(known.size).toBe(c.transports.length - 1)
        }
      }))

    it('a message sent a to b arrives intact, including 1 MiB', () =>
      withSetup(async (s) => {
        const c = await connect(s)
        const gen = prng.create(7)
        const sent = [new Uint8Array([0]), prng.uint8Array(gen, 1000), prng.uint8Array(gen, 1024 * 1024)]
        for (const m of sent) c.transports[0]?.send(id(c, 0, 1), m)
        const got = (): Uint8Array[] => recorder(c, 1).from(id(c, 1, 0))
        await c.wait('three messages at b', () => got().length >= sent.length)
        expect(got()).toHaveLength(sent.length)
        for (const m of sent) expect(contains(got(), m), `a message of ${m.length} bytes`).toBe(true)
      }))

    it('broadcast reaches every peer', () =>
      withSetup(async (s) => {
        const c = await connect(s)
        const message = text.encode('to everyone')
        c.transports[0]?.broadcast(message)
        const everyone = (): boolean =>
          c.transports.every((_, j) => j === 0 || contains(recorder(c, j).from(id(c, j, 0)), message))
        await c.wait('the broadcast at every peer', everyone)
        for (const j of c.transports.keys()) if (j > 0) expect(recorder(c, j).from(id(c, j, 0))).toHaveLength(1)
      }))

    it('a message to an unknown peer is dropped without throwing', () =>
      withSetup(async (s) => {
        const c = await connect(s)
        const lost = text.encode('to nobody')
        const marker = text.encode('marker')
        expect(() => c.transports[0]?.send('no-such-peer', lost)).not.toThrow()
        c.transports[0]?.send(id(c, 0, 1), marker)
        await c.wait('the marker at b', () => contains(recorder(c, 1).from(id(c, 1, 0)), marker))
        for (const r of c.recorders) expect(contains(r.messages.map((m) => m.message), lost)).toBe(false)
      }))

    it('stop() fires peerLeft on the other side and leaves no handle open', async () => {
      const before = handleCounts()
      await withSetup(async (s) => {
        const c = await connect(s)
        const [a, b] = c.transports
        if (a === undefined || b === undefined) throw new Error('setup must return a and b')
        await a.stop()
        const aAtB = id(c, 1, 0)
        await c.wait('peerLeft at b', () => recorder(c, 1).left.includes(aAtB) && !b.peers.has(aAtB))
        expect(a.peers.size).toBe(0)
        expect(() => a.send(id(c, 0, 1), text.encode('after stop'))).not.toThrow()
        expect(() => b.send(aAtB, text.encode('to a stopped peer'))).not.toThrow()
      })
      // Closing sockets finishes within a few turns of the event loop; no clock is involved.
      for (let turn = 0; turn < 100 && leftOver(before).length > 0; turn++) {
        await new Promise((resolve) => setImmediate(resolve))
      }
      expect(leftOver(before)).toEqual([])
    })

    it('two Y.Docs with Replicators converge over it, including awareness', () =>
      withSetup(async (s) => {
        const signal = new Signal()
        const wait = (what: string, condition: () => boolean): Promise<void> =>
          until(what, condition, signal, s.deliver)
        const docs = [new Y.Doc(), new Y.Doc()]
        const awareness = docs.map((d) => new Awareness(d))
        const replicators = docs.map((d, i) => new Replicator(d, awareness[i] ?? new Awareness(d)))
        const [d1, d2] = docs
        const [aw1, aw2] = awareness
        const [r1, r2] = replicators
        if (!d1 || !d2 || !aw1 || !aw2 || !r1 || !r2) throw new Error('unreachable')
        try {
          d1.getMap('m').set('from', 'a')
          d1.getText('t').insert(0, 'hello')
          d2.getMap('m').set('other', 'b')
          d2.getArray<number>('list').push([1, 2, 3])
          aw1.setLocalState({ name: 'a' })
          aw2.setLocalState({ name: 'b' })
          await r1.attach(observed(s.a, signal))
          await r2.attach(observed(s.b, signal))
          const same = (): boolean =>
            bytesEqual(Y.encodeStateVector(d1), Y.encodeStateVector(d2)) &&
            d1.getText('t').toJSON() === d2.getText('t').toJSON()
          await wait('the docs to converge', same)
          expect(d2.getText('t').toJSON()).toBe('hello')
          expect(d1.getArray('list').toJSON()).toEqual([1, 2, 3])
          expect(d1.getMap('m').toJSON()).toEqual({ from: 'a', other: 'b' })
          expect(d2.getMap('m').toJSON()).toEqual({ from: 'a', other: 'b' })
          await wait('awareness both ways', () => {
            const ofB = aw1.getStates().get(aw2.clientID) as { name?: unknown } | undefined
            const ofA = aw2.getStates().get(aw1.clientID) as { name?: unknown } | undefined
            return ofB?.name === 'b' && ofA?.name === 'a'
          })

          d1.getText('t').insert(5, ' world')
          await wait('a live edit to arrive', () => d2.getText('t').toJSON() === 'hello world')
          aw2.setLocalStateField('status', 'busy')
          await wait('an awareness change to arrive', () => {
            const ofB = aw1.getStates().get(aw2.clientID) as { status?: unknown } | undefined
            return ofB?.status === 'busy'
          })
          expect(r1.stats.malformed + r2.stats.malformed).toBe(0)
        } finally {
          await Promise.all(replicators.map((r) => r.stop()))
          for (const a of awareness) a.destroy()
          for (const d of docs) d.destroy()
        }
      }))
  })
}
