import { ChorusError } from '../errors.ts'
import type { LeaseGrant } from '../schema.ts'

export const MAX_LEASE_MS = 10 * 60 * 1000
export const MIN_LEASE_MS = 100
/** How long a task claim lasts unless the holder renews it. */
export const DEFAULT_CLAIM_MS = 60_000
/** How long a resource lock lasts when no timeout is given. */
export const DEFAULT_LOCK_MS = 5 * 60 * 1000

/** Checks a lease duration (ms); callers check before asking the arbiter, so a bad one changes nothing. */
export const checkLeaseDuration = (ms: number, what = 'lease duration'): number => {
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < MIN_LEASE_MS || ms > MAX_LEASE_MS) {
    throw new ChorusError('invalid_input', `${what} must be between ${MIN_LEASE_MS} and ${MAX_LEASE_MS} ms, got ${String(ms)}`)
  }
  return Math.round(ms)
}

/**
 * How a replica asks an arbiter for leases (L1–L10, docs/LEASES.md). The relay implements it over WebSocket/REST and
 * libp2p; `LocalLeaseClient` implements it in-process for a single replica or a test.
 */
export interface LeaseRequest {
  space: string
  key: string
  holder: string
  /** Milliseconds wanted. */
  duration: number
}

export type LeaseLossReason = 'expired' | 'revoked' | 'arbiter_restarted'

export interface LeaseClient {
  /** Grants the lease or throws `ChorusError('locked')` when another holds it, `lease_unavailable` without an arbiter (L10). */
  acquire(request: LeaseRequest): Promise<LeaseGrant>
  /** Extends a live grant (same token); throws `lease_lost` when it is no longer live (L4). */
  renew(grant: LeaseGrant, duration?: number): Promise<LeaseGrant>
  /** Frees the key at once; only the holder's grant releases it (L5). Releasing a dead grant is a no-op. */
  release(grant: LeaseGrant): Promise<void>
  /** The arbiter's Ed25519 public key (base64url), which replicas use to verify grants (L7). */
  publicKey(): Promise<string>
  /** Told when a grant this client holds is lost (L6). */
  onLost(listener: (grant: LeaseGrant, reason: LeaseLossReason) => void): () => void
}
