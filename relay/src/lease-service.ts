/**
 * The relay's leases: the arbiter (L1, L2, L4, L5) plus what only a running relay can do. It tells holders what
 * they lost (L6): expiry is swept on a timer and before every request, and each lost grant goes to the
 * connections that acquired or renewed it and to every `onLost` listener. It mirrors live grants into the
 * `leases` map of each loaded space, so every replica sees who holds what; a space that loads later is
 * reconciled with the arbiter on load (`reconcile`).
 */
import type * as Y from 'yjs'
import { ChorusError, ROOT, type Clock, type LeaseArbiter, type LeaseClient, type LeaseGrant, type LeaseLossReason, type LeaseRequest, type RecordedGrant } from '@chorus/sync'
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
  /** Resolves once the arbiter's ledger has committed every change made so far (default: at once). */
  durable?: () => Promise<void>
}

/** The longest a sweep timer waits, so a clock that jumps ahead (a suspended VM) is noticed soon after. */
const MAX_SWEEP_WAIT_MS = 60_000

export class LeaseService {
  private readonly arbiter: LeaseArbiter
  private readonly clock: Clock
  private readonly loadedDoc: (space: string) => Y.Doc | undefined
  private readonly logger: Logger
  private readonly ledgerDurable: () => Promise<void>
  /** Per lease key, the token of its live grant and the sessions holding it. */
  private readonly sessions = new Map<string, { token: number; sessions: Set<LeaseSession> }>()
  private readonly listeners = new Set<LostListener>()
  private timer: ReturnType<typeof setTimeout> | undefined
  private closed = false

  constructor(options: LeaseServiceOptions) {
    this.arbiter = options.arbiter
    this.clock = options.clock
    this.loadedDoc = options.loadedDoc
    this.logger = options.logger
    this.ledgerDurable = options.durable ?? (() => Promise.resolve())
    this.schedule()
  }

  get publicKey(): string {
    return this.arbiter.publicKey
  }

  acquire(request: LeaseRequest, session?: LeaseSession): LeaseGrant {
    this.sweep()
    checkLeaseSpace(request.space)
    const grant = this.arbiter.acquire(request)
    // A new token on the key: whoever held an earlier one was told already (expiry), released it, or is this
    // same holder asking again.
    this.sessions.set(sessionKey(grant), { token: grant.token, sessions: new Set(session === undefined ? [] : [session]) })
    this.mirror(grant.space, grant.key, grant)
    this.schedule()
    return grant
  }

  renew(grant: LeaseGrant, duration?: number, session?: LeaseSession): LeaseGrant {
    this.sweep()
    const renewed = this.arbiter.renew(grant, duration)
    if (session !== undefined) {
      const k = sessionKey(renewed)
      const held = this.sessions.get(k)
      if (held?.token === renewed.token) held.sessions.add(session)
      else this.sessions.set(k, { token: renewed.token, sessions: new Set([session]) })
    }
    this.mirror(renewed.space, renewed.key, renewed)
    this.schedule()
    return renewed
  }

  /** Whether the grant was live; releasing a dead grant changes nothing (L5). */
  release(grant: LeaseGrant): boolean {
    this.sweep()
    const released = this.arbiter.release(grant)
    if (released) {
      this.sessions.delete(sessionKey(grant))
      this.mirror(grant.space, grant.key, undefined)
      this.schedule()
    }
    return released
  }

  /**
   * Resolves once every grant handed out so far is on disk. Whoever sends a grant (or records it in a document)
   * waits for this first (L2).
   */
  durable(): Promise<void> {
    return this.ledgerDurable()
  }

  /** The live grant on `key` in `space`, if any. */
  holder(space: string, key: string): LeaseGrant | undefined {
    return this.arbiter.holder(space, key)
  }

  /** The live leases of `space`, each with when it runs out on the relay's clock. */
  live(space: string): Array<{ grant: LeaseGrant; expiresAt: number }> {
    this.sweep()
    return this.arbiter
      .leases()
      .filter((l) => l.grant.space === space)
      .sort((a, b) => (a.grant.key < b.grant.key ? -1 : a.grant.key > b.grant.key ? 1 : 0))
  }

  /** Collect expired grants and tell their holders (L6). Runs on a timer and before each request. */
  sweep(): LeaseGrant[] {
    const gone = this.arbiter.expire()
    for (const grant of gone) {
      const k = sessionKey(grant)
      const held = this.sessions.get(k)
      if (held?.token === grant.token) this.sessions.delete(k)
      this.mirror(grant.space, grant.key, undefined)
      for (const s of held?.token === grant.token ? held.sessions : []) this.tell(() => s.leaseLost(grant, 'expired'))
      for (const l of this.listeners) this.tell(() => l(grant, 'expired'))
    }
    return gone
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
   * Makes the `leases` map of a freshly loaded space match the arbiter: grants that ended while it was unloaded
   * (or before a restart) are removed, live ones written.
   */
  reconcile(space: string, doc: Y.Doc): void {
    const map = doc.getMap<RecordedGrant>(ROOT.leases)
    const live = new Map(this.arbiter.leases().filter((l) => l.grant.space === space).map((l) => [l.grant.key, l]))
    doc.transact(() => {
      for (const [key, recorded] of map) {
        const l = live.get(key)
        if (l === undefined || l.grant.token !== recorded.token || l.grant.duration !== recorded.duration) map.delete(key)
      }
      for (const [key, l] of live) {
        if (!map.has(key)) map.set(key, { ...l.grant, at: l.expiresAt - l.grant.duration })
      }
    }, RELAY_ORIGIN)
  }

  /** An in-process client for the relay's own hosted spaces (REST routes act through it). */
  client(): LeaseClient {
    return {
      acquire: async (request) => {
        const grant = this.acquire(request)
        await this.durable()
        return grant
      },
      renew: async (grant, duration) => {
        const renewed = this.renew(grant, duration)
        await this.durable()
        return renewed
      },
      release: async (grant) => {
        this.release(grant)
        await this.durable()
      },
      publicKey: () => Promise.resolve(this.publicKey),
      onLost: (listener) => this.onLost(listener),
    }
  }

  close(): void {
    this.closed = true
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
    this.sessions.clear()
    this.listeners.clear()
  }

  private mirror(space: string, key: string, grant: LeaseGrant | undefined): void {
    const doc = this.loadedDoc(space)
    if (doc === undefined) return
    const map = doc.getMap<RecordedGrant>(ROOT.leases)
    doc.transact(() => {
      if (grant === undefined) map.delete(key)
      else map.set(key, { ...grant, at: this.clock.now() })
    }, RELAY_ORIGIN)
  }

  private schedule(): void {
    if (this.closed) return
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
    const next = this.arbiter.nextExpiry()
    if (next === undefined) return
    const wait = Math.min(Math.max(next - this.clock.now(), 0), MAX_SWEEP_WAIT_MS)
    this.timer = setTimeout(() => {
      this.timer = undefined
      this.sweep()
      this.schedule()
    }, wait)
    this.timer.unref()
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

/** Leases belong to main spaces; the restricted-channel documents are only message logs. */
function checkLeaseSpace(space: string): void {
  if (space.includes('#')) throw new ChorusError('invalid_input', `"${space}" is a restricted-channel document; leases belong to the space itself`)
}
