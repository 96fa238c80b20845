/**
 * A token bucket per connection or client address: `ratePerSecond` on average, bursts up to `burst`.
 * Requests over it get a `rate_limited` error (429 on REST) and are not executed; the connection stays open.
 */
import type { Clock } from '@chorus/sync'

export interface RateLimit {
  ratePerSecond: number
  burst: number
}

export const DEFAULT_RATE_LIMIT: RateLimit = { ratePerSecond: 200, burst: 400 }

export class RateLimiter {
  private readonly limit: RateLimit
  private readonly clock: Clock
  private tokens: number
  private last: number

  constructor(limit: RateLimit, clock: Clock) {
    this.limit = limit
    this.clock = clock
    this.tokens = limit.burst
    this.last = clock.now()
  }

  /** Takes one token; false when the bucket is empty. */
  take(): boolean {
    const now = this.clock.now()
    this.tokens = Math.min(this.limit.burst, this.tokens + ((now - this.last) / 1000) * this.limit.ratePerSecond)
    this.last = now
    if (this.tokens < 1) return false
    this.tokens -= 1
    return true
  }
}
