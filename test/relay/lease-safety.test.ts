/**
 * Lease safety, property-based: seeded random acquire / renew / release / clock advance / relay restart against a
 * real relay (in-process, on one data folder and a manual clock), checked after every step against a model.
 * L1: the relay's live grants (`relay.leases.live`) are exactly the model's, so never two on a key at one instant.
 * L2: tokens per key strictly increase across every grant, restarts included. L4: renew succeeds iff key, holder
 * and token match the live grant. L5: release frees at once and only for the holder; expiry frees too.
 * L6: every grant that runs out is reported to `onLost` exactly once, and no other grant is.
 * Most operations call `relay.leases` directly; some go over the `/leases` WebSocket (RelayLeaseClient) or REST.
 * CHORUS_SEED=<n> replays one seed; the seed is printed on failure.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it, onTestFailed } from 'vitest'
import { ChorusError, ManualClock, MIN_LEASE_MS, RelayLeaseClient, type LeaseGrant } from '@chorus/sync'
import { Relay, silentLogger } from '@chorus/relay'
import { prng } from '../support/random.ts'

const SEEDS = process.env.CHORUS_SEED === undefined ? [1, 7, 42, 2024] : [Number(process.env.CHORUS_SEED)]
const STEPS_PER_SEED = 2_600
const SPACES = ['alpha', 'beta']
const KEYS = ['task:a', 'task:b', 'resource:c']
const HOLDERS = ['h0', 'h1', 'h2', 'h3']
/** Chance that a step restarts the relay (one more restart is forced halfway through every run). */
const RESTART_CHANCE = 1 / 200
/**
 * Every ledger write is an fsync (synchronous=FULL), milliseconds on a busy disk: tmpfs keeps 10,000 steps
 * fast. What this test checks is the relay's logic across stop and start; crash.test.ts kills a real process.
 */
const DATA_ROOT = existsSync('/dev/shm') ? '/dev/shm' : tmpdir()

type Via = 'direct' | 'ws' | 'rest'
type Outcome = { ok: true; grant: LeaseGrant } | { ok: false; code: string }

const leaseId = (g: { space: string; key: string }): string => `${g.space}/${g.key}`
const grantId = (g: LeaseGrant): string => `${g.space}/${g.key}#${g.token}`

/** The relay under test, restartable on the same data folder, with one lease client per holder. */
class Harness {
  relay: Relay | undefined
  url = ''
  readonly clients = new Map<string, RelayLeaseClient>()
  /** Every grant `onLost` reported, by grant id, across restarts. */
  readonly reported = new Set<string>()
  duplicateReport: string | undefined
  readonly dir: string
  readonly clock: ManualClock

  constructor(dir: string, clock: ManualClock) {
    this.dir = dir
    this.clock = clock
  }

  get leases(): Relay['leases'] {
    if (this.relay === undefined) throw new Error('the relay is not running')
    return this.relay.leases
  }

  async start(): Promise<void> {
    const relay = new Relay({ port: 0, dataDir: this.dir, clock: this.clock, logger: silentLogger, rateLimit: { ratePerSecond: 1e6, burst: 1e6 } })
    this.url = (await relay.start()).url
    this.relay = relay
    relay.leases.onLost((grant) => {
      const id = grantId(grant)
      if (this.reported.has(id)) this.duplicateReport ??= id
      this.reported.add(id)
    })
  }

  async stop(): Promise<void> {
    for (const c of this.clients.values()) c.close()
    this.clients.clear()
    await this.relay?.stop()
    this.relay = undefined
  }

  private client(holder: string): RelayLeaseClient {
    let c = this.clients.get(holder)
    if (c === undefined) {
      c = new RelayLeaseClient({ relay: this.url, clock: this.clock })
      this.clients.set(holder, c)
    }
    return c
  }

  async acquire(via: Via, space: string, key: string, holder: string, duration: number): Promise<Outcome> {
    return this.attempt(async () => {
      if (via === 'direct') return this.leases.acquire({ space, key, holder, duration })
      if (via === 'ws') return this.client(holder).acquire({ space, key, holder, duration })
      return this.rest(`/spaces/${space}/leases/acquire`, { key, holder, duration }).then((b) => b.grant as LeaseGrant)
    })
  }

  async renew(via: Via, grant: LeaseGrant, duration: number | undefined): Promise<Outcome> {
    return this.attempt(async () => {
      if (via === 'direct') return this.leases.renew(grant, duration)
      if (via === 'ws') return this.client(grant.holder).renew(grant, duration)
      return this.rest(`/spaces/${grant.space}/leases/renew`, { grant, duration }).then((b) => b.grant as LeaseGrant)
    })
  }

  /** Whether the relay said it released the grant; undefined over the WebSocket, whose client does not say. */
  async release(via: Via, grant: LeaseGrant): Promise<boolean | undefined> {
    if (via === 'direct') return this.leases.release(grant)
    if (via === 'ws') {
      await this.client(grant.holder).release(grant)
      return undefined
    }
    return (await this.rest(`/spaces/${grant.space}/leases/release`, { grant })).released as boolean
  }

  private async attempt(f: () => LeaseGrant | Promise<LeaseGrant>): Promise<Outcome> {
    try {
      return { ok: true, grant: await f() }
    } catch (e) {
      if (e instanceof ChorusError) return { ok: false, code: e.code }
      throw e
    }
  }

  private async rest(path: string, body: unknown): Promise<Record<string, unknown>> {
    const res = await fetch(`${this.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
    const reply = (await res.json()) as Record<string, unknown>
    if (res.status !== 200) throw new ChorusError(reply.error as ChorusError['code'], String(reply.message))
    return reply
  }
}

/** What the relay should hold, by the rules. */
class Model {
  /** Live grant per lease, with its expiry on the relay's clock. */
  readonly live = new Map<string, { grant: LeaseGrant; expiresAt: number }>()
  /** Highest token granted per lease. */
  readonly last = new Map<string, number>()
  /** Every grant handed out (renewals included) per lease, to replay stale ones. */
  readonly history = new Map<string, LeaseGrant[]>()
  /** The latest grant each holder got per lease. */
  readonly latest = new Map<string, LeaseGrant>()
  /** Grants that ran out (they must be reported lost, once). */
  readonly expired = new Set<string>()

  expire(now: number): void {
    for (const [k, l] of this.live) {
      if (l.expiresAt <= now) {
        this.live.delete(k)
        this.expired.add(grantId(l.grant))
      }
    }
  }

  granted(grant: LeaseGrant, expiresAt: number): void {
    const k = leaseId(grant)
    this.live.set(k, { grant, expiresAt })
    const h = this.history.get(k) ?? []
    h.push(grant)
    this.history.set(k, h)
    this.latest.set(`${k}/${grant.holder}`, grant)
  }

  matchesLive(g: LeaseGrant): boolean {
    const l = this.live.get(leaseId(g))
    return l !== undefined && l.grant.holder === g.holder && l.grant.token === g.token && l.grant.key === g.key && l.grant.space === g.space
  }
}

interface Stats {
  steps: number
  via: Record<Via, number>
  restarts: number
  granted: number
  locked: number
  renewed: number
  renewRefused: number
  released: number
  releaseRefused: number
  expired: number
}

async function run(seed: number): Promise<Stats> {
  const random = prng(seed)
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)] as T
  const between = (lo: number, hi: number): number => lo + Math.floor(random() * (hi - lo + 1))
  const dir = mkdtempSync(join(DATA_ROOT, 'chorus-lease-safety-'))
  const clock = new ManualClock()
  const h = new Harness(dir, clock)
  const model = new Model()
  const stats: Stats = {
    steps: 0,
    via: { direct: 0, ws: 0, rest: 0 },
    restarts: 0,
    granted: 0,
    locked: 0,
    renewed: 0,
    renewRefused: 0,
    released: 0,
    releaseRefused: 0,
    expired: 0,
  }
  const log: string[] = []
  const note = (s: string): void => {
    log.push(`${stats.steps}: ${s}`)
    if (log.length > 15) log.shift()
  }
  const fail = (what: string): never => {
    throw new Error(`CHORUS_SEED=${seed} step ${stats.steps}, t=${clock.now()}: ${what}\nlast steps:\n  ${log.join('\n  ')}`)
  }
  const via = (): Via => {
    const r = random()
    const v: Via = r < 0.8 ? 'direct' : r < 0.95 ? 'ws' : 'rest'
    stats.via[v]++
    return v
  }
  const describeGrant = (g: LeaseGrant): string => `${g.holder}@${leaseId(g)}#${g.token}/${g.duration}`

  /** L1, L5, L6: the relay holds exactly the model's live grants, and reported exactly the expired ones. */
  const check = async (): Promise<void> => {
    const now = clock.now()
    model.expire(now)
    for (const space of SPACES) {
      const actual = await h.leases.live(space)
      const keys = actual.map((l) => l.grant.key)
      if (new Set(keys).size !== keys.length) fail(`L1: two live grants on one key in ${space}: ${keys.join(', ')}`)
      const expected = [...model.live.values()].filter((l) => l.grant.space === space).sort((a, b) => (a.grant.key < b.grant.key ? -1 : 1))
      const show = (ls: Array<{ grant: LeaseGrant; expiresAt: number }>): string => ls.map((l) => `${describeGrant(l.grant)} until ${l.expiresAt}`).join(', ')
      if (actual.length !== expected.length) fail(`L1: relay holds [${show(actual)}], model [${show(expected)}]`)
      for (let i = 0; i < actual.length; i++) {
        const a = actual[i] as { grant: LeaseGrant; expiresAt: number }
        const e = expected[i] as { grant: LeaseGrant; expiresAt: number }
        if (a.expiresAt !== e.expiresAt || JSON.stringify(a.grant) !== JSON.stringify(e.grant)) fail(`L1: relay holds [${show(actual)}], model [${show(expected)}]`)
      }
    }
    if (h.duplicateReport !== undefined) fail(`L6: ${h.duplicateReport} was reported lost twice`)
    const unexpected = [...h.reported].filter((id) => !model.expired.has(id))
    const missing = [...model.expired].filter((id) => !h.reported.has(id))
    if (unexpected.length > 0 || missing.length > 0) fail(`L6: reported lost but not expired: [${unexpected.join(', ')}]; expired but not reported: [${missing.join(', ')}]`)
  }

  const acquire = async (): Promise<void> => {
    const space = pick(SPACES)
    const key = pick(KEYS)
    const holder = pick(HOLDERS)
    const duration = between(MIN_LEASE_MS, 3_000)
    const v = via()
    const now = clock.now()
    model.expire(now)
    const k = leaseId({ space, key })
    const current = model.live.get(k)
    const out = await h.acquire(v, space, key, holder, duration)
    note(`acquire ${holder}@${k} for ${duration} via ${v}: ${out.ok ? `token ${out.grant.token}` : out.code}`)
    if (current !== undefined && current.grant.holder !== holder) {
      if (out.ok || out.code !== 'locked') fail(`L1: ${holder} acquired ${k} while ${describeGrant(current.grant)} is live: ${JSON.stringify(out)}`)
      stats.locked++
      return
    }
    if (!out.ok) return fail(`acquire of a free (or own) lease ${k} by ${holder} failed with ${out.code}`)
    const g = out.grant
    if (g.space !== space || g.key !== key || g.holder !== holder || g.duration !== duration) fail(`acquire returned ${describeGrant(g)}`)
    const last = model.last.get(k) ?? 0
    if (!(g.token > last)) fail(`L2: token ${g.token} on ${k} after ${last}`)
    model.last.set(k, g.token)
    model.granted(g, now + duration)
    stats.granted++
  }

  /** A grant to renew or release: a live one as its holder has it, a holder's latest (maybe stale), an older one, or a live one altered. */
  const someGrant = (alterHolder: boolean): LeaseGrant | undefined => {
    model.expire(clock.now())
    const live = [...model.live.values()]
    const r = random()
    if (r < 0.4 && live.length > 0) return pick(live).grant
    if (r < 0.6) {
      const latest = [...model.latest.values()]
      return latest.length === 0 ? undefined : pick(latest)
    }
    if (r < 0.8 || live.length === 0) {
      const history = model.history.get(leaseId({ space: pick(SPACES), key: pick(KEYS) }))
      return history === undefined ? undefined : pick(history)
    }
    const g = pick(live).grant
    if (alterHolder || random() < 0.5) return { ...g, holder: pick(HOLDERS.filter((x) => x !== g.holder)) }
    return { ...g, token: g.token + between(1, 3) }
  }

  const renew = async (): Promise<void> => {
    const grant = someGrant(false)
    if (grant === undefined) return acquire()
    const duration = random() < 0.5 ? undefined : between(MIN_LEASE_MS, 3_000)
    const v = via()
    const now = clock.now()
    model.expire(now)
    const expectOk = model.matchesLive(grant)
    const out = await h.renew(v, grant, duration)
    note(`renew ${describeGrant(grant)} for ${duration ?? 'same'} via ${v}: ${out.ok ? 'ok' : out.code}`)
    if (!expectOk) {
      if (out.ok || out.code !== 'lease_lost') fail(`L4: renew of ${describeGrant(grant)} (not the live grant) gave ${JSON.stringify(out)}`)
      stats.renewRefused++
      return
    }
    if (!out.ok) return fail(`L4: renew of the live grant ${describeGrant(grant)} failed with ${out.code}`)
    const g = out.grant
    const d = duration ?? grant.duration
    if (g.token !== grant.token || g.holder !== grant.holder || g.key !== grant.key || g.space !== grant.space || g.duration !== d) {
      fail(`L4: renew of ${describeGrant(grant)} returned ${describeGrant(g)}`)
    }
    model.granted(g, now + d)
    stats.renewed++
  }

  const release = async (): Promise<void> => {
    const grant = someGrant(true)
    if (grant === undefined) return acquire()
    const v = via()
    model.expire(clock.now())
    const expectReleased = model.matchesLive(grant)
    const released = await h.release(v, grant)
    note(`release ${describeGrant(grant)} via ${v}: ${String(released)}`)
    if (released !== undefined && released !== expectReleased) fail(`L5: release of ${describeGrant(grant)} said ${released}, expected ${expectReleased}`)
    if (expectReleased) {
      model.live.delete(leaseId(grant))
      stats.released++
    } else stats.releaseRefused++
  }

  const advance = async (): Promise<void> => {
    const now = clock.now()
    const expiries = [...model.live.values()].map((l) => l.expiresAt).filter((t) => t > now)
    // Sometimes land exactly on an expiry: a grant is dead at its expiry instant, not a millisecond later.
    const by = expiries.length > 0 && random() < 0.2 ? Math.min(...expiries) - now : random() < 0.8 ? between(0, 500) : between(500, 4_000)
    clock.advance(by)
    const before = model.expired.size
    model.expire(clock.now())
    stats.expired += model.expired.size - before
    const swept = random() < 0.5 ? await h.leases.sweep() : []
    note(`advance ${by}${swept.length > 0 ? `, swept ${swept.map(describeGrant).join(' ')}` : ''}`)
    for (const g of swept) if (!model.expired.has(grantId(g))) fail(`L5: sweep collected ${describeGrant(g)}, which had not run out`)
  }

  const restart = async (): Promise<void> => {
    await h.stop()
    // Sometimes time passes while the relay is down: what ran out meanwhile must not come back.
    const down = random() < 0.4 ? between(0, 2_000) : 0
    clock.advance(down)
    await h.start()
    stats.restarts++
    note(`restart (down for ${down} ms)`)
  }

  await h.start()
  try {
    for (; stats.steps < STEPS_PER_SEED; stats.steps++) {
      const r = random()
      if (r < RESTART_CHANCE || stats.steps === STEPS_PER_SEED / 2) await restart()
      else if (r < 0.33) await acquire()
      else if (r < 0.58) await renew()
      else if (r < 0.75) await release()
      else await advance()
      await check()
    }
  } finally {
    await h.stop()
    rmSync(dir, { recursive: true, force: true })
  }
  return stats
}

describe('lease safety against a model (seeded)', () => {
  it.each(SEEDS)('L1 L2 L4 L5 L6: random acquire / renew / release / expiry / restart steps keep the rules (seed %i)', async (seed) => {
    onTestFailed(() => console.error(`CHORUS_SEED=${seed}`))
    const stats = await run(seed)
    expect(stats.steps).toBe(STEPS_PER_SEED)
    // Every branch of the rules was exercised, on every transport.
    expect(stats.restarts).toBeGreaterThanOrEqual(5)
    expect(stats.via.ws).toBeGreaterThan(100)
    expect(stats.via.rest).toBeGreaterThan(20)
    for (const n of [stats.granted, stats.locked, stats.renewed, stats.renewRefused, stats.released, stats.releaseRefused, stats.expired]) expect(n).toBeGreaterThan(50)
  })
})
