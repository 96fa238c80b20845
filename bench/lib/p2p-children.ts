/**
 * The bench side of the p2p benchmark's peers: a `PeerHandle` per host of members, either a child process
 * (p2p-peer-child.ts, the default) or a `PeerHost` inside the bench process (`--peers=inproc`); and the relay
 * (a child running relay/src/main.ts, see fanout-server.ts) with its REST calls: registering participants and
 * asking for memberships.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { ephemeralPeerKey, parseMembership, type Membership } from '@chorus/p2p'
import type { RelayCapabilities } from '@chorus/relay'
import { procCpuMs } from './fanout-server.ts'
import { nowAbs } from './measure.ts'
import { PeerHost } from './p2p-peer-host.ts'
import type { Call, Reply } from './p2p-protocol.ts'

const CHILD_MAIN = fileURLToPath(new URL('./p2p-peer-child.ts', import.meta.url))
const START_TIMEOUT_MS = 20_000
const CALL_TIMEOUT_MS = 120_000
const STOP_TIMEOUT_MS = 10_000

export type Placement = 'child' | 'inproc'

export interface PeerHandle {
  readonly label: string
  /** The child's pid; undefined in process. */
  readonly pid: number | undefined
  call<T>(call: Call, timeoutMs?: number): Promise<T>
  /** CPU time the host has used so far (ms): its child's; NaN in process (see `cpuOfAll`). */
  cpuMs(): number
  stop(): Promise<void>
}

/** Children still running: killed on exit however the bench ends. */
const live = new Set<ChildProcess>()
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL')
})

const spawnChild = async (label: string, nodeArgs: readonly string[]): Promise<PeerHandle> => {
  const child = spawn(process.execPath, [...nodeArgs, CHILD_MAIN, label], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], serialization: 'advanced' })
  live.add(child)
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: ReturnType<typeof setTimeout> }>()
  let nextId = 1
  let stopping = false
  const exited = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      live.delete(child)
      for (const p of pending.values()) {
        clearTimeout(p.timer)
        p.reject(new Error(`${label} (pid ${child.pid}) exited (code ${code}, signal ${signal})`))
      }
      pending.clear()
      if (!stopping) process.stderr.write(`warning: ${label} (pid ${child.pid}) exited unexpectedly (code ${code}, signal ${signal})\n`)
      resolve()
    })
  })
  // The child's stderr (peer errors, crashes) goes to ours, each line marked with the child's label.
  const stderr = child.stderr as NonNullable<typeof child.stderr>
  stderr.setEncoding('utf8')
  let partial = ''
  stderr.on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n')
    partial = lines.pop() ?? ''
    for (const line of lines) if (line !== '') process.stderr.write(`  [${label}] ${line}\n`)
  })
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${label}: not ready within ${START_TIMEOUT_MS / 1000} s`)), START_TIMEOUT_MS)
    child.once('message', () => {
      clearTimeout(timer)
      resolve()
    })
    void exited.then(() => reject(new Error(`${label}: exited while starting`)))
  })
  child.on('message', (reply: Reply) => {
    const p = pending.get(reply.id)
    if (p === undefined) return
    pending.delete(reply.id)
    clearTimeout(p.timer)
    if ('error' in reply) p.reject(new Error(`${label}: ${reply.error}`))
    else p.resolve(reply.result)
  })
  let stopped: Promise<void> | undefined
  const handle: PeerHandle = {
    label,
    pid: child.pid,
    call: <T>(call: Call, timeoutMs = CALL_TIMEOUT_MS): Promise<T> =>
      new Promise<T>((resolve, reject) => {
        if (!child.connected) {
          reject(new Error(`${label}: not connected`))
          return
        }
        const id = nextId++
        const timer = setTimeout(() => {
          pending.delete(id)
          reject(new Error(`${label}: ${call.op} took over ${timeoutMs / 1000} s`))
        }, timeoutMs)
        pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer })
        child.send({ id, call })
      }),
    cpuMs: () => (child.pid === undefined ? NaN : procCpuMs(child.pid)),
    stop: () => {
      stopped ??= (async () => {
        stopping = true
        if (child.exitCode === null && child.signalCode === null) {
          const kill = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS)
          await handle.call({ op: 'stop' }, STOP_TIMEOUT_MS).catch(() => child.kill('SIGKILL'))
          await exited
          clearTimeout(kill)
        }
      })()
      return stopped
    },
  }
  return handle
}

const inProcess = (label: string): PeerHandle => {
  const host = new PeerHost(label)
  return {
    label,
    pid: undefined,
    call: <T>(call: Call): Promise<T> => host.handle(call) as Promise<T>,
    cpuMs: () => NaN,
    stop: () => host.stop(),
  }
}

/** `nodeArgs`: extra node flags for the children, e.g. ['--cpu-prof', '--cpu-prof-dir=/tmp/prof']. */
export const startPeers = (labels: readonly string[], placement: Placement, nodeArgs: readonly string[] = []): Promise<PeerHandle[]> =>
  placement === 'inproc' ? Promise.resolve(labels.map(inProcess)) : Promise.all(labels.map((label) => spawnChild(label, nodeArgs)))

/** CPU time (ms) the hosts have used: the sum over their children, or the whole bench process's in process. */
export const cpuOfAll = (handles: readonly PeerHandle[]): number => {
  if (handles.some((h) => h.pid === undefined)) {
    const u = process.cpuUsage()
    return (u.user + u.system) / 1000
  }
  return handles.reduce((sum, h) => sum + h.cpuMs(), 0)
}

/**
 * How far each host's clock (nowAbs) is from ours: the reply of the round trip with the smallest delay, assumed to
 * be taken halfway through it. Returns the offset and the round trip (the offset's uncertainty is half of it), ms.
 */
export const clockOffset = async (handle: PeerHandle, tries = 20): Promise<{ offset: number; rtt: number }> => {
  let best = { offset: NaN, rtt: Infinity }
  for (let i = 0; i < tries; i++) {
    const t0 = nowAbs()
    const theirs = await handle.call<number>({ op: 'clock' })
    const t1 = nowAbs()
    if (t1 - t0 < best.rtt) best = { offset: theirs - (t0 + t1) / 2, rtt: t1 - t0 }
  }
  return best
}

/** A fresh key (its seed, for the host, and its peer id, for the membership). */
export const newKey = async (): Promise<{ seed: string; peerId: string }> => {
  const key = await ephemeralPeerKey()
  return { seed: Buffer.from(key.seed).toString('base64'), peerId: key.peerId }
}

const post = async (url: string, path: string, body: unknown): Promise<Record<string, unknown>> => {
  const res = await fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  const json = (await res.json()) as Record<string, unknown>
  if (!res.ok) throw new Error(`POST ${path}: ${res.status} ${JSON.stringify(json)}`)
  return json
}

/** The relay's REST side: its libp2p addresses, and memberships of its spaces for our peers. */
export class RelayApi {
  readonly url: string
  private readonly registered = new Set<string>()
  peerId = ''
  /** The relay node's loopback TCP multiaddr (with /p2p/<id>). */
  tcpAddr = ''

  constructor(url: string) {
    this.url = url
  }

  async init(): Promise<void> {
    const caps = (await (await fetch(`${this.url}/capabilities`)).json()) as RelayCapabilities
    if (caps.p2p === undefined) throw new Error('the relay runs no libp2p node')
    this.peerId = caps.p2p.peerId
    const tcp = caps.p2p.multiaddrs.find((a) => /^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\//.test(a))
    if (tcp === undefined) throw new Error(`no loopback TCP address among the relay's ${caps.p2p.multiaddrs.join(', ')}`)
    this.tcpAddr = tcp
  }

  /** The relay-signed membership of `space`'s main document for `peerId`, acting for participant `entity`. */
  async membership(space: string, entity: string, peerId: string): Promise<Membership> {
    if (!this.registered.has(`${space}/${entity}`)) {
      await post(this.url, `/spaces/${space}/entities/register`, { entity_id: entity, entity_type: 'ai_agent', name: entity })
      this.registered.add(`${space}/${entity}`)
    }
    const got = await post(this.url, `/spaces/${space}/p2p/membership`, { peer_id: peerId, entity_id: entity })
    const main = (got.memberships as unknown[]).map(parseMembership).find((m) => m.credential.doc === space)
    if (main === undefined) throw new Error(`no membership of ${space} in the relay's answer`)
    return main
  }

  wsSync(space: string): string {
    return `${this.url.replace(/^http/, 'ws')}/sync/${encodeURIComponent(space)}`
  }
}
