/**
 * The lease benchmark: N clients (1, 10, 100), each on its own WebSocket to `/leases`, each acquiring and
 * releasing its own key in a closed loop for a fixed time. The relay runs in a child process on a temporary data
 * folder (every grant durable in leases.sqlite before it is sent); the baseline is a JSON echo server on the same
 * kind of socket, measured in the same run.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { WebSocket, type RawData } from 'ws'
import { progress } from './measure.ts'

const RELAY_MAIN = fileURLToPath(new URL('../../relay/src/main.ts', import.meta.url))
const ECHO_MAIN = fileURLToPath(new URL('./lease-echo-server.ts', import.meta.url))

export interface LeaseLevelResult {
  clients: number
  /** 'closed': each client starts its next pair as soon as the last one is answered; 'open': pairs at a fixed total rate. */
  mode: 'closed' | 'open'
  /** For 'open': the offered acquire + release pairs per second over all clients. */
  offered?: number
  /** acquire + release pairs per second, over all clients. */
  pairsPerSecond: number
  acquire: { p50: number; p99: number }
  release: { p50: number; p99: number }
  /** The echo baseline: round trips per second and latency of one round trip. */
  echo: { perSecond: number; p50: number; p99: number }
}

interface Child {
  url: string
  stop(): Promise<void>
}

async function startChild(args: string[], what: string): Promise<Child> {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr.setEncoding('utf8')
  child.stderr.on('data', (c: string) => {
    stderr = (stderr + c).slice(-4000)
  })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} did not start within 15 s:\n${stderr}`)), 15_000)
    child.stdout.setEncoding('utf8')
    let out = ''
    child.stdout.on('data', (c: string) => {
      out += c
      const m = /listening on (http:\/\/\S+)/.exec(out)
      if (m?.[1] !== undefined) {
        clearTimeout(timer)
        resolve(m[1])
      }
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`${what} exited with ${code} before listening:\n${stderr}`))
    })
  })
  return {
    url,
    stop: async () => {
      child.kill('SIGTERM')
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000)
      await exited
      clearTimeout(t)
    },
  }
}

/** One client connection with request/reply matching by id. */
class Conn {
  private readonly ws: WebSocket
  private next = 1
  private readonly waiting = new Map<number, (reply: Record<string, unknown>) => void>()

  constructor(ws: WebSocket) {
    this.ws = ws
    ws.on('message', (data) => {
      const reply = JSON.parse(textOf(data)) as Record<string, unknown>
      const f = this.waiting.get(reply.id as number)
      this.waiting.delete(reply.id as number)
      f?.(reply)
    })
  }

  static async open(url: string): Promise<Conn> {
    const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/leases`)
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve())
      ws.once('error', reject)
    })
    return new Conn(ws)
  }

  request(body: Record<string, unknown>): Promise<Record<string, unknown>> {
    const id = this.next++
    return new Promise((resolve) => {
      this.waiting.set(id, resolve)
      this.ws.send(JSON.stringify({ id, ...body }))
    })
  }

  close(): void {
    this.ws.terminate()
  }
}

const quantile = (sorted: readonly number[], q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN

/**
 * Runs `clients` connections for `ms`. Without `rate` each loops as fast as it is answered (throughput); with
 * `rate` (pairs per second over all clients) each starts its pairs on a fixed schedule, staggered, so latency is
 * measured under a known load rather than under the queue a closed loop builds.
 */
async function runLevel(url: string, clients: number, ms: number, echo: boolean, rate?: number): Promise<{ perSecond: number; a: number[]; r: number[] }> {
  const conns = await Promise.all(Array.from({ length: clients }, () => Conn.open(url)))
  const acquire: number[] = []
  const release: number[] = []
  let pairs = 0
  const start = performance.now()
  const deadline = start + ms
  await Promise.all(
    conns.map(async (c, i) => {
      const key = `task:bench-${i}`
      const interval = rate === undefined ? 0 : (clients * 1000) / rate
      let due = start + (interval * i) / clients
      while (performance.now() < deadline) {
        if (rate !== undefined) {
          const wait = due - performance.now()
          if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
          due += interval
          if (performance.now() >= deadline) break
        }
        const t0 = performance.now()
        const got = await c.request({ op: 'acquire', space: 'bench', key, holder: `client-${i}`, duration: 10_000 })
        const t1 = performance.now()
        if (got.ok !== true) throw new Error(`acquire failed: ${JSON.stringify(got)}`)
        const grant = echo ? { space: 'bench', key, holder: `client-${i}`, token: 1, duration: 10_000, signature: '' } : got.grant
        const freed = await c.request({ op: 'release', grant })
        const t2 = performance.now()
        if (freed.ok !== true || (!echo && freed.released !== true)) throw new Error(`release failed: ${JSON.stringify(freed)}`)
        acquire.push(t1 - t0)
        release.push(t2 - t1)
        pairs++
      }
    }),
  )
  const elapsed = performance.now() - start
  for (const c of conns) c.close()
  return { perSecond: (pairs * 1000) / elapsed, a: acquire.sort((x, y) => x - y), r: release.sort((x, y) => x - y) }
}

/** Offered load of the latency runs: pairs per second over all clients (two requests each). */
export const OPEN_RATE = 1_000

export async function leaseBench(options: { quick: boolean }): Promise<LeaseLevelResult[]> {
  const dataDir = mkdtempSync(join(tmpdir(), 'chorus-bench-leases-'))
  const ms = options.quick ? 1_500 : 4_000
  const relay = await startChild([RELAY_MAIN, '--port', '0', '--data', dataDir, '--rate-limit', '1000000'], 'relay')
  const echo = await startChild([ECHO_MAIN], 'echo server')
  const out: LeaseLevelResult[] = []
  const result = (
    clients: number,
    mode: 'closed' | 'open',
    ours: { perSecond: number; a: number[]; r: number[] },
    base: { perSecond: number; a: number[]; r: number[] },
  ): LeaseLevelResult => {
    const both = [...base.a, ...base.r].sort((x, y) => x - y)
    return {
      clients,
      mode,
      ...(mode === 'open' ? { offered: OPEN_RATE } : {}),
      pairsPerSecond: ours.perSecond,
      acquire: { p50: quantile(ours.a, 0.5), p99: quantile(ours.a, 0.99) },
      release: { p50: quantile(ours.r, 0.5), p99: quantile(ours.r, 0.99) },
      echo: { perSecond: base.perSecond, p50: quantile(both, 0.5), p99: quantile(both, 0.99) },
    }
  }
  try {
    for (const clients of [1, 10, 100]) {
      progress(`leases: ${clients} client(s), warm-up`)
      await runLevel(relay.url, clients, 300, false)
      await runLevel(echo.url, clients, 300, true)
      progress(`leases: ${clients} client(s), closed loop, ${ms} ms each against the relay and the echo baseline`)
      out.push(result(clients, 'closed', await runLevel(relay.url, clients, ms, false), await runLevel(echo.url, clients, ms, true)))
      progress(`leases: ${clients} client(s), ${OPEN_RATE} pairs/s offered, ${ms} ms each`)
      out.push(result(clients, 'open', await runLevel(relay.url, clients, ms, false, OPEN_RATE), await runLevel(echo.url, clients, ms, true, OPEN_RATE)))
    }
  } finally {
    await relay.stop()
    await echo.stop()
    rmSync(dataDir, { recursive: true, force: true })
  }
  return out
}

function textOf(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8')
  return (Buffer.isBuffer(data) ? data : Buffer.from(new Uint8Array(data))).toString('utf8')
}
