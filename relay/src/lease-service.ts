/**
 * The relay's leases: the arbiter (L1, L2, L4, L5, on whatever ledger the relay's storage opened) plus what only
 * a running relay can do. It tells holders what they lost (L6): expiry is swept on a timer and before every
 * request, and each lost grant goes to the connections that acquired or renewed it and to every `onLost`
 * listener. It mirrors live grants into the `leases` map of each loaded space, so every replica sees who holds
 * what; a space that loads later is reconciled with the ledger on load (`reconcile`). Every operation answers once
 * the ledger has stored its step, so nothing that carries a token leaves (or reaches a document) before (L2).
 */
import type * as Y from 'yjs'
import {
  ChorusError,
  ROOT,
  type Clock,
  type LeaseArbiter,
  type LeaseClient,
  type LeaseGrant,
  type LeaseLossReason,
  type LeaseRequest,
  type LiveLease,
  type RecordedGrant,
} from '@chorus/sync'
import type { Logger } from './logger.ts'

/** Transaction origin of the relay's own writes to a document (`meta.relayKey`, the `leases` mirror). */
export const RELAY_ORIGIN = Symbol('chorus-relay')

/** Something that wants to hear about grants it holds being lost: a lease connection. */
export interface LeaseSession {
  leaseLost(grant: LeaseGrant, reason: LeaseLossReason): void
}

type LostListener = (grant: LeaseGrant, reason: LeaseLossReason) => void

export interface LeaseServiceOptions {
  arbiter: LeaseArbiter
  clock: Clock
  /** The loaded main document of a space, if it is loaded (restricted documents hold no leases). */
  loadedDoc: (space: string) => Y.Doc | undefined
  logger: Logger
}

/** The longest a sweep timer waits, so a clock that jumps ahead (a suspended VM) is noticed soon after. */
const MAX_SWEEP_WAIT_MS = 60_000

export class LeaseService {
  private readonly arbiter: LeaseArbiter
  private readonly clock: Clock
  private readonly loadedDoc: (space: string) => Y.Doc | undefined
  private readonly logger: Logger
  /** Per lease key, the token of its live grant and the sessions holding it. */
  private readonly sessions = new Map<string, { token: number; sessions: Set<LeaseSession> }>()
  private readonly listeners = new Set<LostListener>()
  /** Spaces being reconciled, each with the keys mirrored since its reconcile read the ledger. */
  private readonly reconciling = new Set<{ space: string; touched: Set<string> }>()
  private timer: ReturnType<typeof setTimeout> | undefined
  /** When the timer fires (on the relay's clock). */
  private timerAt = Number.POSITIVE_INFINITY
  private readonly stopListening: () => void
  private closed = false

  constructor(options: LeaseServiceOptions) {
    this.arbiter = options.arbiter
    this.clock = options.clock
    this.loadedDoc = options.loadedDoc
    this.logger = options.logger
    this.stopListening = this.arbiter.onExpired((grant) => this.expired(grant))
    this.rearm()
  }

  get publicKey(): string {
    return this.arbiter.publicKey
  }

  /**
   * Grants the lease once it is stored. Nothing is awaited before the ledger is asked, so with a ledger that
   * decides inside the call (memory, SQLite) requests are decided in the order they arrive.
   */
  async acquire(request: LeaseRequest, session?: LeaseSession): Promise<LeaseGrant> {
    checkLeaseSpace(request.space)
    const { grant, expiresAt } = await this.stored(this.arbiter.acquire(request))
    // A new token on the key: whoever held an earlier one was told already (expiry), released it, or is this
    // same holder asking again.
    this.sessions.set(sessionKey(grant), { token: grant.token, sessions: new Set(session === undefined ? [] : [session]) })
    this.mirror(grant.space, grant.key, { grant, expiresAt })
    this.wake(expiresAt)
    return grant
  }

  async renew(grant: LeaseGrant, duration?: number, session?: LeaseSession): Promise<LeaseGrant> {
    const { grant: renewed, expiresAt } = await this.stored(this.arbiter.renew(grant, duration))
    if (session !== undefined) {
      const k = sessionKey(renewed)
      const held = this.sessions.get(k)
      if (held?.token === renewed.token) held.sessions.add(session)
      else this.sessions.set(k, { token: renewed.token, sessions: new Set([session]) })
    }
    this.mirror(renewed.space, renewed.key, { grant: renewed, expiresAt })
    this.wake(expiresAt)
    return renewed
  }

  /** Whether the grant was live; releasing a dead grant changes nothing (L5). */
  async release(grant: LeaseGrant): Promise<boolean> {
    const released = await this.stored(this.arbiter.release(grant))
    if (released) {
      this.sessions.delete(sessionKey(grant))
      this.mirror(grant.space, grant.key, undefined)
    }
    return released
  }

  /** The live grant on `key` in `space`, if any. */
  holder(space: string, key: string): Promise<LeaseGrant | undefined> {
    return this.stored(this.arbiter.holder(space, key))
  }

  /** The live leases of `space`, each with when it runs out on the relay's clock. */
  async live(space: string): Promise<LiveLease[]> {
    await this.sweep()
    const live = await this.stored(this.arbiter.live(space))
    return live.sort((a, b) => (a.grant.key < b.grant.key ? -1 : a.grant.key > b.grant.key ? 1 : 0))
  }

  /** Collect expired grants and tell their holders (L6): on a timer, before `live`, and (in the arbiter) before each request. */
  sweep(): Promise<LeaseGrant[]> {
    return this.stored(this.arbiter.expire())
  }

  onLost(listener: LostListener): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /** A connection went away: its grants stay live (it may reconnect and renew) but it is told nothing more. */
  detach(session: LeaseSession): void {
    for (const held of this.sessions.values()) held.sessions.delete(session)
  }

  /**
   * Makes the `leases` map of a freshly loaded space match the ledger: grants that ended while it was unloaded
   * (or before a restart) are removed, live ones written. Keys that change while the ledger is read are left to
   * the change, which mirrors itself. Failures are logged: the mirror is informative, grants are checked by token.
   */
  async reconcile(space: string, doc: Y.Doc): Promise<void> {
    const pending = { space, touched: new Set<string>() }
    this.reconciling.add(pending)
    try {
      const live = new Map((await this.arbiter.live(space)).map((l) => [l.grant.key, l]))
      if (this.closed || this.loadedDoc(space) !== doc) return
      const map = doc.getMap<RecordedGrant>(ROOT.leases)
      doc.transact(() => {
        for (const [key, recorded] of map) {
          if (pending.touched.has(key)) continue
          const l = live.get(key)
          if (l === undefined || l.grant.token !== recorded.token || l.grant.duration !== recorded.duration) map.delete(key)
        }
        for (const [key, l] of live) {
          if (!pending.touched.has(key) && !map.has(key)) map.set(key, recordedGrant(l))
        }
      }, RELAY_ORIGIN)
    } catch (e) {
      if (!this.closed) this.logger.error('could not reconcile the leases of a loaded space', { space, error: e })
    } finally {
      this.reconciling.delete(pending)
    }
  }

  /** An in-process client for the relay's own hosted spaces (REST routes act through it). */
  client(): LeaseClient {
    return {
      acquire: (request) => this.acquire(request),
      renew: (grant, duration) => this.renew(grant, duration),
      release: async (grant) => {
        await this.release(grant)
      },
      publicKey: () => Promise.resolve(this.publicKey),
      onLost: (listener) => this.onLost(listener),
    }
  }

  close(): void {
    this.closed = true
    this.stopListening()
    this.disarm()
    this.sessions.clear()
    this.listeners.clear()
  }

  /** A grant ran out: forget its sessions, take it out of the mirror, tell its holders and the listeners (L6). */
  private expired(grant: LeaseGrant): void {
    const k = sessionKey(grant)
    const held = this.sessions.get(k)
    const holders = held?.token === grant.token ? held.sessions : []
    if (held?.token === grant.token) this.sessions.delete(k)
    this.mirror(grant.space, grant.key, undefined)
    for (const s of holders) this.tell(() => s.leaseLost(grant, 'expired'))
    for (const l of this.listeners) this.tell(() => l(grant, 'expired'))
  }

  /** A refusal passes as it is; a ledger that could not store the step (the step did not happen) is unavailable. */
  private stored<T>(operation: Promise<T>): Promise<T> {
    return operation.catch((e: unknown) => {
      if (e instanceof ChorusError) throw e
      this.logger.error('the lease ledger failed', { error: e })
      throw new ChorusError('lease_unavailable', 'the relay could not store the lease; try again')
    })
  }

  private mirror(space: string, key: string, live: LiveLease | undefined): void {
    for (const r of this.reconciling) if (r.space === space) r.touched.add(key)
    const doc = this.loadedDoc(space)
    if (doc === undefined) return
    const map = doc.getMap<RecordedGrant>(ROOT.leases)
    doc.transact(() => {
      if (live === undefined) map.delete(key)
      else map.set(key, recordedGrant(live))
    }, RELAY_ORIGIN)
  }

  /** Sweeps no later than `at` (a grant just granted or renewed runs out then). */
  private wake(at: number): void {
    if (at < this.timerAt) this.arm(at)
  }

  /** Sweeps at the ledger's next expiry: on start and after each timed sweep. */
  private rearm(): void {
    if (this.closed) return
    this.arbiter.nextExpiry().then(
      (next) => {
        // Only ever earlier: an acquire may have armed the timer for a sooner expiry meanwhile.
        if (next !== undefined) this.wake(next)
      },
      (e: unknown) => {
        if (!this.closed) this.logger.error('could not read the next lease expiry', { error: e })
      },
    )
  }

  private arm(at: number): void {
    if (this.closed) return
    this.disarm()
    this.timerAt = at
    const wait = Math.min(Math.max(at - this.clock.now(), 0), MAX_SWEEP_WAIT_MS)
    this.timer = setTimeout(() => {
      this.timer = undefined
      this.timerAt = Number.POSITIVE_INFINITY
      this.sweep().then(
        () => this.rearm(),
        () => this.rearm(),
      )
    }, wait)
    this.timer.unref()
  }

  private disarm(): void {
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
    this.timerAt = Number.POSITIVE_INFINITY
  }

  private tell(f: () => void): void {
    try {
      f()
    } catch (e) {
      this.logger.error('a lease_lost listener failed', { error: e })
    }
  }
}

const sessionKey = (g: LeaseGrant): string => `${g.space}\u0000${g.key}`

/** A grant as the mirror records it: with when the relay granted it (on its clock). */
const recordedGrant = (l: LiveLease): RecordedGrant => ({ ...l.grant, at: l.expiresAt - l.grant.duration })

/** Leases belong to main spaces; the restricted-channel documents are only message logs. */
function checkLeaseSpace(space: string): void {
  if (space.includes('#')) throw new ChorusError('invalid_input', `"${space}" is a restricted-channel document; leases belong to the space itself`)
}
