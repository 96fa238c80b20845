import type { Clock } from '../clock.ts'
import { isChorusError } from '../errors.ts'
import { MIN_LEASE_MS, type LeaseClient } from './lease-client.ts'
import type { LeaseGrant } from '../schema.ts'

export interface KeepOptions {
  /** Stop renewing at this time (the arbiter's grant then runs out by itself); renew for as long as held if absent. */
  until?: number
  /** Each renewed grant, with when its request was sent (L3): record it where others can see it. */
  onRenewed: (grant: LeaseGrant, sentAt: number) => void
  /** Renewal failed for good (the grant is gone, L6); the holder must stop acting under it. */
  onLost?: (grant: LeaseGrant, error: unknown) => void
}

interface Kept {
  grant: LeaseGrant
  timer: ReturnType<typeof setTimeout> | undefined
  options: KeepOptions
}

/**
 * Renews grants before they run out, for as long as their holder keeps them: at half of what is left, counted
 * from when the previous request was sent (L3), so a slow reply or a skewed clock only makes it renew earlier.
 * A renewal the arbiter refuses (`lease_lost`) ends the keeping; one that could not reach it (`lease_unavailable`)
 * is retried until the grant would have run out, and the lease client reports the loss then.
 */
export class LeaseKeeper {
  private readonly leases: LeaseClient
  private readonly clock: Clock
  private readonly kept = new Map<string, Kept>()

  constructor(leases: LeaseClient, clock: Clock) {
    this.leases = leases
    this.clock = clock
  }

  keep(grant: LeaseGrant, sentAt: number, options: KeepOptions): void {
    this.stop(grant.key)
    const kept: Kept = { grant, timer: undefined, options }
    this.kept.set(grant.key, kept)
    this.schedule(kept, sentAt)
  }

  /** Stops renewing `key` (after release or completion). */
  stop(key: string): void {
    const kept = this.kept.get(key)
    if (kept?.timer !== undefined) clearTimeout(kept.timer)
    this.kept.delete(key)
  }

  /** Whether `key` is being renewed under this token. */
  keeps(key: string, token: number): boolean {
    return this.kept.get(key)?.grant.token === token
  }

  destroy(): void {
    for (const k of this.kept.values()) if (k.timer !== undefined) clearTimeout(k.timer)
    this.kept.clear()
  }

  private schedule(kept: Kept, sentAt: number): void {
    const expiresAt = sentAt + kept.grant.duration
    const now = this.clock.now()
    const until = kept.options.until
    if (until !== undefined && until - now < MIN_LEASE_MS) return
    const wait = Math.max(0, (expiresAt - now) / 2)
    kept.timer = setTimeout(() => void this.renew(kept, expiresAt), wait)
    ;(kept.timer as { unref?: () => void }).unref?.()
  }

  private async renew(kept: Kept, expiresAt: number): Promise<void> {
    if (this.kept.get(kept.grant.key) !== kept) return
    const sentAt = this.clock.now()
    const until = kept.options.until
    const duration = until === undefined ? kept.grant.duration : Math.min(kept.grant.duration, until - sentAt)
    try {
      const renewed = await this.leases.renew(kept.grant, Math.max(MIN_LEASE_MS, duration))
      if (this.kept.get(kept.grant.key) !== kept) return
      kept.grant = renewed
      kept.options.onRenewed(renewed, sentAt)
      this.schedule(kept, sentAt)
    } catch (e) {
      if (this.kept.get(kept.grant.key) !== kept) return
      if (isChorusError(e, 'lease_unavailable') && this.clock.now() < expiresAt) {
        // The arbiter is unreachable for now: try again while the grant may still be live.
        kept.timer = setTimeout(() => void this.renew(kept, expiresAt), Math.max(MIN_LEASE_MS, (expiresAt - this.clock.now()) / 4))
        ;(kept.timer as { unref?: () => void }).unref?.()
        return
      }
      this.kept.delete(kept.grant.key)
      kept.options.onLost?.(kept.grant, e)
    }
  }
}
