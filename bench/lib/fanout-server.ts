/**
 * The servers under test of the fan-out benchmark, each in its own child process: the Chorus relay (its CLI,
 * relay/src/main.ts, on a temporary data folder), the stock y-websocket server (fanout-stock-server.ts) and, as a
 * diagnostic, the relay on an in-memory store (fanout-relay-memory.ts).
 * Both print `... listening on http://HOST:PORT` once ready; both stop on SIGTERM.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** 'memory' is a diagnostic: the relay on an in-memory store (fanout-relay-memory.ts), i.e. ours minus sqlite. */
export type ServerKind = 'ours' | 'stock' | 'memory'

export const SERVER_LABEL: Record<ServerKind, string> = {
  ours: 'Chorus relay (sqlite)',
  stock: 'stock y-websocket',
  memory: 'relay, MemoryStore',
}

const RELAY_MAIN = fileURLToPath(new URL('../../relay/src/main.ts', import.meta.url))
const STOCK_MAIN = fileURLToPath(new URL('./fanout-stock-server.ts', import.meta.url))
const MEMORY_MAIN = fileURLToPath(new URL('./fanout-relay-memory.ts', import.meta.url))
const LISTENING = /listening on (http:\/\/\S+)/
const START_TIMEOUT_MS = 15_000
const STOP_TIMEOUT_MS = 10_000
const STDERR_LINES = 30

export interface ServerChild {
  kind: ServerKind
  pid: number
  /** `http://HOST:PORT` */
  url: string
  /** What a WebsocketProvider takes as its server URL: rooms are `${wsBase}/${room}`. */
  wsBase: string
  /** Rejects once the child exits (or fails) before `stop()` was called; never resolves. */
  failed: Promise<never>
  /** CPU time (user + system) the child has used so far, in ms; NaN where /proc is not available. */
  cpuMs: () => number
  /** Resident set size of the child in bytes; NaN where /proc is not available. */
  rssBytes: () => number
  /** SIGTERM, wait for the exit (SIGKILL after a deadline), remove the data folder. Idempotent. */
  stop: () => Promise<void>
}

/** Children still running and data folders not yet removed: cleaned up on exit however the bench ends. */
const live = new Set<ChildProcess>()
const dataDirs = new Set<string>()
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL')
  for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true })
})

let clockTicks: number | undefined
const ticksPerSecond = (): number => {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
    } catch {
      clockTicks = 100
    }
  }
  return clockTicks
}

/** CPU time (user + system) process `pid` has used so far, in ms; NaN where /proc is not available. */
export const procCpuMs = (pid: number): number => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // Fields after "(comm)": state is field 3, utime 14, stime 15.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return ((Number(rest[11]) + Number(rest[12])) * 1000) / ticksPerSecond()
  } catch {
    return NaN
  }
}

const procRss = (pid: number): number => {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m === null ? NaN : Number(m[1]) * 1024
  } catch {
    return NaN
  }
}

export interface StartOptions {
  /** Extra node flags for the child, e.g. ['--cpu-prof', '--cpu-prof-dir=/tmp/prof']. */
  nodeArgs?: readonly string[]
}

/** Spawns the server and resolves once it listens; rejects (with its stderr) if it exits or stays silent. */
export const startServer = async (kind: ServerKind, options: StartOptions = {}): Promise<ServerChild> => {
  const dataDir = kind === 'stock' ? undefined : mkdtempSync(join(tmpdir(), 'chorus-bench-relay-'))
  const script =
    dataDir === undefined ? [STOCK_MAIN] : kind === 'ours' ? [RELAY_MAIN, '--host', '127.0.0.1', '--port', '0', '--data', dataDir] : [MEMORY_MAIN, '--data', dataDir]
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), ...script], { stdio: ['ignore', 'pipe', 'pipe'] })
  live.add(child)
  const pid = child.pid
  if (dataDir !== undefined) dataDirs.add(dataDir)
  const removeData = (): void => {
    if (dataDir === undefined) return
    rmSync(dataDir, { recursive: true, force: true })
    dataDirs.delete(dataDir)
  }

  const stderr: string[] = []
  child.stderr.setEncoding('utf8')
  child.stderr.on('data', (chunk: string) => {
    for (const line of chunk.split('\n')) if (line !== '') stderr.push(line)
    if (stderr.length > STDERR_LINES) stderr.splice(0, stderr.length - STDERR_LINES)
  })
  const tail = (): string => (stderr.length === 0 ? '(no stderr output)' : stderr.map((l) => `    ${l}`).join('\n'))

  let stopping = false
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      live.delete(child)
      resolve({ code, signal })
    })
  })
  const failed = new Promise<never>((_, reject) => {
    child.once('error', (e) => reject(new Error(`${SERVER_LABEL[kind]}: could not run the server child: ${e.message}`)))
    void exited.then(({ code, signal }) => {
      if (!stopping) reject(new Error(`${SERVER_LABEL[kind]} server (pid ${pid}) exited unexpectedly (code ${code}, signal ${signal}); its stderr:\n${tail()}`))
    })
  })
  // Whoever races `failed` sees the rejection; nobody racing it must not make it an unhandled one.
  failed.catch(() => undefined)

  let stopped: Promise<void> | undefined
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      stopping = true
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM')
        const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS)
        const { code, signal } = await exited
        clearTimeout(timer)
        if (code !== 0) process.stderr.write(`warning: ${SERVER_LABEL[kind]} server stopped with code ${code}, signal ${signal}; its stderr:\n${tail()}\n`)
      }
      removeData()
    })()
    return stopped
  }

  const url = await new Promise<string>((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => reject(new Error(`${SERVER_LABEL[kind]}: no "listening" line within ${START_TIMEOUT_MS / 1000} s; its stderr:\n${tail()}`)), START_TIMEOUT_MS)
    child.stdout.setEncoding('utf8')
    child.stdout.on('data', (chunk: string) => {
      out += chunk
      const m = LISTENING.exec(out)
      if (m !== null) {
        clearTimeout(timer)
        resolve(m[1] as string)
      }
    })
    failed.catch((e: unknown) => {
      clearTimeout(timer)
      reject(e instanceof Error ? e : new Error(String(e)))
    })
  }).catch(async (e: unknown) => {
    await stop()
    throw e
  })
  // Keep draining stdout so a chatty child never blocks on a full pipe.
  child.stdout.resume()

  const ws = url.replace(/^http/, 'ws')
  return {
    kind,
    pid: pid as number,
    url,
    wsBase: kind === 'stock' ? ws : `${ws}/sync`,
    failed,
    cpuMs: () => procCpuMs(pid as number),
    rssBytes: () => procRss(pid as number),
    stop,
  }
}
