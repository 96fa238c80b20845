/**
 * Crash: the relay is a child process, killed with SIGKILL while 20 stock y-websocket clients on three spaces
 * write and a RelayLeaseClient takes leases. Restarted on the same data folder and port, it gets every update
 * back (clients keep theirs and resync; what it had stored survives) and its fencing tokens keep increasing (L2).
 * Seeded: CHORUS_SEED=<n> replays a run; the seed is printed on failure.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFailed } from 'vitest'
import { WebSocket as WsClient } from 'ws'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { RelayLeaseClient, type LeaseGrant } from '@chorus/sync'
import { health, prng, until, wsUrl } from './helpers.ts'

const root = fileURLToPath(new URL('../..', import.meta.url))
const MAIN = 'relay/src/main.ts'
const LISTENING = 'chorus relay listening on '
const CLIENTS = 20
const SPACES = ['crash-a', 'crash-b', 'crash-c']
const LEASE_KEYS = ['task:build', 'task:deploy', 'resource:db', 'resource:cache']
const LEASE_SPACE = 'crash-a'


interface RelayChild {
  child: ChildProcessWithoutNullStreams
  url: string
  exited: Promise<void>
  stderr: () => string
}

const children: ChildProcessWithoutNullStreams[] = []
const cleanups: Array<() => void | Promise<void>> = []
const dirs: string[] = []

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
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) {
      const gone = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGKILL')
      await gone
    }
  }
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

/** A port that was free a moment ago (the relay is restarted on it, so clients find it again). */
async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', resolve)
  })
  const address = server.address()
  await new Promise((resolve) => server.close(resolve))
  if (address === null || typeof address === 'string') throw new Error('no port')
  return address.port
}

/** Starts `node relay/src/main.ts`; resolves once it printed its listening line, or rejects if it exited first. */
async function spawnRelay(port: number, dataDir: string): Promise<RelayChild> {
  const child = spawn(process.execPath, [MAIN, '--port', String(port), '--data', dataDir, '--p2p-listen', '/ip4/127.0.0.1/tcp/0'], { cwd: root })
  children.push(child)
  let stderr = ''
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  let line: string | undefined
  createInterface({ input: child.stdout }).on('line', (l) => (line ??= l))
  await until(() => line !== undefined || child.exitCode !== null || child.signalCode !== null, 'the listening line', 20_000)
  if (line === undefined) throw new Error(`the relay exited with ${child.exitCode}: ${stderr}`)
  expect(line).toBe(`${LISTENING}http://127.0.0.1:${port}`)
  return { child, url: line.slice(LISTENING.length), exited, stderr: () => stderr }
}

/** Like spawnRelay, retrying while the port is still held (EADDRINUSE) after the previous process died. */
async function restartRelay(port: number, dataDir: string): Promise<RelayChild> {
  let started: RelayChild | undefined
  let lastError: unknown
  await until(
    async () => {
      try {
        started = await spawnRelay(port, dataDir)
        return true
      } catch (e) {
        lastError = e
        if (!(e instanceof Error && /EADDRINUSE/.test(e.message))) throw e
        return false
      }
    },
    `a relay listening on port ${port} again (last error: ${String(lastError)})`,
    20_000,
  )
  if (started === undefined) throw new Error('unreachable')
  return started
}

async function killed(relay: RelayChild): Promise<void> {
  relay.child.kill('SIGKILL')
  await relay.exited
  expect(relay.child.signalCode).toBe('SIGKILL')
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
    const seed = Number(process.env.CHORUS_SEED ?? Math.floor(Math.random() * 2 ** 31))
    onTestFailed(() => console.error(`CHORUS_SEED=${seed}`))
    const random = prng(seed)
    const dataDir = mkdtempSync(join(tmpdir(), 'chorus-crash-'))
    dirs.push(dataDir)
    const port = await freePort()
    let relay = await spawnRelay(port, dataDir)
    const started = [relay]

    const writers: Writer[] = []
    for (let index = 0; index < CLIENTS; index++) {
      const space = SPACES[index % SPACES.length] as string
      const doc = new Y.Doc()
      writers.push({ index, space, doc, provider: newProvider(relay.url, space, doc), written: 0 })
    }
    await until(() => writers.every((w) => w.provider.synced), 'every client synced', 20_000)

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
      20_000,
    )
    expect(leaseError).toBeUndefined()
    crashed = true
    await killed(relay)
    const atKill = writers.map((w) => w.written)
    await leaseLoop
    expect(leaseError).toBeUndefined()

    // Clients notice, and keep writing while the relay is down.
    await until(() => writers.every((w) => !w.provider.wsconnected), 'every client saw the relay go', 10_000)
    await until(() => writers.every((w, i) => w.written >= (atKill[i] as number) + 10), 'every client wrote while the relay was down', 10_000)

    relay = await restartRelay(port, dataDir)
    started.push(relay)
    await until(() => writers.every((w) => w.provider.wsconnected && w.provider.synced), 'every client reconnected and synced', 20_000)
    const atReconnect = writers.map((w) => w.written)
    await until(() => writers.every((w, i) => w.written >= (atReconnect[i] as number) + 10), 'every client wrote after reconnecting', 10_000)
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
    await until(() => readers.every((r) => complete(r.doc, r.space)), 'every update in a fresh reader of each space', 20_000)
    await until(() => writers.every((w) => complete(w.doc, w.space)), 'every update in every client', 20_000)
    expect(await health(relay.url)).toMatchObject({ status: 'ok', spaces: SPACES.length })

    // What the relay has served is on disk: kill it again with no client left, and a new one still has it all.
    for (const f of cleanups.splice(0).reverse()) await f()
    await killed(relay)
    relay = await restartRelay(port, dataDir)
    started.push(relay)
    const witnesses = SPACES.map((space) => {
      const doc = new Y.Doc()
      return { space, doc, provider: newProvider(relay.url, space, doc) }
    })
    await until(() => witnesses.every((r) => r.provider.synced && complete(r.doc, r.space)), 'every update served from disk after a second kill', 20_000)
    for (const r of started) expect(r.stderr()).not.toMatch(/ error: /)
    console.info(
      `crash: seed ${seed}, ${final.reduce((a, b) => a + b, 0)} entries by ${CLIENTS} clients ` +
        `(${atKill.reduce((a, b) => a + b, 0)} before the kill), ${granted} grants before the kill, ` +
        `tokens after: ${after.map((g) => `${g.key}=${g.token}>${highest.get(g.key) ?? 0}`).join(', ')}`,
    )
  })
})
