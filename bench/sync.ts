/**
 * Chorus sync benchmark: the typed API beside plain Yjs doing the same work, measured in the same run.
 *
 *   npm run bench                 # everything (about 2 minutes on 2 cores)
 *   npm run bench -- --quick      # skips the 1M-message spaces
 *   npm run bench -- --only=write,load,memory
 *
 * Tables go to stdout, progress lines to stderr. Ratios are ours / baseline in time (or bytes), so 1.00x is
 * parity and higher is worse.
 */
import { readFileSync } from 'node:fs'
import { arch, cpus, loadavg, platform, totalmem } from 'node:os'
import * as Y from 'yjs'
import { Space } from '@chorus/sync'
import { MIX_LABEL, SMALL, SPACE_ID, buildArray, buildSmallSpace, buildSpace, loadArray, loadSpace, type Built, type Loaded, type Mix } from './lib/build.ts'
import { collect, fmtBytes, fmtCount, fmtMs, fmtRatio, fmtUs, hasGc, heapUsed, median, progress, verdict, type Bench } from './lib/measure.ts'
import { benchArgs } from './lib/args.ts'
import { printTable } from './lib/table.ts'
import { SENDERS, WORKLOADS } from './lib/write.ts'

const { quick, only, want } = benchArgs<'write' | 'load' | 'memory'>()

const WRITE_TARGET = 1.5
const LOAD_TARGET_MS = 2000

// ---- header ------------------------------------------------------------------------------------------------

const yjsVersion = (JSON.parse(readFileSync(new URL('../node_modules/yjs/package.json', import.meta.url), 'utf8')) as { version: string }).version
const cpu = cpus()
console.log('Chorus sync benchmark')
console.log(`node ${process.version}, yjs ${yjsVersion}, ${platform()} ${arch()}`)
console.log(`date ${new Date().toISOString()}`)
console.log(`cpu  ${cpu[0]?.model ?? 'unknown'} x ${cpu.length}, ${(totalmem() / 2 ** 30).toFixed(0)} GB RAM, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`)
console.log(`mode ${quick ? 'quick (no 1M-message spaces)' : 'full'}${only === undefined ? '' : `, only ${[...only].join(',')}`}`)
if (!hasGc) console.log('warning: run with --expose-gc (npm run bench does); heap figures and timings are noisier without it')

// ---- 1. write throughput -----------------------------------------------------------------------------------

const REPS: Record<number, number> = { 2_000: 5, 20_000: 3 }
const WARMUP_OPS = 2_000

const writeSection = (): void => {
  const rows: string[][] = []
  const breakdown: string[][] = []
  for (const w of WORKLOADS) {
    const cases: Bench[] = [w.ours, ...w.baselines, ...(w.spaceApi === undefined ? [] : [w.spaceApi])]
    progress(`write: ${w.name}: warm-up`)
    for (const c of cases) c.run(WARMUP_OPS)
    const ms = new Map<Bench, Map<number, number[]>>(cases.map((c) => [c, new Map(w.sizes.map((n) => [n, []]))]))
    for (const n of w.sizes) {
      const reps = REPS[n] ?? 3
      for (let r = 0; r < reps; r++) {
        progress(`write: ${w.name}: ${fmtCount(n)} ops, repeat ${r + 1}/${reps}`)
        // Cases take turns within a repeat, so drift (other load, GC state) hits them alike.
        for (const c of cases) ms.get(c)?.get(n)?.push(c.run(n))
      }
    }
    const usPerOp = (c: Bench, n: number): number => (median(ms.get(c)?.get(n) ?? []) * 1000) / n
    for (const n of w.sizes) {
      const ours = usPerOp(w.ours, n)
      for (const b of w.baselines) {
        const base = usPerOp(b, n)
        const ratio = ours / base
        rows.push([
          w.name,
          fmtCount(n),
          fmtCount(1e6 / ours),
          fmtUs(ours),
          b.name,
          fmtCount(1e6 / base),
          fmtUs(base),
          fmtRatio(ratio),
          verdict(ratio <= WRITE_TARGET),
        ])
      }
      if (w.spaceApi !== undefined) {
        const api = usPerOp(w.spaceApi, n)
        breakdown.push([w.name, fmtCount(n), `${w.ours.name} ${fmtUs(ours)}`, `${w.spaceApi.name} ${fmtUs(api)}`, fmtUs(ours - api), `${((100 * (ours - api)) / ours).toFixed(0)}%`])
      }
    }
  }
  printTable(
    '1. Write throughput: typed API vs plain Yjs (fresh document per run, median of repeats)',
    [
      { header: 'workload', align: 'left' },
      'ops',
      'ours ops/s',
      'ours/op',
      { header: 'baseline (plain Yjs)', align: 'left' },
      'base ops/s',
      'base/op',
      'ratio',
      `<=${WRITE_TARGET}x`,
    ],
    rows,
    [
      'ratio = our time per op / baseline time per op. Each op is its own transaction on both sides.',
      `ours runs through a Member (validation, presence touch, activity record where the API keeps one); ${SENDERS} participants take turns`,
      `  (the vote rows: every voter is a Member of the same replica).`,
      'Y.Array.push slows as the array grows (ContentAny merges copy the array, push walks the list): compare its 2k and 20k rows.',
      `vote: voters take turns on one proposal, each changing its vote; a vote writes one entry of the votes map, like the baseline.`,
      `repeats: ${Object.entries(REPS).map(([n, r]) => `${r} at ${fmtCount(Number(n))}`).join(', ')}; ${fmtCount(WARMUP_OPS)} warm-up ops per case first.`,
    ],
  )
  printTable(
    '1b. Where our time goes: Member handle vs the space API directly',
    [{ header: 'workload', align: 'left' }, 'ops', { header: 'through Member', align: 'left' }, { header: 'space API', align: 'left' }, 'Member extra/op', 'share'],
    breakdown,
    [
      'The Member extra is the presence touch (Awareness.setLocalStateField: copies this replica\'s entry of every',
      '  participant it hosts, deep-compares it, emits change/update) done on every call: O(hosted participants).',
      'Two separate medians: differences of a couple of µs are within run-to-run noise.',
    ],
  )
}

// ---- 2. encoded size and load time -------------------------------------------------------------------------

interface LoadFigures {
  bytes: number
  buildMs: number
  applyMs: number
  openMs: number
  firstQueryMs: number
  totalMs: number
  heap: number
}

type LoadRun = Pick<LoadFigures, 'applyMs' | 'openMs' | 'firstQueryMs' | 'totalMs' | 'heap'>

/**
 * One load in its own stack frame: an interpreter frame keeps dead locals alive until they are overwritten, so a
 * replica loaded in a loop body would still be counted in the next iteration's "before" heap figure.
 */
const loadOnce = (built: Built, load: (u: Uint8Array) => Loaded, withHeap: boolean, label: string): LoadRun => {
  const before = withHeap ? heapUsed() : NaN
  const l = load(built.update)
  const newest = l.recent[l.recent.length - 1]
  if (l.recent.length !== 50 || newest?.content !== built.last) throw new Error(`${label}: the loaded replica's newest message is not the last one written`)
  const heap = withHeap ? heapUsed() - before : NaN
  l.release()
  return { applyMs: l.applyMs, openMs: l.openMs, firstQueryMs: l.firstQueryMs, totalMs: l.applyMs + l.openMs + l.firstQueryMs, heap }
}

const measureLoads = (built: Built, load: (u: Uint8Array) => Loaded, reps: number, label: string): LoadFigures => {
  const runs: LoadRun[] = []
  for (let r = 0; r < reps; r++) {
    progress(`load: ${label}: load ${r + 1}/${reps}`)
    collect()
    runs.push(loadOnce(built, load, r === reps - 1, label))
  }
  const pick = (k: keyof LoadRun): number => median(runs.map((x) => x[k]))
  return {
    bytes: built.update.byteLength,
    buildMs: built.ms,
    applyMs: pick('applyMs'),
    openMs: pick('openMs'),
    firstQueryMs: pick('firstQueryMs'),
    totalMs: pick('totalMs'),
    heap: runs[runs.length - 1]?.heap ?? NaN,
  }
}

const loadSection = (): void => {
  const sizes = quick ? [10_000, 100_000] : [10_000, 100_000, 1_000_000]
  const mixes: Mix[] = ['runs', 'interleaved']
  const sizeRows: string[][] = []
  const loadRows: string[][] = []
  for (const n of sizes) {
    for (const mix of mixes) {
      const label = `${fmtCount(n)} ${mix}`
      const every = (what: string) => (done: number) => progress(`load: ${label}: building ${what} ${fmtCount(done)}/${fmtCount(n)}`)
      progress(`load: ${label}: building space through the typed API`)
      let built: Built | undefined = buildSpace(n, mix, every('space'))
      const ours = measureLoads(built, loadSpace, 3, `${label} space`)
      built = undefined
      progress(`load: ${label}: building Y.Array baseline`)
      let base: Built | undefined = buildArray(n, mix, every('Y.Array'))
      // The 1M-object array takes ~10 s per load; one load is enough to compare against.
      const baseline = measureLoads(base, loadArray, n >= 1_000_000 ? 1 : 3, `${label} Y.Array`)
      base = undefined
      const mixName = mix === 'runs' ? 'runs' : 'interleaved'
      sizeRows.push([
        fmtCount(n),
        mixName,
        fmtBytes(ours.bytes),
        fmtBytes(baseline.bytes),
        fmtRatio(ours.bytes / baseline.bytes),
        fmtBytes(ours.heap),
        fmtBytes(baseline.heap),
        fmtRatio(ours.heap / baseline.heap),
        fmtMs(ours.buildMs),
        fmtMs(baseline.buildMs),
      ])
      loadRows.push([
        fmtCount(n),
        mixName,
        fmtMs(ours.applyMs),
        fmtMs(ours.openMs),
        fmtMs(ours.firstQueryMs),
        fmtMs(ours.totalMs),
        fmtMs(baseline.applyMs),
        fmtMs(baseline.firstQueryMs),
        fmtMs(baseline.totalMs),
        fmtRatio(ours.totalMs / baseline.totalMs),
        n >= 1_000_000 ? `${verdict(ours.totalMs < LOAD_TARGET_MS)} (<${LOAD_TARGET_MS / 1000} s)` : '',
      ])
    }
  }
  const notes = [
    `runs = ${MIX_LABEL.runs}; interleaved = ${MIX_LABEL.interleaved}: every message is its own Yjs item.`,
    `Messages carry 200 bytes of content. Spaces are built through the typed API (space.messages.send) in transactions of 1000 messages,`,
    `  setting doc.clientID before each message so each writer is its own Yjs client. The baseline Y.Array holds the same`,
    `  records as objects { at, channel, from, priority, content }, one insert per run (runs) or per message (interleaved).`,
  ]
  printTable(
    '2a. Encoded size (Y.encodeStateAsUpdate) and heap of a loaded replica: space vs Y.Array of objects',
    ['messages', { header: 'mix', align: 'left' }, 'space', 'Y.Array', 'ratio', 'space heap', 'Y.Array heap', 'ratio', 'build space', 'build array'],
    sizeRows,
    [...notes, 'heap = heap used (after gc) while the loaded replica is held, index built, minus before; build = build + encode time.'],
  )
  printTable(
    '2b. Load time: Y.applyUpdate into a fresh doc, then new Space(), then the first messages.recent({ limit: 50 })',
    [
      'messages',
      { header: 'mix', align: 'left' },
      'apply',
      'new Space',
      'recent(50)',
      'space total',
      'arr apply',
      'arr slice(-50)',
      'arr total',
      'ratio',
      { header: 'target', align: 'left' },
    ],
    loadRows,
    [
      'Median of 3 loads (1 for the 1M Y.Array baseline). recent(50) is the first query, so it includes building the log index.',
      `target: a 1M-message space is readable (total) in under ${LOAD_TARGET_MS / 1000} s.`,
    ],
  )
}

// ---- 3. memory per replica ---------------------------------------------------------------------------------

const REPLICAS = 100

/** Heap per item while `n` items made by `make` are held, before and after `use` runs on each; all in this frame. */
const heldHeap = <T>(n: number, make: () => T, release: (x: T) => void, use?: (x: T) => void): [held: number, used: number] => {
  const before = heapUsed()
  const xs: T[] = []
  for (let i = 0; i < n; i++) xs.push(make())
  const held = (heapUsed() - before) / n
  if (use !== undefined) for (const x of xs) use(x)
  const used = (heapUsed() - before) / n
  for (const x of xs) release(x)
  return [held, used]
}

const openReplica = (update: Uint8Array): Space => {
  const d = new Y.Doc({ guid: SPACE_ID })
  Y.applyUpdate(d, update)
  return new Space({ id: SPACE_ID, doc: d })
}

const firstReads = (s: Space): void => {
  s.messages.recent({ limit: 50 })
  s.tasks.list()
  s.proposals.list()
  s.events.history({ limit: 50 })
}

const memorySection = (): void => {
  progress('memory: building the small space')
  const update = buildSmallSpace()
  // Warm up both paths so code and shared structures are not charged to the replicas measured.
  heldHeap(5, () => openReplica(update), (s) => s.destroy(), firstReads)
  progress(`memory: ${REPLICAS} bare Y.Docs`)
  const [bare] = heldHeap(
    REPLICAS,
    () => {
      const d = new Y.Doc()
      Y.applyUpdate(d, update)
      return d
    },
    (d) => d.destroy(),
  )
  progress(`memory: ${REPLICAS} spaces`)
  const [opened, used] = heldHeap(REPLICAS, () => openReplica(update), (s) => s.destroy(), firstReads)

  printTable(
    `3. Memory per replica: ${REPLICAS} replicas of a small space (${SMALL.participants} participants, ${SMALL.messages} messages, ${SMALL.tasks} tasks, ${SMALL.proposals} proposals, ${SMALL.stateKeys} state keys)`,
    [{ header: 'replica', align: 'left' }, 'heap / replica', 'bare Y.Doc', 'ratio'],
    [
      ['Space, just opened', fmtBytes(opened), fmtBytes(bare), fmtRatio(opened / bare)],
      ['Space, after first reads', fmtBytes(used), fmtBytes(bare), fmtRatio(used / bare)],
    ],
    [
      `encoded update: ${fmtBytes(update.byteLength)}. heap = heapUsed after gc() with all ${REPLICAS} held, minus before, / ${REPLICAS}.`,
      'first reads = messages.recent, tasks.list, proposals.list, events.history (builds the log indexes).',
      'A Space also holds an Awareness instance and one Y.Doc per restricted channel (ai-only, human-only).',
    ],
  )
}

// ---- run ---------------------------------------------------------------------------------------------------

const t0 = performance.now()
if (want('write')) writeSection()
if (want('load')) loadSection()
if (want('memory')) memorySection()
console.log(`\ntotal bench time ${fmtMs(performance.now() - t0)}`)
progress('done')
