import { systemClock, type Clock } from '../clock.ts'
import { createGrantSigner, generateSecretKey } from './grants.ts'
import type { LeaseClient, LeaseLossReason, LeaseRequest } from './lease-client.ts'
import type { LeaseGrant } from '../schema.ts'
import { LeaseArbiter } from './arbiter.ts'
import { MemoryLeaseLedger } from './memory-ledger.ts'

/**
 * An in-process arbiter behind the LeaseClient interface. Leases it grants are only as shared as the object:
 * give one instance to every replica in a process (tests, examples) or use it as a single replica's local locks.
 * Across machines, the relay's lease client is the real thing.
 */
export class LocalLeaseClient implements LeaseClient {
  readonly arbiter: LeaseArbiter
  private readonly listeners = new Set<(grant: LeaseGrant, reason: LeaseLossReason) => void>()

  constructor(options: { clock?: Clock; secretKey?: Uint8Array } = {}) {
    this.arbiter = new LeaseArbiter({
      signer: createGrantSigner(options.secretKey ?? generateSecretKey()),
      ledger: new MemoryLeaseLedger({ clock: options.clock ?? systemClock }),
    })
    this.arbiter.onExpired((grant) => {
      for (const l of this.listeners) l(grant, 'expired')
    })
  }

  async acquire(request: LeaseRequest): Promise<LeaseGrant> {
    return (await this.arbiter.acquire(request)).grant
  }

  async renew(grant: LeaseGrant, duration?: number): Promise<LeaseGrant> {
    return (await this.arbiter.renew(grant, duration)).grant
  }

  async release(grant: LeaseGrant): Promise<void> {
    await this.arbiter.release(grant)
  }

  publicKey(): Promise<string> {
    return Promise.resolve(this.arbiter.publicKey)
  }

  onLost(listener: (grant: LeaseGrant, reason: LeaseLossReason) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /** Expires what is due and tells listeners; done before every request (a clock-driven caller may call it too). */
  async sweep(): Promise<void> {
    await this.arbiter.expire()
  }
}
