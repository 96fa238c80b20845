import type { LeaseGrant } from '../schema.ts'

/** A grant that is live, with when it runs out on the ledger's clock. */
export interface LiveLease {
  grant: LeaseGrant
  expiresAt: number
}

/** What a grant says before it is signed. */
export type GrantTerms = Omit<LeaseGrant, 'signature'>

/** Signs a grant's terms (the arbiter's key); called by the ledger once it has picked the token. */
export type SignGrant = (terms: GrantTerms) => LeaseGrant

/** An acquire the ledger is asked to decide: the duration is already checked (whole ms, within the bounds). */
export interface LedgerAcquire {
  space: string
  key: string
  holder: string
  duration: number
}

export interface AcquiredLease extends LiveLease {
  /**
   * The grant on the key that had run out and that this acquire ended in the same step. No `expire()` returns it,
   * so whoever tells holders of expired grants (L6) must tell this one.
   */
  expired?: LeaseGrant
}

/**
 * Where leases are decided and kept: the live grant per (space, key) and the fencing-token counter per key. The
 * ledger, not the arbiter in front of it, decides, so an engine that decides in a database transaction on the
 * database's clock (several relays on one database) implements this as well as one that decides in memory.
 *
 * Atomicity contract, for every engine:
 * - Each operation is one atomic step: it reads the live grant on a key, decides and writes in one go, so two
 *   operations on one key never both decide on the same state. Of any number of concurrent `acquire`s of a key by
 *   different holders, at most one wins while its grant is live (L1).
 * - A promise resolves only once its step is durable: the token counter, the grant and its expiry are stored where
 *   a restart (or a crash) finds them. Picking the token and recording the grant are one step, so a token is never
 *   handed out before it is stored, and never handed out twice.
 * - Tokens strictly increase per (space, key) across every grant, release, expiry, close and reopen (L2).
 * - A refusal (`locked`, `lease_lost`, `closed`) changes nothing. Any other rejection (the engine could not make
 *   the step durable) means the step did not happen.
 * - Expiry is by the ledger's clock: a grant is live while `now < expiresAt`.
 */
export interface LeaseLedger {
  /**
   * Grants the lease unless another holder has a live grant on the key, which refuses with
   * `ChorusError('locked', ..., { key, holder, remaining })`. The same holder asking again gets a new token. The
   * grant is `sign`ed with the next token for the key and recorded with `expiresAt = now + duration`.
   */
  acquire(request: LedgerAcquire, sign: SignGrant): Promise<AcquiredLease>
  /**
   * Extends the live grant on the key for `duration` from now, keeping its token, only when key, holder and token
   * match it (L4); otherwise refuses with `ChorusError('lease_lost', ..., { key, token })`.
   */
  renew(grant: LeaseGrant, duration: number, sign: SignGrant): Promise<LiveLease>
  /** Ends the grant if it is the live one on its key (L5): true when it was and is now ended, false otherwise. */
  release(grant: LeaseGrant): Promise<boolean>
  /** Ends every grant whose time is up and returns each once (L6); cheap when nothing is due. */
  expire(): Promise<LeaseGrant[]>
  /** The live grants (not run out by the ledger's clock), of one space or of all. */
  live(space?: string): Promise<LiveLease[]>
  /** The live grant on a key, if any (one that ran out is not live, even before `expire()` ends it). */
  holder(space: string, key: string): Promise<LiveLease | undefined>
  /** When `expire()` may next find something due (never later than the earliest expiry); undefined when nothing is live. */
  nextExpiry(): Promise<number | undefined>
  /** Finishes what is pending and lets go of the engine; later operations reject with `closed`. Idempotent. */
  close(): Promise<void>
}
