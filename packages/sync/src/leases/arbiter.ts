import type { Clock } from '../clock.ts'
import { ChorusError } from '../errors.ts'
import type { GrantSigner } from './grants.ts'
import { checkLeaseDuration, type LeaseRequest } from './lease-client.ts'
import type { LeaseGrant } from '../schema.ts'

/** A grant the arbiter considers live, with its expiry on the arbiter's clock. */
export interface LiveLease {
  grant: LeaseGrant
  expiresAt: number
}

/**
 * Where an arbiter keeps what must survive it. `next` persists the token before returning it (L2); `save` records
 * the live grant on a key (or its end, with `undefined`) so an arbiter restarted on the same ledger still knows
 * who holds what (L1 across restarts); `load` returns the recorded live grants.
 */
export interface LeaseLedger {
  next(space: string, key: string): number
  save(space: string, key: string, live: LiveLease | undefined): void
  load(): LiveLease[]
}

/** A ledger in memory: for a single process (tests, a local replica's locks). Nothing survives the process. */
export class MemoryLeaseLedger implements LeaseLedger {
  private readonly last = new Map<string, number>()
  private readonly live = new Map<string, LiveLease>()

  next(space: string, key: string): number {
    const k = leaseKey(space, key)
    const t = (this.last.get(k) ?? 0) + 1
    this.last.set(k, t)
    return t
  }

  save(space: string, key: string, live: LiveLease | undefined): void {
    if (live === undefined) this.live.delete(leaseKey(space, key))
    else this.live.set(leaseKey(space, key), { grant: { ...live.grant }, expiresAt: live.expiresAt })
  }

  load(): LiveLease[] {
    return [...this.live.values()].map((l) => ({ grant: { ...l.grant }, expiresAt: l.expiresAt }))
  }
}

/**
 * The decision core of lease arbitration, free of I/O: one live grant per key (L1), strictly increasing tokens
 * (L2, through the injected ledger), renew only on an exact match (L4), release only by the holder (L5),
 * expiry by the arbiter's own clock. The relay wraps it with transport and tells holders what they lost (L6).
 */
export class LeaseArbiter {
  private readonly live = new Map<string, LiveLease>()
  private readonly signer: GrantSigner
  private readonly clock: Clock
  private readonly ledger: LeaseLedger
  /**
   * No live lease expires before this (a lower bound: renewals and releases may leave it early). `expire()` runs
   * on every request, so it must not walk every lease when none is due.
   */
  private earliest = Number.POSITIVE_INFINITY

  constructor(options: { signer: GrantSigner; clock: Clock; ledger?: LeaseLedger }) {
    this.signer = options.signer
    this.clock = options.clock
    this.ledger = options.ledger ?? new MemoryLeaseLedger()
    for (const l of this.ledger.load()) {
      this.live.set(leaseKey(l.grant.space, l.grant.key), l)
      this.earliest = Math.min(this.earliest, l.expiresAt)
    }
  }

  get publicKey(): string {
    return this.signer.publicKey
  }

  acquire(req: LeaseRequest): LeaseGrant {
    const duration = checkLeaseDuration(req.duration)
    const k = leaseKey(req.space, req.key)
    const current = this.current(k)
    if (current !== undefined && current.grant.holder !== req.holder) {
      throw new ChorusError('locked', `${req.key} is held by ${current.grant.holder}`, {
        key: req.key,
        holder: current.grant.holder,
        remaining: current.expiresAt - this.clock.now(),
      })
    }
    const token = this.ledger.next(req.space, req.key)
    const grant = this.signer.sign({ space: req.space, key: req.key, holder: req.holder, token, duration })
    this.keep(k, { grant, expiresAt: this.clock.now() + duration })
    return grant
  }

  renew(grant: LeaseGrant, duration = grant.duration): LeaseGrant {
    const d = checkLeaseDuration(duration)
    const k = leaseKey(grant.space, grant.key)
    const current = this.current(k)
    if (current === undefined || current.grant.holder !== grant.holder || current.grant.token !== grant.token) {
      throw new ChorusError('lease_lost', `lease on ${grant.key} with token ${grant.token} is no longer live`, { key: grant.key, token: grant.token })
    }
    const renewed = this.signer.sign({ space: grant.space, key: grant.key, holder: grant.holder, token: grant.token, duration: d })
    this.keep(k, { grant: renewed, expiresAt: this.clock.now() + d })
    return renewed
  }

  /** Returns whether the grant was live and is now released. */
  release(grant: LeaseGrant): boolean {
    const k = leaseKey(grant.space, grant.key)
    const current = this.current(k)
    if (current === undefined || current.grant.holder !== grant.holder || current.grant.token !== grant.token) return false
    this.drop(k, current)
    return true
  }

  /** The live grant on a key, if any. */
  holder(space: string, key: string): LeaseGrant | undefined {
    return this.current(leaseKey(space, key))?.grant
  }

  /** Every live lease (expired ones are dropped first). */
  leases(): LiveLease[] {
    this.expire()
    return [...this.live.values()].map((l) => ({ grant: l.grant, expiresAt: l.expiresAt }))
  }

  /** When the next `expire()` may find something due (never later than the earliest expiry), if anything is live. */
  nextExpiry(): number | undefined {
    return this.live.size === 0 ? undefined : this.earliest
  }

  /** Drops expired grants and returns them, so a caller can tell their holders (L6). */
  expire(): LeaseGrant[] {
    const now = this.clock.now()
    const gone: LeaseGrant[] = []
    if (now < this.earliest) return gone
    let earliest = Number.POSITIVE_INFINITY
    for (const [k, l] of this.live) {
      if (l.expiresAt <= now) {
        this.drop(k, l)
        gone.push(l.grant)
      } else earliest = Math.min(earliest, l.expiresAt)
    }
    this.earliest = earliest
    return gone
  }

  private keep(k: string, l: LiveLease): void {
    // Durable first: a grant the ledger could not record is never handed out.
    this.ledger.save(l.grant.space, l.grant.key, l)
    this.live.set(k, l)
    this.earliest = Math.min(this.earliest, l.expiresAt)
  }

  private drop(k: string, l: LiveLease): void {
    this.live.delete(k)
    this.ledger.save(l.grant.space, l.grant.key, undefined)
  }

  private current(k: string): LiveLease | undefined {
    const l = this.live.get(k)
    // Left in the map until `expire()` collects it, so its holder is still told (L6).
    return l !== undefined && l.expiresAt > this.clock.now() ? l : undefined
  }
}

const leaseKey = (space: string, key: string): string => `${space}\u0000${key}`
