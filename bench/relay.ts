/**
 * Chorus relay benchmark: the relay beside the stock y-websocket server doing the same work, measured in the same run.
 *
 *   npm run bench                          # sync.ts, then this file (this one takes about 1 minute on 2 cores)
 *   npm run bench -- --quick               # flags go to both files; npm run bench:relay -- --quick runs only this one
 *   node --expose-gc bench/relay.ts --quick
 *   node --expose-gc bench/relay.ts --only=fanout
 *   node --expose-gc bench/relay.ts --client=provider   # stock WebsocketProvider clients (client-bound, see below)
 *   node --expose-gc bench/relay.ts --diagnose          # adds the relay on an in-memory store: ours minus sqlite
 *   node --expose-gc bench/relay.ts --server-cpu-prof=DIR   # --cpu-prof for the server children, profiles in DIR
 *
 * Each server runs in its own child process; the clients all live in this one. Tables go to stdout, progress lines
 * to stderr. Ratios are ours / baseline; the notes under each table say which way is better.
 */
import { readFileSync } from 'node:fs'
import { arch, cpus, loadavg, platform, totalmem } from 'node:os'
import { Fleet, type ClientKind, type PhaseResult } from './lib/fanout-clients.ts'
import { SERVER_LABEL, startServer, type ServerChild, type ServerKind } from './lib/fanout-server.ts'
import { benchArgs } from './lib/args.ts'
import { fmtCount, fmtMs, fmtPct as pct, fmtRatio, median, progress, quantile, verdict } from './lib/measure.ts'
import { leaseBench, OPEN_RATE } from './lib/lease-bench.ts'
import { printTable } from './lib/table.ts'

const SECTIONS = ['fanout', 'leases'] as const
type Section = (typeof SECTIONS)[number]

const { quick, only, want, value, flag } = benchArgs<Section>()
const clientArg = value('client') ?? 'raw'
const profArg = value('server-cpu-prof')
const diagnose = flag('diagnose')

if (clientArg !== 'raw' && clientArg !== 'provider') {
  console.error(`--client must be raw or provider, got ${clientArg}`)
  process.exit(2)
}
const clientKind: ClientKind = clientArg

/** Target: the relay delivers at least as many updates per second as the stock server at peak load. */
const THROUGHPUT_TARGET = 1.0

// ---- header ------------------------------------------------------------------------------------------------

const versionOf = (pkg: string): string =>
  (JSON.parse(readFileSync(new URL(`../node_modules/${pkg}/package.json`, import.meta.url), 'utf8')) as { version: string }).version
const cpu = cpus()
console.log('Chorus relay benchmark')
console.log(
  `node ${process.version}, yjs ${versionOf('yjs')}, y-websocket ${versionOf('y-websocket')}, @y/websocket-server ${versionOf('@y/websocket-server')}, ws ${versionOf('ws')}, ${platform()} ${arch()}`,
)
console.log(`date ${new Date().toISOString()}`)
console.log(`cpu  ${cpu[0]?.model ?? 'unknown'} x ${cpu.length}, ${(totalmem() / 2 ** 30).toFixed(0)} GB RAM, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`)
if (loadavg()[0] as number > cpu.length / 2) {
  console.log(`note the machine is busy (load ${(loadavg()[0] as number).toFixed(2)} on ${cpu.length} cores): rates and latencies will be noisy; server/update is the steadiest figure`)
}
console.log(
  `mode ${quick ? 'quick (one round, shorter phases)' : 'full'}, ${clientKind} clients${diagnose ? ', with the MemoryStore relay' : ''}${only === undefined ? '' : `, only ${[...only].join(',')}`}`,
)

// ---- 1. fan-out ----------------------------------------------------------------------------------------------

interface Scenario {
  title: string
  spaces: number
  clientsPerSpace: number
  writersPerSpace: number
  /** Updates per second per writer: `steady` is well within both servers' reach, `peak` beyond it. */
  steadyRate: number
  peakRate: number
}

/**
 * Rates stay at or under 120 updates/s per writer: the relay closes a connection that sends more than 200 messages/s
 * on average (bursts of 400; DEFAULT_RATE_LIMIT in relay/src/rate-limit.ts), and a peak should come from many
 * writers anyway, not from one flooding the server.
 */
const SCENARIOS: readonly Scenario[] = [
  { title: '100 clients in one space', spaces: 1, clientsPerSpace: 100, writersPerSpace: 20, steadyRate: 10, peakRate: 100 },
  { title: '1,000 clients over 100 spaces (10 per space)', spaces: 100, clientsPerSpace: 10, writersPerSpace: 1, steadyRate: 22, peakRate: 120 },
]

/** Provider clients cost ~50 µs per received update: they saturate the client process at a quarter of the raw rates. */
const RATE_SCALE = clientKind === 'provider' ? 0.25 : 1
/** Warm-up before each block; a server's first block warms longer (its code is still being compiled). */
const WARMUP_S = 1
const FIRST_WARMUP_S = 2
const STEADY_S = quick ? 1.5 : 2.5
const PEAK_S = quick ? 0.75 : 1
const KINDS: readonly ServerKind[] = diagnose ? ['stock', 'ours', 'memory'] : ['stock', 'ours']
/** Blocks in ABBA order (quick: AB), so slow drift of the machine hits every server alike. */
const ORDER: readonly ServerKind[] = quick ? KINDS : [...KINDS, ...[...KINDS].reverse()]

interface Figures {
  /** Nominal deliveries per second the writers' schedule asks for. */
  offered: number
  delivered: number
  p50: number
  p99: number
  /** Server CPU as a share of one core, over the phase. */
  serverCpu: number
  /** Server CPU per update written (µs): fan-out to every receiver, plus whatever else the server does per update. */
  serverUsPerUpdate: number
  clientCpu: number
}

const figuresOf = (r: PhaseResult, offered: number): Figures => ({
  offered,
  delivered: (r.deliveries * 1000) / r.wallMs,
  p50: quantile(r.latencies, 0.5),
  p99: quantile(r.latencies, 0.99),
  serverCpu: r.serverCpuMs / r.wallMs,
  serverUsPerUpdate: (r.serverCpuMs * 1000) / r.updates,
  clientCpu: r.clientCpuMs / r.wallMs,
})

const medianFigures = (xs: readonly Figures[]): Figures => {
  const m = (k: keyof Figures): number => median(xs.map((x) => x[k]))
  return {
    offered: m('offered'),
    delivered: m('delivered'),
    p50: m('p50'),
    p99: m('p99'),
    serverCpu: m('serverCpu'),
    serverUsPerUpdate: m('serverUsPerUpdate'),
    clientCpu: m('clientCpu'),
  }
}

type PhaseName = 'steady' | 'peak'

interface Block {
  steady: Figures
  peak: Figures
  rss: number
}

const fmtLatency = (ms: number): string => (ms < 10 ? `${ms.toFixed(2)} ms` : fmtMs(ms))

/** One server's turn: connect a fresh fleet, warm up, then the steady and the peak phase. */
const runBlock = async (server: ServerChild, s: Scenario, block: number, label: string, warmupS: number): Promise<Block> => {
  const clients = s.spaces * s.clientsPerSpace
  const writers = s.spaces * s.writersPerSpace
  const fanout = s.clientsPerSpace - 1
  const fleet = new Fleet({
    client: clientKind,
    spaces: s.spaces,
    clientsPerSpace: s.clientsPerSpace,
    writersPerSpace: s.writersPerSpace,
    wsBase: server.wsBase,
    // Fresh spaces per block: a raw writer's doc starts empty, so its first set of a key would race the previous
    // block's value of that key (and lose half the time: Yjs orders concurrent map sets by client id).
    room: (i) => `fanout-b${block}-${i}`,
    failed: server.failed,
    serverCpuMs: server.cpuMs,
  })
  try {
    progress(`${label}: connecting ${clients} clients`)
    await fleet.connect()
    const steadyRate = s.steadyRate * RATE_SCALE
    const peakRate = s.peakRate * RATE_SCALE
    const phase = async (name: PhaseName | 'warm-up', rate: number, seconds: number): Promise<Figures> => {
      const updates = Math.max(1, Math.round(rate * seconds))
      progress(`${label}: ${name}: ${writers} writers x ${updates} updates at ${rate}/s each, ${fmtCount(writers * rate * fanout)} deliveries/s offered`)
      return figuresOf(await fleet.run(updates, rate), writers * rate * fanout)
    }
    // New connections and (for a fresh server) cold code: the first second is slower on both servers.
    await phase('warm-up', steadyRate, warmupS)
    const steady = await phase('steady', steadyRate, STEADY_S)
    const peak = await phase('peak', peakRate, PEAK_S)
    return { steady, peak, rss: server.rssBytes() }
  } finally {
    await fleet.close()
  }
}

const fanoutSection = async (): Promise<void> => {
  const nodeArgs = profArg === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${profArg}`]
  for (const [n, s] of SCENARIOS.entries()) {
    const servers = new Map<ServerKind, ServerChild>()
    const blocks = new Map<ServerKind, Block[]>(KINDS.map((kind) => [kind, []]))
    try {
      for (const kind of KINDS) {
        progress(`fanout ${n + 1}: starting ${SERVER_LABEL[kind]}`)
        servers.set(kind, await startServer(kind, { nodeArgs }))
      }
      for (const [i, kind] of ORDER.entries()) {
        const done = blocks.get(kind) as Block[]
        const label = `fanout ${n + 1}: ${SERVER_LABEL[kind]} (block ${i + 1}/${ORDER.length})`
        done.push(await runBlock(servers.get(kind) as ServerChild, s, i, label, done.length === 0 ? FIRST_WARMUP_S : WARMUP_S))
      }
    } finally {
      await Promise.all([...servers.values()].map((server) => server.stop()))
    }
    printScenario(n + 1, s, blocks)
  }
}

const printScenario = (n: number, s: Scenario, blocks: ReadonlyMap<ServerKind, readonly Block[]>): void => {
  const figures = (kind: ServerKind, phase: PhaseName): Figures => medianFigures((blocks.get(kind) ?? []).map((b) => b[phase]))
  const rows: string[][] = []
  for (const phase of ['steady', 'peak'] as const) {
    const stock = figures('stock', phase)
    for (const kind of KINDS) {
      const f = figures(kind, phase)
      rows.push([phase, SERVER_LABEL[kind], fmtCount(f.offered), fmtCount(f.delivered), fmtLatency(f.p50), fmtLatency(f.p99), pct(f.serverCpu), `${f.serverUsPerUpdate.toFixed(0)} µs`, pct(f.clientCpu), ''])
    }
    for (const kind of KINDS) {
      if (kind === 'stock') continue
      const f = figures(kind, phase)
      const throughput = f.delivered / stock.delivered
      rows.push([
        phase,
        `${kind === 'ours' ? 'ours' : 'MemoryStore'} / stock`,
        '',
        fmtRatio(throughput),
        fmtRatio(f.p50 / stock.p50),
        fmtRatio(f.p99 / stock.p99),
        '',
        fmtRatio(f.serverUsPerUpdate / stock.serverUsPerUpdate),
        '',
        phase === 'peak' && kind === 'ours' ? verdict(throughput >= THROUGHPUT_TARGET) : '',
      ])
    }
  }
  const writers = s.spaces * s.writersPerSpace
  const rss = (kind: ServerKind): string => `${SERVER_LABEL[kind]} ${(median((blocks.get(kind) ?? []).map((b) => b.rss)) / 2 ** 20).toFixed(0)} MB`
  const ratio = figures('ours', 'peak').delivered / figures('stock', 'peak').delivered
  printTable(
    `1.${n} Fan-out: ${s.title}, ${writers} writer${writers === 1 ? '' : 's'} (${s.writersPerSpace} per space), ${clientKind} clients`,
    [
      { header: 'phase', align: 'left' },
      { header: 'server', align: 'left' },
      'offered/s',
      'delivered/s',
      'p50',
      'p99',
      'server CPU',
      'server/update',
      'client CPU',
      `>=${THROUGHPUT_TARGET.toFixed(2)}x`,
    ],
    rows,
    [
      `Each update is one Y.Map set (a { phase, writer, seq, sentAt } stamp) on the writer's Y.Doc; it is delivered to the other ${s.clientsPerSpace - 1}`,
      `  clients of its space. delivered/s = deliveries counted at the receivers / (first send -> last delivery); p50/p99 = send ->`,
      `  receipt at each receiver. steady: ${s.steadyRate * RATE_SCALE} updates/s per writer for ${STEADY_S} s; peak: ${s.peakRate * RATE_SCALE}/s per writer for ${PEAK_S} s, more than`,
      `  either server keeps up with on this machine, so delivered/s is its capacity and peak latencies are mostly queueing.`,
      `server CPU = the server child's user+system time / wall time (100% = one core); server/update = that CPU per update written`,
      `  (the figure other load on the machine disturbs least).`,
      `client CPU = this process (all ${s.spaces * s.clientsPerSpace} clients); near 100% means the clients, not the server, set the pace.`,
      `Ratios: delivered/s higher is better; latency and server/update lower is better. Median of ${ORDER.length / KINDS.length} block(s) per server,`,
      `  each on a freshly connected fleet after a warm-up at the steady rate (${FIRST_WARMUP_S} s in a server's first block, then ${WARMUP_S} s);`,
      `  blocks ran in the order ${ORDER.join(', ')}, all servers up all along (an idle one costs nothing measurable).`,
      `The stock server also sends every update back to its writer (${s.clientsPerSpace} sends per update); ours skips the sender (${s.clientsPerSpace - 1}), but sends the updates of one event-loop turn in a space as one merged message.`,
      ...(diagnose ? ['relay, MemoryStore = the same relay code on an in-memory store (diagnostic): its gap to ours is the cost of sqlite.'] : []),
      ...KINDS.filter((kind) => figures(kind, 'peak').delivered > 0.95 * figures(kind, 'peak').offered).map(
        (kind) => `${SERVER_LABEL[kind]} kept up with the whole peak offer: its capacity is above what the peak row shows.`,
      ),
      `server RSS after the peak: ${KINDS.map(rss).join(', ')}.`,
      `target: the relay's peak throughput at least the stock server's (>= ${THROUGHPUT_TARGET.toFixed(2)}x): ${verdict(ratio >= THROUGHPUT_TARGET)} at ${fmtRatio(ratio)}.`,
    ],
  )
}

// ---- 2. leases ---------------------------------------------------------------------------------------------

const LEASE_P99_TARGET_MS = 2

const leasesSection = async (): Promise<void> => {
  const results = await leaseBench({ quick })
  const rows: string[][] = []
  for (const r of results) {
    const label = r.mode === 'closed' ? 'closed loop' : `${fmtCount(r.offered ?? 0)} pairs/s offered`
    rows.push([
      String(r.clients),
      label,
      fmtCount(Math.round(r.pairsPerSecond)),
      fmtLatency(r.acquire.p50),
      fmtLatency(r.acquire.p99),
      fmtLatency(r.release.p50),
      fmtLatency(r.release.p99),
      fmtCount(Math.round(r.echo.perSecond)),
      fmtLatency(r.echo.p50),
      fmtLatency(r.echo.p99),
      fmtRatio(Math.max(r.acquire.p99, r.release.p99) / r.echo.p99),
    ])
  }
  const open100 = results.find((r) => r.clients === 100 && r.mode === 'open')
  const p99 = open100 === undefined ? NaN : Math.max(open100.acquire.p99, open100.release.p99)
  printTable(
    '2. Leases: acquire + release over the /leases WebSocket, each client on its own key',
    ['clients', 'load', 'pairs/s', 'acquire p50', 'acquire p99', 'release p50', 'release p99', 'echo round trips/s', 'echo p50', 'echo p99', 'p99 / echo p99'],
    rows,
    [
      'The relay runs in a child process on a temporary data folder; each grant is in leases.sqlite (synchronous=FULL,',
      '  one commit per event-loop turn) before it is sent. Baseline: a JSON echo server on the same kind of socket',
      '  (bench/lib/lease-echo-server.ts), same clients, same run: the floor of a loopback round trip on this machine.',
      'closed loop: each client sends its next request as soon as the last is answered, so latency there is mostly the',
      '  queue of the other clients (Little\'s law; the echo server shows the same growth); pairs/s is the capacity.',
      `offered: pairs started on a fixed schedule, ${fmtCount(OPEN_RATE)} per second over all clients: latency under a known load.`,
      `target: p99 under ${LEASE_P99_TARGET_MS} ms at 100 clients (offered load, worse of acquire and release): ${verdict(p99 < LEASE_P99_TARGET_MS)} at ${fmtLatency(p99)}.`,
    ],
  )
}

// ---- run ---------------------------------------------------------------------------------------------------

// Ctrl-C: the 'exit' hook of fanout-server.ts kills the server children and removes the relay's data folder.
process.once('SIGINT', () => process.exit(130))
const t0 = performance.now()
// `npm run bench -- --only=...` hands the same flags to sync.ts and to this file: sections of the other are not an error.
if (only !== undefined && !SECTIONS.some(want)) progress(`bench/relay.ts: none of its sections (${SECTIONS.join(', ')}) selected`)
try {
  if (want('fanout')) await fanoutSection()
  if (want('leases')) await leasesSection()
  console.log(`\ntotal bench time ${fmtMs(performance.now() - t0)}, load average now ${loadavg().map((l) => l.toFixed(2)).join(' ')}`)
  progress('done')
} catch (e) {
  console.error(`\nbench/relay.ts failed: ${e instanceof Error ? e.message : String(e)}`)
  process.exitCode = 1
}
// Every socket and child is closed by now; if something still holds the event loop, say so and exit anyway.
setTimeout(() => {
  process.stderr.write('warning: something still keeps the bench process alive; exiting\n')
  process.exit()
}, 5_000).unref()
