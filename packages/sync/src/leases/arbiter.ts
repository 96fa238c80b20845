import { checkLeaseDuration, type LeaseRequest } from './lease-client.ts'
import type { GrantSigner } from './grants.ts'
import type { LeaseGrant } from '../schema.ts'
import type { LeaseLedger, LiveLease, SignGrant } from './ledger.ts'

/**
 * Lease arbitration on any ledger: it checks durations, signs grants with its key (L7) and hears of every grant
 * that runs out, exactly once (L6); the ledger decides (L1, L2, L4, L5) and keeps. Before each acquire, renew and
 * release it collects what has run out, as a holder asking again should find the key as the clock has it. The
 * relay wraps it with transport and tells holders what they lost; `LocalLeaseClient` wraps it in-process.
 */
export class LeaseArbiter {
  private readonly signer: GrantSigner
  private readonly ledger: LeaseLedger
  private readonly sign: SignGrant
  private readonly expiredListeners = new Set<(grant: LeaseGrant) => void>()

  constructor(options: { signer: GrantSigner; ledger: LeaseLedger }) {
    this.signer = options.signer
    this.ledger = options.ledger
    this.sign = (terms) => this.signer.sign(terms)
  }

  get publicKey(): string {
    return this.signer.publicKey
  }

  /** Hears of every grant that ran out, once, whichever operation ended it. Listeners must not throw. */
  onExpired(listener: (grant: LeaseGrant) => void): () => void {
    this.expiredListeners.add(listener)
    return () => this.expiredListeners.delete(listener)
  }

  /** Grants the lease, or refuses with `locked` while another holder's grant is live. */
  async acquire(request: LeaseRequest): Promise<LiveLease> {
    const duration = checkLeaseDuration(request.duration)
    const { grant, expiresAt, expired } = await this.afterExpiry(() =>
      this.ledger.acquire({ space: request.space, key: request.key, holder: request.holder, duration }, this.sign),
    )
    if (expired !== undefined) this.report([expired])
    return { grant, expiresAt }
  }

  /** Extends a live grant (same token), or refuses with `lease_lost` (L4). */
  async renew(grant: LeaseGrant, duration = grant.duration): Promise<LiveLease> {
    const d = checkLeaseDuration(duration)
    return await this.afterExpiry(() => this.ledger.renew(grant, d, this.sign))
  }

  /** Whether the grant was live and is now released (L5). */
  release(grant: LeaseGrant): Promise<boolean> {
    return this.afterExpiry(() => this.ledger.release(grant))
  }

  /** Ends the grants that ran out, tells the `onExpired` listeners, and returns them. */
  expire(): Promise<LeaseGrant[]> {
    return this.ledger.expire().then((gone) => {
      this.report(gone)
      return gone
    })
  }

  /** The live grant on a key, if any. */
  async holder(space: string, key: string): Promise<LeaseGrant | undefined> {
    return (await this.ledger.holder(space, key))?.grant
  }

  /** The live leases, of one space or of all. */
  live(space?: string): Promise<LiveLease[]> {
    return this.ledger.live(space)
  }

  /** When something may next run out (never later than the earliest expiry), if anything is live. */
  nextExpiry(): Promise<number | undefined> {
    return this.ledger.nextExpiry()
  }

  /**
   * Collects expired grants while `operation` runs, and answers once both are done (so the listeners heard of an
   * expiry before anyone hears of the grant that followed it). The operation is called synchronously, after the
   * collection: with a ledger that decides inside the call, both decisions are taken in request order.
   */
  private afterExpiry<T>(operation: () => Promise<T>): Promise<T> {
    const expired = this.expire()
    return Promise.all([operation(), expired]).then(([result]) => result)
  }

  private report(gone: LeaseGrant[]): void {
    for (const grant of gone) for (const l of this.expiredListeners) l(grant)
  }
}
