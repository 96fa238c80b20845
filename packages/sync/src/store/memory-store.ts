/**
 * A Store that lives in memory: for tests and short-lived replicas. It follows the same rules as `SqliteStore`
 * (sequence numbers, compaction checks, errors) and copies bytes in and out, so a caller that reuses or mutates
 * its buffers can never change what is stored.
 */
import { ChorusError } from '../errors.ts'
import type { Store, StoredSpace } from './store.ts'

interface SpaceLog {
  snapshot: Uint8Array | undefined
  snapshotSeq: number
  updates: { seq: number; data: Uint8Array }[]
  lastSeq: number
}

export class MemoryStore implements Store {
  private readonly logs = new Map<string, SpaceLog>()
  private closed = false

  load(space: string): Promise<StoredSpace> {
    return this.op(() => {
      const log = this.logs.get(space)
      if (log === undefined) return { updates: [], lastSeq: 0 }
      const updates = log.updates.map((u) => u.data.slice())
      if (log.snapshot !== undefined) updates.unshift(log.snapshot.slice())
      return { updates, lastSeq: log.lastSeq }
    })
  }

  append(space: string, update: Uint8Array): Promise<number> {
    return this.op(() => {
      let log = this.logs.get(space)
      if (log === undefined) {
        log = { snapshot: undefined, snapshotSeq: 0, updates: [], lastSeq: 0 }
        this.logs.set(space, log)
      }
      const seq = ++log.lastSeq
      log.updates.push({ seq, data: update.slice() })
      return seq
    })
  }

  compact(space: string, snapshot: Uint8Array, throughSeq: number): Promise<void> {
    return this.op(() => {
      const log = this.logs.get(space)
      checkCompaction(space, throughSeq, log?.lastSeq ?? 0, log?.snapshotSeq ?? 0)
      if (log === undefined) return
      log.snapshot = snapshot.slice()
      log.snapshotSeq = throughSeq
      log.updates = log.updates.filter((u) => u.seq > throughSeq)
    })
  }

  spaces(): Promise<string[]> {
    return this.op(() => [...this.logs.keys()].sort())
  }

  remove(space: string): Promise<void> {
    return this.op(() => {
      this.logs.delete(space)
    })
  }

  close(): Promise<void> {
    this.closed = true
    this.logs.clear()
    return Promise.resolve()
  }

  /** Runs `fn` now and reports its failure as a rejection, never as a synchronous throw. */
  private op<T>(fn: () => T): Promise<T> {
    try {
      if (this.closed) throw new ChorusError('closed', 'MemoryStore is closed')
      return Promise.resolve(fn())
    } catch (e) {
      return Promise.reject(e instanceof Error ? e : new Error(String(e)))
    }
  }
}

/** The rules both stores apply to `compact`, so a bad caller fails the same way against either. */
export function checkCompaction(space: string, throughSeq: number, lastSeq: number, snapshotSeq: number): void {
  if (!Number.isSafeInteger(throughSeq) || throughSeq < 1 || throughSeq > lastSeq) {
    throw new ChorusError('invalid_input', `compact(${space}): throughSeq ${throughSeq} is not in 1..${lastSeq}`, {
      space,
      throughSeq,
      lastSeq,
    })
  }
  // An older snapshot would drop the updates the newer one replaced.
  if (throughSeq < snapshotSeq) {
    throw new ChorusError('conflict', `compact(${space}): a snapshot through seq ${snapshotSeq} already exists`, {
      space,
      throughSeq,
      snapshotSeq,
    })
  }
}
