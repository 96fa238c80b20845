/**
 * Chorus p2p benchmark: peers over libp2p (@chorus/p2p) beside the relay's WebSocket and plain Yjs doing the same
 * work, measured in the same run.
 *
 *   npm run bench:p2p                       # about 2 minutes on 2 cores
 *   npm run bench:p2p -- --quick            # shorter phases, a 20k-message space (under a minute)
 *   node --expose-gc bench/p2p.ts --only=propagation      # or --only=catchup
 *   node --expose-gc bench/p2p.ts --peers=inproc          # all peers in this process (see the notes: it skews)
 *   node --expose-gc bench/p2p.ts --peer-cpu-prof=DIR     # --cpu-prof for the peer children, profiles in DIR
 *
 * The relay runs in a child process (relay/src/main.ts on a temporary data folder, its libp2p node on loopback),
 * and so does every peer (bench/lib/p2p-peer-child.ts): one process per participant, as in real use. This process
 * only orchestrates them and runs the plain-Yjs baselines. Tables go to stdout, progress lines to stderr.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { arch, cpus, loadavg, platform, tmpdir, totalmem } from 'node:os'
import { join } from 'node:path'
import * as Y from 'yjs'
import { startServer, type ServerChild } from './lib/fanout-server.ts'
import { benchArgs } from './lib/args.ts'
import { fmtBytes, fmtMs, fmtPct as pct, fmtRatio, median, nowAbs, progress, quantile, sleep, verdict } from './lib/measure.ts'
import { buildBigSpace, uploadToRelay, yjsCatchUp, type BigSpace } from './lib/p2p-catchup.ts'
import { clockOffset, cpuOfAll, newKey, RelayApi, startPeers, type PeerHandle, type Placement } from './lib/p2p-children.ts'
import type { CatchUpResult, Collected, Health, Mode, Sample, Status } from './lib/p2p-protocol.ts'
import { printTable } from './lib/table.ts'

const SECTIONS = ['propagation', 'catchup'] as const
type Section = (typeof SECTIONS)[number]

const { quick, only, want, value } = benchArgs<Section>()
const placementArg = value('peers') ?? 'child'
if (placementArg !== 'child' && placementArg !== 'inproc') {
  console.error(`--peers must be child or inproc, got ${placementArg}`)
  process.exit(2)
}
const placement: Placement = placementArg
const profArg = value('peer-cpu-prof')
/** Extra node flags for the peer children: --cpu-prof with --peer-cpu-prof=DIR (profiles written to DIR). */
const peerNodeArgs = profArg === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${profArg}`]

/** Target (the p2p issue): p99 propagation under 20 ms between directly connected peers on loopback. */
const P99_TARGET_MS = 20

// ---- header ------------------------------------------------------------------------------------------------

const versionOf = (pkg: string): string =>
  (JSON.parse(readFileSync(new URL(`../node_modules/${pkg}/package.json`, import.meta.url), 'utf8')) as { version: string }).version
const cpu = cpus()
const header = (): void => {
  console.log('Chorus p2p benchmark')
  console.log(
    `node ${process.version}, yjs ${versionOf('yjs')}, libp2p ${versionOf('libp2p')}, gossipsub ${versionOf('@libp2p/gossipsub')}, noise ${versionOf('@chainsafe/libp2p-noise')}, yamux ${versionOf('@chainsafe/libp2p-yamux')}, ${platform()} ${arch()}`,
  )
  console.log(`date ${new Date().toISOString()}`)
  console.log(`cpu  ${cpu[0]?.model ?? 'unknown'} x ${cpu.length}, ${(totalmem() / 2 ** 30).toFixed(0)} GB RAM, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`)
  if ((loadavg()[0] as number) > cpu.length / 2) {
    console.log(`note the machine is busy (load ${(loadavg()[0] as number).toFixed(2)} on ${cpu.length} cores): latencies will be noisy; CPU per update is the steadiest figure`)
  }
  console.log(
    `mode ${quick ? 'quick (shorter phases, 20k-message space)' : 'full'}, peers ${placement === 'child' ? 'one child process each' : 'all in the bench process'}${only === undefined ? '' : `, only ${[...only].join(',')}`}`,
  )
}

// ---- helpers -----------------------------------------------------------------------------------------------


const fmtLatency = (ms: number): string => (!Number.isFinite(ms) ? '-' : ms < 1 ? `${(ms * 1000).toFixed(0)} µs` : ms < 10 ? `${ms.toFixed(2)} ms` : fmtMs(ms))

// ---- 1. propagation ------------------------------------------------------------------------------------------

const PEERS = 5
/**
 * Updates per second per writer (every peer writes), with their warm-up and measured seconds: a light load (a team
 * at work: 25 updates/s in the space), and a heavy one, 50/s per peer. On a small machine the second is beyond what
 * the libp2p peers keep up with (see the CPU columns), so its latencies are mostly queueing: like a peak phase, it
 * is kept short.
 */
interface Load {
  rate: number
  warmupS: number
  measureS: number
}
const LOADS: readonly Load[] = [
  { rate: 5, warmupS: quick ? 1 : 1.5, measureS: quick ? 3 : 5 },
  { rate: 50, warmupS: quick ? 0.5 : 1, measureS: quick ? 1 : 2 },
]
const RATES: readonly number[] = LOADS.map((l) => l.rate)
/** The plain-Yjs floor is the same at any length: a short phase is enough. */
const FLOOR_WARMUP_S = quick ? 0.5 : 1
const FLOOR_S = quick ? 1 : 2
/** Blocks per rate in ABCCBA order (quick: ABC), so slow drift of the machine hits every path alike. */
const MODES: readonly Mode[] = ['direct', 'circuit', 'ws']
const ORDER: readonly Mode[] = quick ? MODES : [...MODES, ...[...MODES].reverse()]
/** How long a receiver waits for stamps still missing when a phase ends (gossip drops come back at the 15 s resync). */
const STRAGGLER_WAIT_MS = 10_000
/** Before a block, the peers and the relay must be idle (under this share of one core, all together)... */
const QUIET_CPU = 0.15
/** ...waiting at most this long for it (a saturated path leaves a backlog that is still being worked off). */
const QUIET_WAIT_MS = 20_000

type Path = Mode | 'yjs'
const PATHS: readonly Path[] = [...MODES, 'yjs']

const PATH_LABEL: Record<Path, string> = {
  direct: 'p2p direct (TCP full mesh)',
  circuit: 'p2p through the relay circuit',
  ws: 'relay WebSocket (baseline)',
  yjs: 'plain Yjs, one process (floor)',
}

interface Delivery extends Sample {
  receiver: number
}

interface BlockResult {
  deliveries: Delivery[]
  expected: number
  missing: number
  /** CPU of all peers (ms) over the phase, and of the relay. */
  peerCpuMs: number
  relayCpuMs: number
  wallMs: number
  updates: number
  health: Health[]
  /** Worst lateness of a write against its schedule (ms): the writers' own event-loop stalls. */
  lateMax: number
  /** How long the block waited for the previous one's backlog to clear (ms). */
  quietMs: number
  /** When stamps went missing: which, and each peer's links then. */
  anomaly?: string
  /** Links found dropped (and dialled again) before the block. */
  relinked: number
}

/** The gossipsub mesh size / subscribers of each peer once linked, by mode (for the notes). */
const meshSizes = new Map<Mode, string>()

type PeerInfo = { peerId: string; addrs: string[] }
/** The p2p members of each mode: their peer ids and addresses, by host. */
const members = new Map<Mode, PeerInfo[]>()

/** Starts the members of `mode` on every host and waits until they form a full mesh (or are synced with the relay). */
const setUpMode = async (mode: Mode, hosts: readonly PeerHandle[], api: RelayApi): Promise<void> => {
  const space = `bench-p2p-${mode}`
  if (mode === 'ws') {
    await Promise.all(hosts.map((h) => h.call({ op: 'ws', name: mode, url: api.wsSync(space) })))
    return
  }
  const infos = await Promise.all(
    hosts.map(async (h, i) => {
      const key = await newKey()
      const membership = await api.membership(space, `writer-${i}`, key.peerId)
      return h.call<PeerInfo>({
        op: 'peer',
        name: mode,
        mode,
        seed: key.seed,
        membership,
        ...(mode === 'circuit' ? { relay: { addr: api.tcpAddr, peerId: api.peerId } } : {}),
      })
    }),
  )
  members.set(mode, infos)
  meshSizes.set(mode, await linkMesh(mode, hosts, infos))
  progress(`propagation: ${mode}: linked; gossipsub mesh/subscribers per peer ${meshSizes.get(mode)}`)
}

/** Dials the full mesh (each pair once, by the lower index; a pair already connected stays as it is) and waits for it. */
const linkMesh = async (mode: Mode, hosts: readonly PeerHandle[], infos: readonly PeerInfo[]): Promise<string> => {
  await Promise.all(hosts.map((h, i) => h.call({ op: 'dial', name: mode, addrs: infos.slice(i + 1).map((x) => x.addrs[0] as string) })))
  const ready = await Promise.all(
    hosts.map((h, i) =>
      h.call<{ links: Array<{ peer: string; addrs: string[] }>; mesh: number; subscribers: number }>({
        op: 'ready',
        name: mode,
        peers: infos.filter((_, j) => j !== i).map((x) => x.peerId),
        timeoutMs: 30_000,
      }),
    ),
  )
  // The point of each mode: direct links only, or relayed ones only.
  for (const [i, { links }] of ready.entries()) {
    for (const { peer, addrs } of links) {
      const relayed = addrs.filter((a) => a.includes('/p2p-circuit')).length
      const bad = mode === 'circuit' ? relayed < addrs.length : relayed > 0
      if (addrs.length === 0 || bad) throw new Error(`${mode}: peer ${i} reaches ${peer} over ${addrs.join(', ') || 'nothing'}`)
    }
  }
  return ready.map((r) => `${r.mesh}/${r.subscribers}`).join(' ')
}

/**
 * Before a block: every p2p member still linked to all the others? A saturated block stalls event loops for seconds,
 * and libp2p's connection monitor then aborts connections whose ping took over its timeout (5 s at least): seen on
 * the relay's node, which drops a peer's connection and with it every circuit through it. The peers dial the relay
 * again (bootstrap), but with discovery off nothing dials the circuits. Returns how many links were gone, and
 * dials them again.
 */
const relink = async (mode: Mode, hosts: readonly PeerHandle[]): Promise<number> => {
  const infos = members.get(mode)
  if (infos === undefined) return 0
  const statuses = await Promise.all(hosts.map((h) => h.call<Status>({ op: 'status', name: mode })))
  const linked = statuses.map((st, i) => infos.filter((x, j) => j !== i && st.linkedPeers.includes(x.peerId)).length)
  const gone = Math.ceil(linked.reduce((n, l) => n + (PEERS - 1 - l), 0) / 2)
  if (gone > 0) {
    const closed = statuses.map((st) => st.counters.connectionsClosed ?? 0)
    progress(
      `propagation: ${mode}: ${gone} link(s) dropped since the last block (other peers linked, per peer: ${linked.join(' ')}; libp2p connections closed so far, per peer: ${closed.join(' ')}); dialling again`,
    )
    await linkMesh(mode, hosts, infos)
  }
  return gone
}

/** Waits until the peers and the relay are idle; returns how long that took (ms). */
const quiesce = async (hosts: readonly PeerHandle[], relay: ServerChild): Promise<number> => {
  const t0 = performance.now()
  for (;;) {
    const c0 = cpuOfAll(hosts) + relay.cpuMs()
    await sleep(250)
    const busy = (cpuOfAll(hosts) + relay.cpuMs() - c0) / 250
    const waited = performance.now() - t0
    if (!(busy > QUIET_CPU) || waited > QUIET_WAIT_MS) {
      if (waited > 1_000) progress(`propagation: waited ${fmtMs(waited)} for the previous block's backlog (now ${pct(busy)} of a core busy)`)
      return waited
    }
  }
}

const runBlock = async (mode: Mode, load: Load, block: number, blocks: number, hosts: readonly PeerHandle[], relay: ServerChild): Promise<BlockResult> => {
  const { rate, warmupS, measureS } = load
  const write = (count: number, startAt: number, measured: boolean): Promise<Array<{ written: number; lateMax: number }>> =>
    Promise.all(
      hosts.map((h, i) =>
        h.call<{ written: number; lateMax: number }>({ op: 'write', name: mode, block, writer: i, writers: PEERS, rate, count, startAt, measured }),
      ),
    )
  const label = `propagation: ${rate}/s per peer: ${PATH_LABEL[mode]} (block ${block + 1}/${blocks})`
  const quietMs = await quiesce(hosts, relay)
  const relinked = await relink(mode, hosts)
  progress(`${label}: warm-up ${warmupS} s`)
  await write(Math.round(rate * warmupS), nowAbs() + 100, false)
  progress(`${label}: ${PEERS} writers x ${rate}/s for ${measureS} s`)
  await Promise.all(hosts.map((h) => h.call({ op: 'monitor', on: true })))
  const count = Math.round(rate * measureS)
  const startAt = nowAbs() + 100
  await sleep(90)
  const cpu0 = cpuOfAll(hosts)
  const relay0 = relay.cpuMs()
  const writes = await write(count, startAt, true)
  // Let the last updates land before reading the CPU counters.
  await sleep(100)
  const cpu1 = cpuOfAll(hosts)
  const relay1 = relay.cpuMs()
  const wallMs = nowAbs() - startAt
  const health = await Promise.all(hosts.map((h) => h.call<Health>({ op: 'monitor', on: false })))
  const collected = await Promise.all(
    hosts.map((h, i) =>
      h.call<Collected>({ op: 'collect', name: mode, block, writers: PEERS, self: i, expected: count, startAt, waitMs: STRAGGLER_WAIT_MS }),
    ),
  )
  const missing = collected.reduce((n, c) => n + c.missing, 0)
  const anomaly = missing === 0 ? undefined : await describeMissing(mode, hosts, collected, count)
  if (anomaly !== undefined) progress(`${label}: ${anomaly}`)
  return {
    deliveries: collected.flatMap((c, receiver) => c.samples.map((s) => ({ ...s, receiver }))),
    expected: PEERS * (PEERS - 1) * count,
    missing,
    anomaly,
    relinked,
    peerCpuMs: cpu1 - cpu0,
    relayCpuMs: relay1 - relay0,
    wallMs,
    updates: PEERS * count,
    health,
    lateMax: Math.max(...writes.map((w) => w.lateMax)),
    quietMs,
  }
}

/** Which writer's stamps each receiver lacks, and every peer's links, gossip mesh and counters right after. */
const describeMissing = async (mode: Mode, hosts: readonly PeerHandle[], collected: readonly Collected[], count: number): Promise<string> => {
  const lacks: string[] = []
  for (const [receiver, c] of collected.entries()) {
    for (let w = 0; w < PEERS; w++) {
      if (w === receiver) continue
      const got = c.samples.filter((x) => x.writer === w).length
      if (got < count) lacks.push(`w${w}>p${receiver} ${count - got}`)
    }
  }
  const statuses = await Promise.all(hosts.map((h) => h.call<Status>({ op: 'status', name: mode }).catch(() => undefined)))
  const state = statuses
    .map((st, i) => {
      if (st === undefined) return `p${i} ?`
      const c = st.counters
      const extra = ['connectionsClosed', 'refused', 'unreadable', 'unauthorized', 'malformed', 'sendErrors'].filter((k) => (c[k] ?? 0) > 0).map((k) => ` ${k} ${c[k]}`)
      return `p${i} linked ${st.linked}, mesh ${st.mesh}/${st.subscribers}, conns ${st.connections}${extra.join('')}`
    })
    .join('; ')
  return `not delivered within ${STRAGGLER_WAIT_MS / 1000} s (writer>receiver count): ${lacks.slice(0, 12).join(', ')}${lacks.length > 12 ? ', ...' : ''}. Then: ${state}`
}

/** The floor: five Y.Docs in this process, each update applied straight into the other four (`Y.applyUpdate`). */
const yjsBlock = async (rate: number): Promise<BlockResult> => {
  const REMOTE = 'remote'
  const docs = Array.from({ length: PEERS }, () => new Y.Doc())
  const deliveries: Delivery[] = []
  let startAt = 0
  let measuring = false
  for (const [i, doc] of docs.entries()) {
    doc.on('update', (update: Uint8Array, origin: unknown) => {
      if (origin === REMOTE) return
      for (const [j, other] of docs.entries()) if (j !== i) Y.applyUpdate(other, update, REMOTE)
    })
    const map = doc.getMap<{ w: number; s: number; t: number }>('stamps')
    map.observe((event) => {
      if (event.transaction.local || !measuring) return
      const at = nowAbs()
      for (const key of event.keysChanged as Set<string>) {
        const v = map.get(key)
        if (v !== undefined) deliveries.push({ latency: at - v.t, writer: v.w, seq: v.s, sentAfter: v.t - startAt, gossip: false, receiver: i })
      }
    })
  }
  const gap = 1000 / rate
  let lateMax = 0
  const phase = (prefix: string, count: number): Promise<void[]> =>
    Promise.all(
      docs.map(async (doc, w) => {
        const map = doc.getMap('stamps')
        for (let s = 0; s < count; s++) {
          const due = startAt + (w * gap) / PEERS + s * gap
          const wait = due - nowAbs()
          if (wait > 0) await sleep(wait)
          const t = nowAbs()
          if (measuring) lateMax = Math.max(lateMax, t - due)
          map.set(`${prefix}:${w}:${s}`, { w, s, t })
        }
      }),
    )
  progress(`propagation: ${rate}/s per peer: ${PATH_LABEL.yjs}: warm-up ${FLOOR_WARMUP_S} s, then ${FLOOR_S} s`)
  startAt = nowAbs() + 50
  await phase('warm-up', Math.round(rate * FLOOR_WARMUP_S))
  const count = Math.round(rate * FLOOR_S)
  measuring = true
  startAt = nowAbs() + 50
  const cpu0 = process.cpuUsage()
  await phase('measured', count)
  const used = process.cpuUsage(cpu0)
  const wallMs = nowAbs() - startAt
  for (const d of docs) d.destroy()
  return {
    deliveries,
    expected: PEERS * (PEERS - 1) * count,
    missing: PEERS * (PEERS - 1) * count - deliveries.length,
    peerCpuMs: (used.user + used.system) / 1000,
    relayCpuMs: NaN,
    wallMs,
    updates: PEERS * count,
    health: [],
    lateMax,
    quietMs: 0,
    relinked: 0,
  }
}

interface PathFigures {
  latencies: number[]
  deliveries: Delivery[]
  expected: number
  missing: number
  gossipShare: number
  /** Median over blocks: all peers' CPU per update written (µs), their CPU as a share of one core, the relay's. */
  cpuPerUpdate: number
  peerCpu: number
  relayCpuPerUpdate: number
  health: Health[]
  lateMax: number
  /** p99 of each block, in block order. */
  blockP99: number[]
}

const sortedLatencies = (ds: readonly Delivery[]): number[] => ds.map((d) => d.latency).sort((a, b) => a - b)

const figuresOf = (blocks: readonly BlockResult[]): PathFigures => {
  const deliveries = blocks.flatMap((b) => b.deliveries)
  return {
    latencies: sortedLatencies(deliveries),
    deliveries,
    expected: blocks.reduce((n, b) => n + b.expected, 0),
    missing: blocks.reduce((n, b) => n + b.missing, 0),
    gossipShare: deliveries.length === 0 ? NaN : deliveries.filter((d) => d.gossip).length / deliveries.length,
    cpuPerUpdate: median(blocks.map((b) => (b.peerCpuMs * 1000) / b.updates)),
    peerCpu: median(blocks.map((b) => b.peerCpuMs / b.wallMs)),
    relayCpuPerUpdate: median(blocks.map((b) => (b.relayCpuMs * 1000) / b.updates)),
    health: blocks.flatMap((b) => b.health),
    lateMax: Math.max(...blocks.map((b) => b.lateMax)),
    blockP99: blocks.map((b) => quantile(sortedLatencies(b.deliveries), 0.99)),
  }
}

const fmtUsPerUpdate = (us: number): string => (Number.isFinite(us) ? (us >= 1000 ? `${(us / 1000).toFixed(2)} ms` : `${us.toFixed(0)} µs`) : '-')

type Results = Map<number, Map<Path, BlockResult[]>>

const propagationSection = async (relay: ServerChild, api: RelayApi): Promise<void> => {
  progress(`propagation: starting ${PEERS} peer ${placement === 'child' ? 'children' : 'hosts in this process'}`)
  const results: Results = new Map(RATES.map((r) => [r, new Map(PATHS.map((p) => [p, []]))]))
  let offsets: Array<{ offset: number; rtt: number }> = []
  let hosts: PeerHandle[] = []
  try {
    hosts = await startPeers(
      Array.from({ length: PEERS }, (_, i) => `peer ${i}`),
      placement,
      peerNodeArgs,
    )
    offsets = placement === 'child' ? await Promise.all(hosts.map((h) => clockOffset(h))) : []
    for (const mode of MODES) {
      progress(`propagation: connecting the ${PATH_LABEL[mode]} members`)
      await setUpMode(mode, hosts, api)
    }
    const blocks = RATES.length * ORDER.length
    let block = 0
    for (const load of LOADS) {
      for (const mode of ORDER) {
        results.get(load.rate)?.get(mode)?.push(await runBlock(mode, load, block, blocks, hosts, relay))
        block++
      }
    }
  } finally {
    progress('propagation: stopping the peers')
    await Promise.allSettled(hosts.map((h) => h.stop()))
  }
  for (const rate of RATES) results.get(rate)?.get('yjs')?.push(await yjsBlock(rate))
  printPropagation(results, offsets)
}

const printPropagation = (results: Results, offsets: ReadonlyArray<{ offset: number; rtt: number }>): void => {
  const figures = new Map(RATES.map((rate) => [rate, new Map(PATHS.map((p) => [p, figuresOf(results.get(rate)?.get(p) ?? [])]))]))
  const fig = (rate: number, p: Path): PathFigures => figures.get(rate)?.get(p) as PathFigures
  const rows: string[][] = []
  for (const rate of RATES) {
    const ws = fig(rate, 'ws')
    const wsP50 = quantile(ws.latencies, 0.5)
    const wsP99 = quantile(ws.latencies, 0.99)
    for (const p of PATHS) {
      const f = fig(rate, p)
      const l = f.latencies
      const p99 = quantile(l, 0.99)
      rows.push([
        `${rate}/s`,
        PATH_LABEL[p],
        `${l.length}/${f.expected}`,
        fmtLatency(quantile(l, 0.5)),
        fmtLatency(quantile(l, 0.9)),
        fmtLatency(p99),
        fmtLatency(l[l.length - 1] ?? NaN),
        pct(f.peerCpu),
        fmtUsPerUpdate(f.cpuPerUpdate),
        p === 'direct' || p === 'yjs' ? '' : fmtUsPerUpdate(f.relayCpuPerUpdate),
        fmtRatio(quantile(l, 0.5) / wsP50),
        fmtRatio(p99 / wsP99),
        p === 'direct' ? verdict(p99 < P99_TARGET_MS) : '',
      ])
    }
  }
  const directP99 = (rate: number): number => quantile(fig(rate, 'direct').latencies, 0.99)
  const perBlock = (rate: number): string => MODES.map((m) => `${m} ${fig(rate, m).blockP99.map(fmtLatency).join(', ')}`).join('; ')
  const maxOffset = offsets.length === 0 ? NaN : Math.max(...offsets.map((o) => Math.abs(o.offset)))
  const maxRtt = offsets.length === 0 ? NaN : Math.max(...offsets.map((o) => o.rtt))
  const heavyRate = RATES[RATES.length - 1] as number
  printTable(
    `1. Update propagation: ${PEERS} peers, every one writing (each update delivered to the ${PEERS - 1} others)`,
    [
      { header: 'rate/peer', align: 'left' },
      { header: 'path', align: 'left' },
      'delivered',
      'p50',
      'p90',
      'p99',
      'max',
      'peers CPU',
      'peers CPU/update',
      'relay CPU/update',
      'p50 / WS',
      'p99 / WS',
      `p99<${P99_TARGET_MS}ms`,
    ],
    rows,
    [
      `Each update is one Y.Map set of a stamp { block, writer, seq, sentAt } on the writer's Y.Doc (a Replicator on one transport);`,
      `  every other peer records (first arrival) - sentAt, both performance.timeOrigin + performance.now(): one machine, one clock.`,
      `  Writers take turns, evenly spread over each period (at 50/s: 4 ms apart in each 20 ms); awareness is off, so only updates flow.`,
      `direct: ${PEERS} ChorusPeers on loopback TCP (mDNS and pubsub discovery off), each pair dialled once: a full mesh; updates go by`,
      `  gossipsub (sealed, signed), which every peer also forwards to its mesh, so a peer gets each update up to ${PEERS - 2} more times.`,
      `circuit: the same, but the peers listen only on the relay's circuit (listen: [], listenViaRelay) and a connection gater`,
      `  refuses direct dials: every link is a relayed connection (checked), so every update crosses the relay process. The relay's`,
      `  node is also a member (it issued the memberships) and a gossipsub router: a copy goes through its replica too.`,
      `  gossipsub mesh / subscribers of the topic at each peer once linked: direct ${meshSizes.get('direct') ?? '-'}; circuit ${meshSizes.get('circuit') ?? '-'}.`,
      `WS: the same ${PEERS} writers as y-websocket clients (WebSocketTransport) of the relay's /sync/<space>; the relay persists each`,
      `  update (sqlite group commit) before fanning it out. Plain Yjs: ${PEERS} docs in this process, each update applied into the`,
      `  other ${PEERS - 1} synchronously (the cost of Yjs alone; no network, no event-loop hop).`,
      placement === 'child'
        ? `Placement: every peer (with its members of all three paths) in its own child process, the relay in another: one event loop per`
        : `Placement: all ${PEERS} peers in this process (--peers=inproc): one event loop serves every peer, so each delivery queues behind`,
      placement === 'child'
        ? `  participant, as in real use; with all ${PEERS} in one process (--peers=inproc) each delivery queues behind the others' gossip.`
        : `  the other peers' work; the default (--peers=child) gives each peer its own process, as in real use.`,
      `Per rate, ${ORDER.length / MODES.length} block(s) per path in the order ${ORDER.join(', ')} (plain Yjs after the peers stopped), samples pooled; each block`,
      `  starts once the peers and the relay are idle (a saturated block leaves a backlog), then a warm-up at its rate, then the measured`,
      `  phase: ${LOADS.map((l) => `${l.rate}/s: ${l.warmupS} s + ${l.measureS} s`).join('; ')}; plain Yjs: ${FLOOR_WARMUP_S} s + ${FLOOR_S} s.`,
      ...RATES.map((rate) => `  p99 per block at ${rate}/s: ${perBlock(rate)}.`),
      `delivered = first arrivals counted / expected; a stamp missing ${STRAGGLER_WAIT_MS / 1000} s after the phase counts as not delivered. First arrivals by`,
      `  gossipsub (rather than on a sync stream): ${RATES.map((rate) => `${rate}/s: direct ${pct(fig(rate, 'direct').gossipShare)}, circuit ${pct(fig(rate, 'circuit').gossipShare)}`).join('; ')}.`,
      `peers CPU = user+system time of all peer processes / wall time (100% = one core; this machine has ${cpu.length}); CPU/update = that time per`,
      `  update written (every receiver's and forwarder's work included); relay likewise. Compare paths at the same rate: per update it`,
      `  falls as the rate rises (each wake-up of a process costs the same however many messages it then handles). Near ${cpu.length * 100}%`,
      `  peers + relay CPU the path is saturated: its latencies are then queueing, not the cost of a hop, and CPU/update is capped.`,
      ...RATES.flatMap((rate) =>
        MODES.flatMap((m) =>
          (results.get(rate)?.get(m) ?? []).flatMap((b, i) => [
            ...(b.relinked === 0 ? [] : [
                  `RELINKED before ${rate}/s ${m} block ${i + 1}: ${b.relinked} link(s) had dropped since the block before and were dialled again (under`,
                  `  saturation libp2p's connection monitor aborts connections whose ping takes over 5 s; on the relay's node that cuts every circuit).`,
                ]),
            ...(b.anomaly === undefined ? [] : [`MISSING ${rate}/s ${m} block ${i + 1}: ${b.anomaly}`]),
          ]),
        ),
      ),
      ...(offsets.length > 0 ? [`Clocks: the peers' nowAbs agree with this process's within ${fmtLatency(maxOffset)} (IPC round trips of at most ${fmtLatency(maxRtt)}).`] : []),
      `Ratios: path / relay WebSocket at the same rate and quantile (lower is better).`,
      `target: p99 under ${P99_TARGET_MS} ms between directly connected peers on loopback: ${RATES.map((rate) => `${verdict(directP99(rate) < P99_TARGET_MS)} at ${fmtLatency(directP99(rate))} (${rate}/s per peer${rate === heavyRate ? ', saturating the peers' : ''})`).join('; ')}.`,
    ],
  )
  printTail(figures)
}

/** Where the tail comes from: stalls of the hosts' event loops and GC, and the slowest deliveries. */
const printTail = (figures: ReadonlyMap<number, ReadonlyMap<Path, PathFigures>>): void => {
  const rows: string[][] = []
  for (const [rate, byPath] of figures) {
    for (const p of PATHS) {
      const f = byPath.get(p) as PathFigures
      const n = f.latencies.length
      const over = (ms: number): string => (n === 0 ? '-' : `${((100 * f.latencies.filter((l) => l > ms).length) / n).toFixed(2)}%`)
      const worst = [...f.deliveries].sort((a, b) => b.latency - a.latency).slice(0, 3)
      const maxOf = (k: keyof Health): number => (f.health.length === 0 ? NaN : Math.max(...f.health.map((h) => h[k])))
      rows.push([
        `${rate}/s`,
        PATH_LABEL[p],
        over(10),
        over(P99_TARGET_MS),
        fmtLatency(maxOf('loopP99')),
        fmtLatency(maxOf('loopMax')),
        fmtLatency(maxOf('gcMax')),
        fmtLatency(f.lateMax),
        worst.map((d) => `${fmtLatency(d.latency)} w${d.writer}>p${d.receiver} @${(Math.max(0, d.sentAfter) / 1000).toFixed(2)}s`).join(', '),
      ])
    }
  }
  printTable(
    '1b. The tail: deliveries over 10 and 20 ms, stalls of the peers\' event loops, and the slowest deliveries',
    [
      { header: 'rate/peer', align: 'left' },
      { header: 'path', align: 'left' },
      '>10 ms',
      `>${P99_TARGET_MS} ms`,
      'loop delay p99',
      'loop delay max',
      'GC pause max',
      'write late max',
      { header: 'slowest (writer>receiver @ send time in phase)', align: 'left' },
    ],
    rows,
    [
      'loop delay = perf_hooks.monitorEventLoopDelay in each peer host over the measured phases (the worst host); GC pause max = the',
      '  longest GC pause seen in any host; write late max = the most a write started after its scheduled time (a stalled writer).',
      'A stall shows as several receivers slow for stamps sent at the same moment: one host was busy (GC, a burst of gossip, or the',
      '  machine\'s other load taking the core), and everything queued behind it waits.',
    ],
  )
}

// ---- 2. catch-up ---------------------------------------------------------------------------------------------

const CATCHUP_MESSAGES = quick ? 20_000 : 100_000
const CATCHUP_REPS = quick ? 2 : 3
const CATCHUP_SPACE = 'bench-p2p-catchup'

type CatchUpPath = 'yjs' | 'peer' | 'relay-p2p' | 'relay-ws'

const CATCHUP_LABEL: Record<CatchUpPath, string> = {
  yjs: 'plain Yjs, one process (baseline)',
  peer: 'p2p: from the holder peer (TCP)',
  'relay-p2p': "p2p: from the relay's node (TCP)",
  'relay-ws': 'relay WebSocket',
}

const catchupSection = async (api: RelayApi): Promise<void> => {
  progress(`catch-up: building a ${CATCHUP_MESSAGES.toLocaleString('en')}-message space`)
  const big: BigSpace = buildBigSpace(CATCHUP_MESSAGES, (done) => progress(`catch-up: built ${done.toLocaleString('en')} messages`))
  const dir = mkdtempSync(join(tmpdir(), 'chorus-bench-p2p-'))
  const results = new Map<CatchUpPath, CatchUpResult[]>([
    ['yjs', []],
    ['peer', []],
    ['relay-p2p', []],
    ['relay-ws', []],
  ])
  let upload: { close(): void } | undefined
  let uploadMs = NaN
  let hosts: PeerHandle[] = []
  try {
    hosts = await startPeers(['holder', 'joiner'], placement, peerNodeArgs)
    const [holderHost, joinerHost] = hosts as [PeerHandle, PeerHandle]
    // Plain Yjs: one warm-up, then the measured copies.
    const holderDoc = new Y.Doc()
    Y.applyUpdate(holderDoc, big.update)
    for (let r = 0; r <= CATCHUP_REPS; r++) {
      progress(`catch-up: plain Yjs copy ${r === 0 ? '(warm-up)' : `${r}/${CATCHUP_REPS}`}`)
      const y = yjsCatchUp(holderDoc, big)
      if (r > 0) results.get('yjs')?.push({ syncMs: y.syncMs, checkMs: y.checkMs, payloadIn: y.bytes, payloadOut: 0, wireIn: NaN, wireOut: NaN })
    }
    holderDoc.destroy()

    progress('catch-up: starting the holder peer')
    const file = join(dir, 'space.update')
    writeFileSync(file, big.update)
    const holderKey = await newKey()
    const holder = await holderHost.call<{ peerId: string; addrs: string[]; sv: string }>({
      op: 'hold',
      file,
      seed: holderKey.seed,
      membership: await api.membership(CATCHUP_SPACE, 'holder', holderKey.peerId),
    })
    if (holder.sv !== big.sv) throw new Error('the holder peer loaded another state than the one built')

    progress(`catch-up: uploading the space to the relay (${big.chunks.length} updates over its WebSocket)`)
    const t0 = performance.now()
    upload = await uploadToRelay(api.wsSync(CATCHUP_SPACE), big)
    uploadMs = performance.now() - t0

    const expect = { sv: big.sv, last: big.last }
    const joinP2p = async (addr: string, holderId: string): Promise<CatchUpResult> => {
      const key = await newKey()
      const membership = await api.membership(CATCHUP_SPACE, 'joiner', key.peerId)
      return joinerHost.call<CatchUpResult>({ op: 'join', via: 'p2p', seed: key.seed, membership, addr, holder: holderId, expect })
    }
    // Rounds: each path once per round, so drift of the machine hits them alike. The first round is the cold one.
    for (let r = 0; r < CATCHUP_REPS; r++) {
      progress(`catch-up: round ${r + 1}/${CATCHUP_REPS}: from the holder peer`)
      results.get('peer')?.push(await joinP2p(holder.addrs[0] as string, holder.peerId))
      progress(`catch-up: round ${r + 1}/${CATCHUP_REPS}: from the relay's node`)
      results.get('relay-p2p')?.push(await joinP2p(api.tcpAddr, api.peerId))
      progress(`catch-up: round ${r + 1}/${CATCHUP_REPS}: over the relay's WebSocket`)
      results.get('relay-ws')?.push(await joinerHost.call<CatchUpResult>({ op: 'join', via: 'ws', url: api.wsSync(CATCHUP_SPACE), expect }))
    }
  } finally {
    upload?.close()
    await Promise.allSettled(hosts.map((h) => h.stop()))
    rmSync(dir, { recursive: true, force: true })
  }
  printCatchUp(big, results, uploadMs)
}

const printCatchUp = (big: BigSpace, results: ReadonlyMap<CatchUpPath, readonly CatchUpResult[]>, uploadMs: number): void => {
  const med = (p: CatchUpPath, f: (r: CatchUpResult) => number): number => median((results.get(p) ?? []).map(f))
  const total = (r: CatchUpResult): number => r.syncMs + r.checkMs
  const base = med('yjs', total)
  const rows = (['yjs', 'peer', 'relay-p2p', 'relay-ws'] as const).map((p) => {
    const first = results.get(p)?.[0]
    return [
      CATCHUP_LABEL[p],
      fmtMs(med(p, (r) => r.syncMs)),
      fmtMs(med(p, (r) => r.checkMs)),
      fmtMs(med(p, total)),
      first === undefined ? '-' : fmtMs(total(first)),
      fmtRatio(med(p, total) / base),
      fmtBytes(med(p, (r) => r.payloadIn)),
      fmtBytes(med(p, (r) => r.wireIn)),
      fmtBytes(med(p, (r) => r.wireOut)),
    ]
  })
  // More TCP than payload by far: the sync step 2 went over the wire more than once (two sync streams at connect).
  const doubled = (['peer', 'relay-p2p'] as const)
    .filter((p) => med(p, (r) => r.wireIn) > 1.3 * med(p, (r) => r.payloadIn))
    .map(
      (p) =>
        `${CATCHUP_LABEL[p]}: TCP in is ${fmtRatio(med(p, (r) => r.wireIn) / med(p, (r) => r.payloadIn))} the payload: both ends open a sync stream on connect, each link-up runs catch-up, and the sync step 2 sent on the stream that is then dropped crosses the wire for nothing.`,
    )
  printTable(
    `2. Catch-up of a late joiner: a ${CATCHUP_MESSAGES.toLocaleString('en')}-message space (${fmtBytes(big.update.byteLength)} encoded), empty doc to every message`,
    [
      { header: 'path', align: 'left' },
      'connect+sync',
      'check',
      'total',
      'first (cold)',
      'total / Yjs',
      'payload in',
      'TCP in',
      'TCP out',
    ],
    rows,
    [
      `The space: ${CATCHUP_MESSAGES.toLocaleString('en')} messages of 200 bytes from 10 writers, built through space.messages.send in transactions of 1000`,
      `  (as bench/sync.ts builds its spaces, 'runs' mix), in ${fmtMs(big.ms)}.`,
      'connect+sync: p2p = from dialling the holder (the joiner\'s peer already started, its doc transport open) until the Replicator',
      '  has applied the holder\'s sync step 2 (whenSynced); WebSocket = from opening the socket until the same. check = the joiner\'s',
      '  state vector covers the holder\'s, plus a Space opened on the doc and its newest message read and compared (builds the log index).',
      'plain Yjs: Y.encodeStateAsUpdate of a loaded doc + Y.applyUpdate into an empty one, in this process, then the same check.',
      'holder peer: a child process holding the space (loaded from the encoded update), linked to nothing else; the joiner, another',
      `  child, dials only it. relay: the relay child holds the space loaded (uploaded beforehand: ${big.chunks.length} updates over its WebSocket in`,
      `  ${fmtMs(uploadMs)}, since it takes at most 16 MiB per frame, less than the whole space); its node answers like a peer, its WebSocket like y-websocket.`,
      `Median of ${CATCHUP_REPS} catch-ups per path (${CATCHUP_REPS} rounds, paths in turn), each by a fresh joiner (new peer, empty doc), each column`,
      '  on its own; first = the first round\'s total, in a joiner process that had not caught up before. Plain Yjs: median of as many',
      '  copies after one warm-up copy.',
      'payload in = y-protocols bytes the joiner\'s Replicator received (sync step 2 is the bulk); TCP in/out = bytes on the joiner\'s',
      '  socket to the holder over the whole connection until synced (noise, yamux, identify and gossipsub included; not known for the WebSocket).',
      ...doubled,
      'Ratios: total / plain Yjs total (lower is better).',
    ],
  )
}

// ---- run ---------------------------------------------------------------------------------------------------

// Ctrl-C: the 'exit' hooks kill the children and remove the relay's data folder.
process.once('SIGINT', () => process.exit(130))
const t0 = performance.now()
if (only !== undefined && !SECTIONS.some(want)) {
  // `npm run bench -- --only=...` hands the same flags to every bench file: sections of the others are not an error.
  progress(`bench/p2p.ts: none of its sections (${SECTIONS.join(', ')}) selected`)
} else {
  header()
  let relay: ServerChild | undefined
  try {
    progress('starting the relay')
    relay = await startServer('ours')
    const api = new RelayApi(relay.url)
    await api.init()
    if (want('propagation')) await propagationSection(relay, api)
    if (want('catchup')) await catchupSection(api)
    console.log(`\ntotal bench time ${fmtMs(performance.now() - t0)}, load average now ${loadavg().map((l) => l.toFixed(2)).join(' ')}`)
    progress('done')
  } catch (e) {
    console.error(`\nbench/p2p.ts failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`)
    process.exitCode = 1
  } finally {
    await relay?.stop()
  }
}
// Every socket and child is closed by now; if something still holds the event loop, say so and exit anyway.
setTimeout(() => {
  process.stderr.write('warning: something still keeps the bench process alive; exiting\n')
  process.exit()
}, 5_000).unref()
