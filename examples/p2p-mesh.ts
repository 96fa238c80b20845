/**
 * Peers keep working without the relay: a relay and 5 peer processes syncing one space over libp2p. The relay is
 * stopped mid-run; the peers keep editing and converge among themselves; restarted on the same folder and ports,
 * the relay catches up on what it missed. Exits 0 when, after each phase, every replica is identical (same
 * content and same state vectors) and holds every write.
 *
 *   node examples/p2p-mesh.ts
 *
 * The relay is relay/src/main.ts and each peer is examples/lib/p2p-mesh-peer.ts, each in a process of its own.
 * The relay's copy is read over its WebSocket sync endpoint, by a replica that starts empty after each (re)start.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import type { RelayCapabilities } from '@chorus/relay'
import { openRelaySpace, type RelaySpace } from '@chorus/sync'
import { check, finish } from './lib/check.ts'
import type { PeerCommand, PeerReady, PeerReply, PeerReport } from './lib/p2p-mesh-peer.ts'
import { replicaDigest, type ReplicaDigest } from './lib/replica-digest.ts'

const SPACE = 'p2p-mesh'
const PEERS = 5
/** Messages on the open channels each peer writes per round (plus one on ai-only). */
const MESSAGES = 4
const DOCUMENTS = [SPACE, `${SPACE}#ai-only`]
/** The longest any one wait may take. */
const WAIT_MS = 60_000
const root = fileURLToPath(new URL('..', import.meta.url))
const started = Date.now()
const elapsed = (since: number): string => `${((Date.now() - since) / 1000).toFixed(1)} s`

/** Everything this example started, so that it is ended however the story ends. */
const children = new Set<ChildProcess>()
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL')
})

/** CHORUS_EXAMPLE_VERBOSE=1: show the children's logs as they come (and the peers' libp2p errors). */
const verbose = process.env.CHORUS_EXAMPLE_VERBOSE !== undefined

/** The end of what a child said on stderr, shown when something went wrong. */
class Tail {
  private text = ''
  private readonly name: string
  constructor(name: string) {
    this.name = name
  }
  add(chunk: string): void {
    this.text = (this.text + chunk).slice(-4000)
    if (verbose) process.stderr.write(chunk.replace(/^(?=.)/gm, `[${this.name}] `))
  }
  toString(): string {
    return this.text.trim()
  }
}

const exitOf = (child: ChildProcess): Promise<number | null> =>
  child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve(child.exitCode)
    : new Promise((resolve) => child.once('exit', (code) => resolve(code)))

/** Waits for `child` to exit; SIGKILLs it after `ms`. Resolves with its exit code (null when killed). */
async function reap(child: ChildProcess, ms: number): Promise<number | null> {
  const timer = setTimeout(() => child.kill('SIGKILL'), ms)
  const code = await exitOf(child)
  clearTimeout(timer)
  children.delete(child)
  return code
}

async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

/** Polls `condition` every 200 ms; throws, saying what it waited for and what it last saw, after `WAIT_MS`. */
async function waitFor(what: string, condition: () => Promise<boolean>, lastSeen: () => string = () => ''): Promise<void> {
  const deadline = Date.now() + WAIT_MS
  while (!(await condition())) {
    if (Date.now() > deadline) {
      const seen = lastSeen()
      throw new Error(`timed out after ${WAIT_MS / 1000} s waiting for ${what}${seen === '' ? '' : `; last seen: ${seen}`}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
}

/** The relay's command line, on fixed ports and one data folder, so a restart comes back at the same addresses. */
class RelayProcess {
  readonly url: string
  private readonly args: string[]
  private child: ChildProcess | undefined
  readonly stderr = new Tail('relay')

  constructor(httpPort: number, p2pPort: number, dataDir: string) {
    this.url = `http://127.0.0.1:${httpPort}`
    this.args = [join(root, 'relay/src/main.ts'), '--port', String(httpPort), '--data', dataDir, '--p2p-listen', `/ip4/127.0.0.1/tcp/${p2pPort}`]
  }

  /** Starts it and waits for its one line on stdout. */
  async start(): Promise<void> {
    const child = spawn(process.execPath, this.args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
    this.child = child
    children.add(child)
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => this.stderr.add(chunk))
    const listening = new Promise<void>((resolve, reject) => {
      createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
        if (line.startsWith('chorus relay listening on ')) resolve()
      })
      child.once('exit', (code) => reject(new Error(`the relay exited (code ${code}) before it listened:\n${this.stderr.toString()}`)))
    })
    const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`the relay did not listen within ${WAIT_MS / 1000} s`)), WAIT_MS).unref())
    await Promise.race([listening, timeout])
  }

  /** SIGTERM, as an operator would stop it; resolves with its exit code. */
  async stop(): Promise<number | null> {
    const child = this.child
    if (child === undefined) return null
    this.child = undefined
    child.kill('SIGTERM')
    return reap(child, 15_000)
  }

  async capabilities(): Promise<RelayCapabilities> {
    return (await (await fetch(`${this.url}/capabilities`)).json()) as RelayCapabilities
  }
}

/** A command before it gets its id. */
type Unsent<T> = T extends unknown ? Omit<T, 'id'> : never

/** One peer process, driven over its stdin and stdout. */
class PeerProcess {
  readonly id: string
  readonly peerId: Promise<string>
  readonly stderr: Tail
  private readonly child: ChildProcess
  private readonly pending = new Map<number, (reply: PeerReply) => void>()
  private next = 1

  constructor(id: string, relayUrl: string, folder: string) {
    this.id = id
    this.stderr = new Tail(id)
    const child = spawn(process.execPath, [join(root, 'examples/lib/p2p-mesh-peer.ts'), relayUrl, SPACE, id, folder], { cwd: root, stdio: ['pipe', 'pipe', 'pipe'] })
    this.child = child
    children.add(child)
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => this.stderr.add(chunk))
    // A peer that died is reported through its exit; writing to it must not crash the story.
    child.stdin?.on('error', () => undefined)
    this.peerId = new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
        const said = JSON.parse(line) as PeerReply | PeerReady
        if ('ready' in said) resolve(said.peerId)
        else this.pending.get(said.id)?.(said)
      })
      child.once('exit', (code) => {
        const error = new Error(`${id} exited (code ${code}):\n${this.stderr.toString()}`)
        reject(error)
        for (const answer of this.pending.values()) answer({ id: 0, ok: false, error: error.message })
      })
      setTimeout(() => reject(new Error(`${id} was not ready within ${WAIT_MS / 1000} s:\n${this.stderr.toString()}`)), WAIT_MS).unref()
    })
  }

  async request(command: Unsent<PeerCommand>): Promise<PeerReply & { ok: true }> {
    const id = this.next++
    const reply = await new Promise<PeerReply>((resolve) => {
      const timer = setTimeout(() => resolve({ id, ok: false, error: `no answer to ${command.cmd} within 20 s` }), 20_000)
      this.pending.set(id, (r) => {
        clearTimeout(timer)
        resolve(r)
      })
      this.child.stdin?.write(`${JSON.stringify({ ...command, id })}\n`)
    })
    this.pending.delete(id)
    if (!reply.ok) throw new Error(`${this.id}: ${reply.error}`)
    return reply
  }

  async write(round: string, messages: number): Promise<string[]> {
    return (await this.request({ cmd: 'write', round, messages })).wrote ?? []
  }

  async report(): Promise<PeerReport> {
    const { report } = await this.request({ cmd: 'report' })
    if (report === undefined) throw new Error(`${this.id} sent no report`)
    return report
  }

  /** Asks it to stop; resolves with its exit code. */
  async stop(): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.stdin?.write(`${JSON.stringify({ cmd: 'stop', id: 0 })}\n`)
    return reap(this.child, 10_000)
  }
}

/** A replica of the relay's copy, read over its WebSocket sync endpoint: it starts empty. */
async function openReader(relayUrl: string): Promise<RelaySpace> {
  const reader = await openRelaySpace({ relay: relayUrl, space: SPACE, participant: { id: 'observer', kind: 'ai' } })
  await reader.synced()
  return reader
}

const short = (peerId: string): string => `…${peerId.slice(-6)}`
const describe = (d: ReplicaDigest): string =>
  `${d.messages} messages (${d.aiOnly} on ai-only), ${d.stateKeys} state keys, ${d.tasks} tasks, ${d.participants} participants; digest ${d.hash}`

const dir = mkdtempSync(join(tmpdir(), 'chorus-p2p-mesh-'))
let relay: RelayProcess | undefined
let reader: RelaySpace | undefined
const peers: PeerProcess[] = []

/** What the peers said last, and the relay's copy, for the timeout messages. */
let lastReports: PeerReport[] = []
let lastRelay: ReplicaDigest | undefined
const seen = (): string =>
  [...lastReports.map((r, i) => `peer-${i + 1}: ${r.digest.messages} messages, ${r.digest.hash}, links [${r.linked.map(short).join(' ')}], ${r.directPeers} direct`),
    ...(lastRelay === undefined ? [] : [`relay's copy: ${lastRelay.messages} messages, ${lastRelay.hash}`])].join('; ')

/** The relay's copy as `converged` last saw it (a function: TypeScript cannot see `converged` set it). */
const relaySeen = (): ReplicaDigest | undefined => lastRelay
const reportAll = async (): Promise<PeerReport[]> => (lastReports = await Promise.all(peers.map((p) => p.report())))
const relayCopy = (): ReplicaDigest | undefined => (lastRelay = reader === undefined ? undefined : replicaDigest(reader.space, DOCUMENTS))

/** Every peer (and the relay's copy, when `withRelay`) holds the same replica, with every one of `expected` in it. */
async function converged(expected: readonly string[], withRelay: boolean): Promise<boolean> {
  const reports = await reportAll()
  const first = reports[0]?.digest
  if (first === undefined || reports.some((r) => r.digest.hash !== first.hash)) return false
  const held = new Set(first.contents)
  if (!expected.every((c) => held.has(c))) return false
  return !withRelay || relayCopy()?.hash === first.hash
}

let interrupted = false
process.once('SIGINT', () => {
  interrupted = true
  console.error('interrupted: stopping the relay and the peers')
  for (const child of children) child.kill('SIGKILL')
  rmSync(dir, { recursive: true, force: true })
  process.exit(130)
})

try {
  const [httpPort, p2pPort] = [await freePort(), await freePort()]
  relay = new RelayProcess(httpPort, p2pPort, join(dir, 'relay'))
  await relay.start()
  const caps = await relay.capabilities()
  const relayPeer = caps.p2p?.peerId
  if (relayPeer === undefined) throw new Error('the relay runs no libp2p node')
  console.log(`relay at ${relay.url}, its libp2p node at /ip4/127.0.0.1/tcp/${p2pPort}/p2p/${relayPeer}`)
  // The reader of the relay's copy names itself to get the ai-only channel too.
  const registered = await fetch(`${relay.url}/spaces/${SPACE}/entities/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ entity_id: 'observer', entity_type: 'ai_agent', name: 'Observer' }),
  })
  if (registered.status !== 200) throw new Error(`could not register the observer: ${registered.status} ${await registered.text()}`)

  let since = Date.now()
  for (let i = 1; i <= PEERS; i++) {
    const folder = join(dir, `peer-${i}`)
    mkdirSync(folder)
    peers.push(new PeerProcess(`peer-${i}`, relay.url, folder))
  }
  const peerIds = await Promise.all(peers.map((p) => p.peerId))
  console.log(`${PEERS} peers up in ${elapsed(since)} (registered as ai participants, memberships from the relay): ${peers.map((p, i) => `${p.id} ${short(peerIds[i] as string)}`).join(', ')}`)
  const expected: string[] = []

  // Phase 1: everyone writes with the relay up.
  console.log(`\nphase 1: the relay is up; every peer writes ${MESSAGES} messages on general and mesh, 1 on ai-only, 2 state keys, 1 task`)
  since = Date.now()
  for (const p of peers) expected.push(...(await p.write('round 1', MESSAGES)))
  reader = await openReader(relay.url)
  await waitFor('the 5 peers and the relay to hold every round-1 write, identically', () => converged(expected, true), seen)
  const one = lastReports[0]?.digest as ReplicaDigest
  console.log(`  converged in ${elapsed(since)}: the 5 peers and the relay hold ${describe(one)}`)
  check('phase 1: the 5 peers hold identical replicas with every write', lastReports.every((r) => r.digest.hash === one.hash) && one.messages === expected.length)
  check("phase 1: the relay's copy is identical to theirs", relaySeen()?.hash === one.hash)
  check(`phase 1: ${PEERS + 1} state keys (one per peer, and 'latest-round' that all wrote at once) and ${PEERS} tasks`, one.stateKeys === PEERS + 1 && one.tasks === PEERS)
  since = Date.now()
  await waitFor('every peer to be linked directly to the 4 others (found through pubsub peer discovery)', async () =>
    (await reportAll()).every((r, i) => r.directPeers === PEERS - 1 && peerIds.every((id, j) => j === i || r.linked.includes(id))), seen)
  console.log(`  mesh: every peer is connected and linked to the ${PEERS - 1} others directly (${elapsed(since)} more)`)
  check('every peer found the 4 others through the relay and links to them directly', lastReports.every((r) => r.directPeers === PEERS - 1))

  // Phase 2: the relay goes away; the peers go on.
  await reader.close()
  reader = undefined
  lastRelay = undefined
  const stopped = await relay.stop()
  console.log(`\nphase 2: the relay is stopped (SIGTERM, exit ${stopped}); every peer writes again`)
  check('the relay stopped cleanly on SIGTERM (exit 0)', stopped === 0)
  const down = await fetch(`${relay.url}/capabilities`).then(() => false, () => true)
  check('the relay is unreachable', down)
  since = Date.now()
  await waitFor("every peer to drop its link to the relay's node", async () => (await reportAll()).every((r) => !r.linked.includes(relayPeer)), seen)
  for (const p of peers) expected.push(...(await p.write('round 2', MESSAGES)))
  await waitFor('the 5 peers to hold every round-2 write, identically, with the relay down', () => converged(expected, false), seen)
  const two = lastReports[0]?.digest as ReplicaDigest
  console.log(`  converged without the relay in ${elapsed(since)}: the 5 peers hold ${describe(two)}`)
  check('phase 2: the 5 peers hold identical replicas with every write, without the relay', lastReports.every((r) => r.digest.hash === two.hash) && two.messages === expected.length)
  check('phase 2: no peer was linked to the relay meanwhile', lastReports.every((r) => !r.linked.includes(relayPeer)))

  // Phase 3: the relay comes back and catches up.
  const restart = Date.now()
  await relay.start()
  const again = await relay.capabilities()
  console.log(`\nphase 3: the relay is restarted on the same folder and ports (listening after ${elapsed(restart)})`)
  check('the restarted relay has the same peer id and libp2p address', again.p2p?.peerId === relayPeer && (again.p2p?.multiaddrs ?? []).some((a) => a.includes(`/tcp/${p2pPort}/p2p/${relayPeer}`)))
  reader = await openReader(relay.url)
  await waitFor("every peer to reconnect to the relay's node by itself", async () => (await reportAll()).every((r) => r.linked.includes(relayPeer)), seen)
  console.log(`  every peer reconnected to the relay by itself, ${elapsed(restart)} after the restart`)
  await waitFor("the relay's copy to catch up with the peers (round 2, written while it was down)", () => converged(expected, true), seen)
  const caught = lastReports[0]?.digest as ReplicaDigest
  console.log(`  the relay caught up ${elapsed(restart)} after the restart: it holds ${describe(caught)}`)
  check("phase 3: the relay's copy is identical to the 5 peers', round 2 included", relaySeen()?.hash === caught.hash && caught.hash === two.hash)

  since = Date.now()
  const last = peers[2] as PeerProcess
  expected.push(...(await last.write('final', 1)))
  await waitFor(`the final write of ${last.id} to reach every peer and the relay`, () => converged(expected, true), seen)
  const final = lastReports[0]?.digest as ReplicaDigest
  console.log(`  a final write on ${last.id} reached the 4 other peers and the relay in ${elapsed(since)}: ${describe(final)}`)
  check('finally: the 5 peers and the relay hold identical replicas with every write', lastReports.every((r) => r.digest.hash === final.hash) && relaySeen()?.hash === final.hash && final.messages === expected.length)

  await reader.close()
  reader = undefined
  const exits = await Promise.all(peers.map((p) => p.stop()))
  check('every peer process stopped cleanly (exit 0)', exits.every((code) => code === 0))
  check('the relay stopped cleanly again (exit 0)', (await relay.stop()) === 0)
} catch (e) {
  if (!interrupted) {
    check(e instanceof Error ? e.message : String(e), false)
    for (const p of peers) if (p.stderr.toString() !== '') console.error(`--- ${p.id} stderr:\n${p.stderr.toString()}`)
    if (relay !== undefined && relay.stderr.toString() !== '') console.error(`--- relay stderr (end):\n${relay.stderr.toString()}`)
  }
} finally {
  await reader?.close().catch(() => undefined)
  await Promise.all(peers.map((p) => p.stop()))
  await relay?.stop()
  rmSync(dir, { recursive: true, force: true })
}
console.log(`\n(${elapsed(started)} in all)`)
finish('p2p-mesh')
