/** Timing, memory and formatting helpers for the benchmarks. */
import { performance } from 'node:perf_hooks'

/** Whether the process was started with --expose-gc (npm run bench does this). */
export const hasGc = typeof globalThis.gc === 'function'

/** Full collection (twice: weak references and finalizers can free more on the second pass). */
export const collect = (): void => {
  globalThis.gc?.()
  globalThis.gc?.()
}

/** Heap in use after a full collection, in bytes. */
export const heapUsed = (): number => {
  collect()
  return process.memoryUsage().heapUsed
}

export const now = (): number => performance.now()

/** Milliseconds `fn` takes. */
export const time = (fn: () => void): number => {
  const t0 = performance.now()
  fn()
  return performance.now() - t0
}

export const median = (xs: readonly number[]): number => {
  if (xs.length === 0) return NaN
  const s = [...xs].sort((a, b) => a - b)
  const mid = s.length >> 1
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2
}

const started = performance.now()

/** A progress line on stderr (stdout stays a clean report). */
export const progress = (msg: string): void => {
  process.stderr.write(`[bench ${((performance.now() - started) / 1000).toFixed(1).padStart(5)}s] ${msg}\n`)
}

/** One operation benchmark: `setup` builds fresh state (untimed), `op` is timed `ops` times in a row. */
export interface OpsCase<C> {
  name: string
  setup: () => C
  op: (ctx: C, i: number) => void
  teardown?: (ctx: C) => void
}

/**
 * Runs `ops` operations on fresh state and returns the milliseconds they took (setup and teardown untimed).
 * No gc() right before timing: a full collection shrinks the young generation, and the first few thousand ops
 * after it then pay for extra scavenges, which made short runs look slower per op than long ones.
 */
export const runOps = <C>(c: OpsCase<C>, ops: number): number => {
  const ctx = c.setup()
  const t0 = performance.now()
  for (let i = 0; i < ops; i++) c.op(ctx, i)
  const ms = performance.now() - t0
  c.teardown?.(ctx)
  return ms
}

/** A case with its context type hidden, so cases of different contexts can share a list. */
export interface Bench {
  name: string
  /** Milliseconds `ops` operations take on fresh state. */
  run: (ops: number) => number
}

export const bench = <C>(c: OpsCase<C>): Bench => ({ name: c.name, run: (ops) => runOps(c, ops) })

// ---- formatting -------------------------------------------------------------------------------------------

/** 12345 -> "12.3k", 1234567 -> "1.23M". */
export const fmtCount = (n: number): string => {
  if (!Number.isFinite(n)) return '-'
  if (n >= 1e6) return `${(n / 1e6).toPrecision(3)}M`
  if (n >= 1e3) return `${(n / 1e3).toPrecision(3)}k`
  return n.toPrecision(3)
}

export const fmtMs = (ms: number): string => {
  if (!Number.isFinite(ms)) return '-'
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`
  if (ms >= 10) return `${ms.toFixed(0)} ms`
  return `${ms.toFixed(1)} ms`
}

export const fmtUs = (us: number): string => (us >= 100 ? `${us.toFixed(0)} µs` : `${us.toFixed(1)} µs`)

export const fmtBytes = (b: number): string => {
  if (!Number.isFinite(b)) return '-'
  const abs = Math.abs(b)
  if (abs >= 1024 * 1024) return `${(b / 1024 / 1024).toFixed(1)} MB`
  if (abs >= 1024) return `${(b / 1024).toFixed(1)} KB`
  return `${b.toFixed(0)} B`
}

export const fmtRatio = (r: number): string => (Number.isFinite(r) ? `${r.toFixed(2)}x` : '-')

/** "PASS" or "MISS" beside a target. */
export const verdict = (ok: boolean): string => (ok ? 'PASS' : 'MISS')

/** Milliseconds since the epoch, sub-millisecond: comparable across processes and threads on one machine. */
export const nowAbs = (): number => performance.timeOrigin + performance.now()

export const fmtPct = (x: number): string => (Number.isFinite(x) ? `${(100 * x).toFixed(0)}%` : '-')

/** The q-quantile (0..1) of ascending `sorted`, nearest rank; NaN when empty. */
export const quantile = (sorted: ArrayLike<number>, q: number): number => {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] as number
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
