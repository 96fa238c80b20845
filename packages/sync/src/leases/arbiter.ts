import type { Clock } from '../clock.ts'
import { ChorusError } from '../errors.ts'
import type { GrantSigner } from '../grants.ts'
import { checkLeaseDuration, type LeaseRequest } from '../lease-client.ts'
import type { LeaseGrant } from '../schema.ts'

/** Durable per-key token counters (L2): `next` must persist the token before returning it. */
export interface TokenCounter {
  next(space: string, key: string): number
}

export class MemoryTokenCounter implements TokenCounter {
  private readonly last = new Map<string, number>()
  next(space: string, key: string): number {
    const k = `${space}\u0000${key}`
    const t = (this.last.get(k) ?? 0) + 1
    this.last.set(k, t)
    return t
  }
}

interface Live {
  grant: LeaseGrant
  expiresAt: number
}

/**
 * The decision core of lease arbitration, free of I/O: one live grant per key (L1), strictly increasing tokens
 * (L2, through the injected counter), renew only on an exact match (L4), release only by the holder (L5),
 * expiry by the arbiter's own clock. The relay wraps it with durability and transport.
 */
export class LeaseArbiter {
  private readonly live = new Map<string, Live>()
  private readonly signer: GrantSigner
  private readonly clock: Clock
  private readonly tokens: TokenCounter

  constructor(options: { signer: GrantSigner; clock: Clock; tokens?: TokenCounter }) {
    this.signer = options.signer
    this.clock = options.clock
    this.tokens = options.tokens ?? new MemoryTokenCounter()
  }

  get publicKey(): string {
    return this.signer.publicKey
  }

  acquire(req: LeaseRequest): LeaseGrant {
    const duration = checkLeaseDuration(req.duration)
    const k = mapKey(req.space, req.key)
    const current = this.current(k)
    if (current !== undefined && current.grant.holder !== req.holder) {
      throw new ChorusError('locked', `${req.key} is held by ${current.grant.holder}`, {
        holder: current.grant.holder,
        remaining: current.expiresAt - this.clock.now(),
      })
    }
    const token = this.tokens.next(req.space, req.key)
    const grant = this.signer.sign({ space: req.space, key: req.key, holder: req.holder, token, duration })
    this.live.set(k, { grant, expiresAt: this.clock.now() + duration })
    return grant
  }

  renew(grant: LeaseGrant, duration = grant.duration): LeaseGrant {
    const k = mapKey(grant.space, grant.key)
    const current = this.current(k)
    if (current === undefined || current.grant.holder !== grant.holder || current.grant.token !== grant.token) {
      throw new ChorusError('lease_lost', `lease on ${grant.key} with token ${grant.token} is no longer live`, { key: grant.key, token: grant.token })
    }
    const d = checkLeaseDuration(duration)
    const renewed = this.signer.sign({ space: grant.space, key: grant.key, holder: grant.holder, token: grant.token, duration: d })
    this.live.set(k, { grant: renewed, expiresAt: this.clock.now() + d })
    return renewed
  }

  /** Returns whether the grant was live and is now released. */
  release(grant: LeaseGrant): boolean {
    const k = mapKey(grant.space, grant.key)
    const current = this.current(k)
    if (current === undefined || current.grant.holder !== grant.holder || current.grant.token !== grant.token) return false
    this.live.delete(k)
    return true
  }

  /** The live grant on a key, if any. */
  holder(space: string, key: string): LeaseGrant | undefined {
    return this.current(mapKey(space, key))?.grant
  }

  /** Drops expired grants and returns them, so a caller can tell their holders (L6). */
  expire(): LeaseGrant[] {
    const now = this.clock.now()
    const gone: LeaseGrant[] = []
    for (const [k, l] of this.live) {
      if (l.expiresAt <= now) {
        this.live.delete(k)
        gone.push(l.grant)
      }
    }
    return gone
  }

  private current(k: string): Live | undefined {
    const l = this.live.get(k)
    if (l !== undefined && l.expiresAt <= this.clock.now()) {
      this.live.delete(k)
      return undefined
    }
    return l
  }
}

const mapKey = (space: string, key: string): string => `${space}\u0000${key}`
