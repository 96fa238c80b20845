import { systemClock, type Clock } from '../clock.ts'
import { LeaseTable } from './lease-table.ts'
import type { LiveLease } from './ledger.ts'

/** A lease ledger in memory: for a single process (tests, a local replica's locks). Nothing survives the process. */
export class MemoryLeaseLedger extends LeaseTable {
  private readonly tokens = new Map<string, number>()

  constructor(options: { clock?: Clock } = {}) {
    super(options.clock ?? systemClock)
  }

  protected nextToken(space: string, key: string): number {
    const k = `${space}\u0000${key}`
    const token = (this.tokens.get(k) ?? 0) + 1
    this.tokens.set(k, token)
    return token
  }

  protected record(_space: string, _key: string, _live: LiveLease | undefined): void {
    // The table in memory is the record.
  }
}
