/**
 * Crash: the relay is a child process, killed with SIGKILL while 20 stock y-websocket clients on three spaces
 * write and a RelayLeaseClient takes leases. Restarted on the same data folder and port, it gets every update
 * back (clients keep theirs and resync; what it had stored survives) and its fencing tokens keep increasing (L2).
 * Seeded: CHORUS_SEED=<n> replays a run; the seed is printed on failure.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { WebSocket as WsClient } from 'ws'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { RelayLeaseClient, type LeaseGrant } from '@chorus/sync'
import { prng, testSeed } from '../support/random.ts'
import { health, wsUrl } from '../support/relay.ts'
import { relayProcessForTest, type RelayProcess } from '../support/relay-process.ts'
import { all, emits, until, updates } from '../support/wait.ts'

const CLIENTS = 20
const SPACES = ['crash-a', 'crash-b', 'crash-c']
const LEASE_KEYS = ['task:build', 'task:deploy', 'resource:db', 'resource:cache']
const LEASE_SPACE = 'crash-a'

const cleanups: Array<() => void | Promise<void>> = []

// Every stock provider adds a process 'exit' listener; 26 of them are expected here.
let maxListeners = 0
beforeAll(() => {
  maxListeners = process.getMaxListeners()
  process.setMaxListeners(Math.max(maxListeners, 64))
})
afterAll(() => {
  process.setMaxListeners(maxListeners)
})

afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f()
})

async function killed(relay: RelayProcess): Promise<void> {
  expect((await relay.stop('SIGKILL')).signal).toBe('SIGKILL')
}

interface Writer {
  index: number
  space: string
  doc: Y.Doc
  provider: WebsocketProvider
  /** Entries appended so far: `log-<index>` holds exactly 0..written-1. */
  written: number
}

const logName = (index: number): string => `log-${index}`

/** Whether `doc` holds exactly entries 0..count-1 in the log of `index`. */
function hasLog(doc: Y.Doc, index: number, count: number): boolean {
  const log = doc.getArray<number>(logName(index))
  if (log.length !== count) return false
  const values = log.toArray()
  return values.every((v, i) => v === i)
}

function newProvider(url: string, space: string, doc: Y.Doc): WebsocketProvider {
  // disableBc: providers in one process would otherwise sync over BroadcastChannel, bypassing the relay.
  const provider = new WebsocketProvider(`${wsUrl(url)}/sync`, space, doc, { disableBc: true, WebSocketPolyfill: WsClient as unknown as typeof WebSocket })
  cleanups.push(() => {
    provider.destroy()
    doc.destroy()
  })
  return provider
}

describe('relay crash (SIGKILL) and restart on the same data folder', () => {
  it('loses no client update and keeps fencing tokens increasing (L2)', async () => {
    const seed = testSeed()
    const random = prng(seed)
    // Restarted on the same port and data folder, so clients find it again.
    const relay = await relayProcessForTest({ args: ['--p2p-listen', '/ip4/127.0.0.1/tcp/0'] })
    const listening = `chorus relay listening on ${relay.url}`
    expect(relay.lines).toEqual([listening])

    const writers: Writer[] = []
    for (let index = 0; index < CLIENTS; index++) {
      const space = SPACES[index % SPACES.length] as string
      const doc = new Y.Doc()
      writers.push({ index, space, doc, provider: newProvider(relay.url, space, doc), written: 0 })
    }
    const written = updates(...writers.map((w) => w.doc))
    const connections = all(writers.map((w) => emits(w.provider, 'status', 'sync')))
    await until(() => writers.every((w) => w.provider.synced), 'every client synced', { on: connections })

    // Each client appends 1-3 numbered entries per tick to its own array, online or not.
    const timers: Array<ReturnType<typeof setInterval>> = []
    const stopWriting = (): void => {
      for (const t of timers.splice(0)) clearInterval(t)
    }
    cleanups.push(stopWriting)
    for (const w of writers) {
      const every = 15 + Math.floor(random() * 20)
      const batch = 1 + Math.floor(random() * 3)
      timers.push(
        setInterval(() => {
          const log = w.doc.getArray<number>(logName(w.index))
          w.doc.transact(() => {
            for (let i = 0; i < batch; i++) log.push([w.written++])
          })
        }, every),
      )
    }

    // Leases, one request at a time, each key always by the same holder; remember the highest token granted.
    const leases = new RelayLeaseClient({ relay: relay.url, WebSocket: WsClient as unknown as new (url: string) => WebSocket, requestTimeoutMs: 2_000 })
    cleanups.push(() => leases.close())
    const highest = new Map<string, number>()
    let crashed = false
    let leaseError: unknown
    let granted = 0
    const leaseLoop = (async () => {
      while (!crashed) {
        const key = LEASE_KEYS[Math.floor(random() * LEASE_KEYS.length)] as string
        try {
          const grant = await leases.acquire({ space: LEASE_SPACE, key, holder: `holder-${key}`, duration: 200 + Math.floor(random() * 2_000) })
          highest.set(key, Math.max(highest.get(key) ?? 0, grant.token))
          granted++
          if (random() < 0.3) await leases.release(grant)
        } catch (e) {
          // After the kill a request fails with lease_unavailable (L10); before it, nothing may fail.
          if (!crashed) leaseError ??= e
          return
        }
      }
    })()

    const killAfter = 10 + Math.floor(random() * 30)
    await until(
      () => (writers.every((w) => w.written >= killAfter) && granted >= 20 && highest.size === LEASE_KEYS.length) || leaseError !== undefined,
      `every client wrote ${killAfter} entries and every lease key was granted`,
      { on: written },
    )
    expect(leaseError).toBeUndefined()
    crashed = true
    await killed(relay)
    const atKill = writers.map((w) => w.written)
    await leaseLoop
    expect(leaseError).toBeUndefined()

    // Clients notice, and keep writing while the relay is down.
    await until(() => writers.every((w) => !w.provider.wsconnected), 'every client saw the relay go', { on: connections })
    await until(() => writers.every((w, i) => w.written >= (atKill[i] as number) + 10), 'every client wrote while the relay was down', { on: written })

    await relay.start()
    expect(relay.lines.at(-1)).toBe(listening)
    await until(() => writers.every((w) => w.provider.wsconnected && w.provider.synced), 'every client reconnected and synced', { on: connections })
    const atReconnect = writers.map((w) => w.written)
    await until(() => writers.every((w, i) => w.written >= (atReconnect[i] as number) + 10), 'every client wrote after reconnecting', { on: written })
    stopWriting()
    const final = writers.map((w) => w.written)

    // L2: after the restart every key's next token is above every token granted before the crash.
    const after: LeaseGrant[] = []
    for (const key of LEASE_KEYS) {
      const grant = await leases.acquire({ space: LEASE_SPACE, key, holder: `holder-${key}`, duration: 1_000 })
      after.push(grant)
      expect(grant.token, `${key}: before the crash up to ${highest.get(key) ?? 0}`).toBeGreaterThan(highest.get(key) ?? 0)
    }
    // And another holder cannot take a key still held across the restart (L1): the ledger remembered it.
    await expect(leases.acquire({ space: LEASE_SPACE, key: LEASE_KEYS[0] as string, holder: 'someone-else', duration: 1_000 })).rejects.toMatchObject({ code: 'locked' })

    // Every update of every client, in a fresh reader per space and in every client.
    const readers = SPACES.map((space) => {
      const doc = new Y.Doc()
      return { space, doc, provider: newProvider(relay.url, space, doc) }
    })
    const complete = (doc: Y.Doc, space: string): boolean => writers.every((w) => w.space !== space || hasLog(doc, w.index, final[w.index] as number))
    await until(() => readers.every((r) => complete(r.doc, r.space)), 'every update in a fresh reader of each space', { on: updates(...readers.map((r) => r.doc)) })
    await until(() => writers.every((w) => complete(w.doc, w.space)), 'every update in every client', { on: written })
    expect(await health(relay.url)).toMatchObject({ status: 'ok', spaces: SPACES.length })

    // What the relay has served is on disk: kill it again with no client left, and a new one still has it all.
    for (const f of cleanups.splice(0).reverse()) await f()
    await killed(relay)
    await relay.start()
    expect(relay.lines.at(-1)).toBe(listening)
    const witnesses = SPACES.map((space) => {
      const doc = new Y.Doc()
      return { space, doc, provider: newProvider(relay.url, space, doc) }
    })
    await until(() => witnesses.every((r) => r.provider.synced && complete(r.doc, r.space)), 'every update served from disk after a second kill', {
      on: [updates(...witnesses.map((r) => r.doc)), ...witnesses.map((r) => emits(r.provider, 'sync'))],
    })
    expect(relay.stderr()).not.toMatch(/ error: /)
    console.info(
      `crash: seed ${seed}, ${final.reduce((a, b) => a + b, 0)} entries by ${CLIENTS} clients ` +
        `(${atKill.reduce((a, b) => a + b, 0)} before the kill), ${granted} grants before the kill, ` +
        `tokens after: ${after.map((g) => `${g.key}=${g.token}>${highest.get(g.key) ?? 0}`).join(', ')}`,
    )
  })
})
