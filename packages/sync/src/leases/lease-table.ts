import type { Clock } from '../clock.ts'
import { ChorusError } from '../errors.ts'
import type { LeaseGrant } from '../schema.ts'
import type { AcquiredLease, LeaseLedger, LedgerAcquire, LiveLease, SignGrant } from './ledger.ts'

/**
 * The lease decisions of a ledger that keeps its live grants in this process: one live grant per key (L1), renew
 * only on an exact match (L4), release only by the holder (L5), expiry by the ledger's clock (L6). Each decision
 * is made synchronously inside the call, so it is atomic in a single-threaded process; its promise resolves once
 * `durable()` says what it wrote is stored. Subclasses say where tokens and grants are written: memory
 * (`MemoryLeaseLedger`) or a database file (the relay's `SqliteLeaseLedger`).
 */
export abstract class LeaseTable implements LeaseLedger {
  private readonly clock: Clock
  private readonly table = new Map<string, LiveLease>()
  /**
   * No live lease expires before this (a lower bound: renewals and releases may leave it early). `expire()` runs
   * before every request, so it must not walk every lease when none is due.
   */
  private earliest = Number.POSITIVE_INFINITY
  private closed = false

  protected constructor(clock: Clock) {
    this.clock = clock
  }

  /** The next fencing token for the key, written (with whatever `durable()` waits for) before it is returned. */
  protected abstract nextToken(space: string, key: string): number
  /** Writes the live grant on a key, or its end (`undefined`). */
  protected abstract record(space: string, key: string, live: LiveLease | undefined): void

  /** Resolves once everything written so far is stored; rejects if storing it failed. */
  protected durable(): Promise<void> {
    return Promise.resolve()
  }

  /** Lets go of where the grants are written. */
  protected closeStorage(): void | Promise<void> {}

  /** Starts over from the grants recorded where this ledger writes (on opening, or after a failed write). */
  protected restore(live: Iterable<LiveLease>): void {
    this.table.clear()
    this.earliest = Number.POSITIVE_INFINITY
    for (const l of live) {
      this.table.set(tableKey(l.grant.space, l.grant.key), l)
      this.earliest = Math.min(this.earliest, l.expiresAt)
    }
  }

  acquire(request: LedgerAcquire, sign: SignGrant): Promise<AcquiredLease> {
    return this.settle(() => {
      const now = this.clock.now()
      const k = tableKey(request.space, request.key)
      const previous = this.table.get(k)
      const expired = previous !== undefined && previous.expiresAt <= now ? previous.grant : undefined
      if (previous !== undefined && expired === undefined && previous.grant.holder !== request.holder) {
        throw new ChorusError('locked', `${request.key} is held by ${previous.grant.holder}`, {
          key: request.key,
          holder: previous.grant.holder,
          remaining: previous.expiresAt - now,
        })
      }
      const token = this.nextToken(request.space, request.key)
      const grant = sign({ space: request.space, key: request.key, holder: request.holder, token, duration: request.duration })
      const live = { grant, expiresAt: now + request.duration }
      this.keep(k, live)
      return expired === undefined ? live : { ...live, expired }
    })
  }

  renew(grant: LeaseGrant, duration: number, sign: SignGrant): Promise<LiveLease> {
    return this.settle(() => {
      const now = this.clock.now()
      const k = tableKey(grant.space, grant.key)
      const current = this.current(k, now)
      if (current === undefined || !sameGrant(current.grant, grant)) {
        throw new ChorusError('lease_lost', `lease on ${grant.key} with token ${grant.token} is no longer live`, { key: grant.key, token: grant.token })
      }
      const renewed = sign({ space: grant.space, key: grant.key, holder: grant.holder, token: grant.token, duration })
      const live = { grant: renewed, expiresAt: now + duration }
      this.keep(k, live)
      return live
    })
  }

  release(grant: LeaseGrant): Promise<boolean> {
    return this.settle(() => {
      const k = tableKey(grant.space, grant.key)
      const current = this.current(k, this.clock.now())
      if (current === undefined || !sameGrant(current.grant, grant)) return false
      this.drop(k, current)
      return true
    })
  }

  expire(): Promise<LeaseGrant[]> {
    // Nothing due: nothing to write or to wait for (this runs before every request).
    if (!this.closed && this.clock.now() < this.earliest) return Promise.resolve([])
    return this.settle(() => {
      const now = this.clock.now()
      const gone: LeaseGrant[] = []
      let earliest = Number.POSITIVE_INFINITY
      for (const [k, l] of this.table) {
        if (l.expiresAt <= now) {
          this.drop(k, l)
          gone.push(l.grant)
        } else earliest = Math.min(earliest, l.expiresAt)
      }
      this.earliest = earliest
      return gone
    })
  }

  live(space?: string): Promise<LiveLease[]> {
    return this.settle(() => {
      const now = this.clock.now()
      const out: LiveLease[] = []
      for (const l of this.table.values()) {
        if (l.expiresAt > now && (space === undefined || l.grant.space === space)) out.push({ grant: l.grant, expiresAt: l.expiresAt })
      }
      return out
    })
  }

  holder(space: string, key: string): Promise<LiveLease | undefined> {
    return this.settle(() => {
      const l = this.current(tableKey(space, key), this.clock.now())
      return l === undefined ? undefined : { grant: l.grant, expiresAt: l.expiresAt }
    })
  }

  nextExpiry(): Promise<number | undefined> {
    return this.settle(() => (this.table.size === 0 ? undefined : this.earliest))
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.closeStorage()
  }

  /** Decides now; answers once what the decision wrote (or read) is stored, so refusals keep request order too. */
  private settle<T>(decide: () => T): Promise<T> {
    if (this.closed) return Promise.reject(new ChorusError('closed', 'the lease ledger is closed'))
    let result: T
    try {
      result = decide()
    } catch (e) {
      const refusal = (): never => {
        throw e
      }
      return this.durable().then(refusal, refusal)
    }
    return this.durable().then(() => result)
  }

  private keep(k: string, l: LiveLease): void {
    // Written first: a grant that could not be written is never handed out.
    this.record(l.grant.space, l.grant.key, l)
    this.table.set(k, l)
    this.earliest = Math.min(this.earliest, l.expiresAt)
  }

  private drop(k: string, l: LiveLease): void {
    this.record(l.grant.space, l.grant.key, undefined)
    this.table.delete(k)
  }

  /** The grant on a key if it is live; one that ran out stays in the table until `expire()` (or an acquire) ends it. */
  private current(k: string, now: number): LiveLease | undefined {
    const l = this.table.get(k)
    return l !== undefined && l.expiresAt > now ? l : undefined
  }
}

const tableKey = (space: string, key: string): string => `${space}\u0000${key}`

/** Key, holder and token match (the space and key are the table key already). */
const sameGrant = (live: LeaseGrant, asked: LeaseGrant): boolean => live.holder === asked.holder && live.token === asked.token && live.key === asked.key
