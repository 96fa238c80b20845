/**
 * The relay's lease ledger on `node:sqlite`, in its own file (`leases.sqlite`) in the data folder: per-key
 * fencing tokens (L2) and the live grants, with synchronous=FULL. Decisions are the shared in-memory ones
 * (`LeaseTable`), written through to the file. Changes made in one turn of the event loop go into one
 * transaction, committed (one fsync) right after that turn; each operation's promise resolves once the commit
 * holding its writes is done, so a token is on disk before its grant leaves the relay, tokens keep increasing
 * across crashes and restarts, a restarted relay still knows who holds what (L1), and a hundred requests arriving
 * together cost one fsync, not two hundred. A failed commit is rolled back and the table reloaded from the file.
 */
import { mkdirSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { DatabaseSync, type StatementSync } from 'node:sqlite'
import { ChorusError, LeaseTable, systemClock, type Clock, type LeaseGrant, type LiveLease } from '@chorus/sync'

export const LEASE_LEDGER_FILE = 'leases.sqlite'

export class SqliteLeaseLedger extends LeaseTable {
  readonly path: string
  private readonly db: DatabaseSync
  private readonly bump: StatementSync
  private readonly upsert: StatementSync
  private readonly remove: StatementSync
  private readonly all: StatementSync
  /** A transaction is open (begun by the first write of this turn). */
  private open = false
  private waiting: Array<{ resolve: () => void; reject: (e: unknown) => void }> = []

  constructor(path: string, options: { clock?: Clock } = {}) {
    super(options.clock ?? systemClock)
    this.path = path
    if (path !== ':memory:') mkdirSync(dirname(resolve(path)), { recursive: true })
    this.db = new DatabaseSync(path)
    try {
      this.db.exec(`
        PRAGMA busy_timeout = 5000;
        PRAGMA journal_mode = WAL;
        PRAGMA synchronous = FULL;
        CREATE TABLE IF NOT EXISTS tokens (
          space TEXT NOT NULL,
          key TEXT NOT NULL,
          last_token INTEGER NOT NULL,
          PRIMARY KEY (space, key)
        );
        CREATE TABLE IF NOT EXISTS live (
          space TEXT NOT NULL,
          key TEXT NOT NULL,
          grant_json TEXT NOT NULL,
          expires_at INTEGER NOT NULL,
          PRIMARY KEY (space, key)
        );
      `)
      // One statement: the increment is read and written under SQLite's write lock.
      this.bump = this.db.prepare(`
        INSERT INTO tokens (space, key, last_token) VALUES (?, ?, 1)
        ON CONFLICT (space, key) DO UPDATE SET last_token = last_token + 1
        RETURNING last_token
      `)
      this.upsert = this.db.prepare(`
        INSERT INTO live (space, key, grant_json, expires_at) VALUES (?, ?, ?, ?)
        ON CONFLICT (space, key) DO UPDATE SET grant_json = excluded.grant_json, expires_at = excluded.expires_at
      `)
      this.remove = this.db.prepare('DELETE FROM live WHERE space = ? AND key = ?')
      this.all = this.db.prepare('SELECT grant_json, expires_at FROM live')
      this.restore(this.load())
    } catch (e) {
      this.db.close()
      throw e
    }
  }

  protected nextToken(space: string, key: string): number {
    this.begin()
    const token = this.bump.get(space, key)?.last_token
    if (typeof token !== 'number' || !Number.isSafeInteger(token)) {
      throw new ChorusError('corrupt', `token counter returned ${String(token)} for ${key}`, { space, key })
    }
    return token
  }

  protected record(space: string, key: string, live: LiveLease | undefined): void {
    this.begin()
    if (live === undefined) this.remove.run(space, key)
    else this.upsert.run(space, key, JSON.stringify(live.grant), live.expiresAt)
  }

  /** Resolves once every change made so far is committed; rejects if that commit failed. */
  protected override durable(): Promise<void> {
    if (!this.open) return Promise.resolve()
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }))
  }

  protected override closeStorage(): void {
    this.commit()
    this.db.close()
  }

  /** Commits what is pending now (done by itself right after the turn that wrote it). */
  private commit(): void {
    if (!this.open) return
    this.open = false
    const waiting = this.waiting
    this.waiting = []
    try {
      this.db.exec('COMMIT')
    } catch (e) {
      try {
        this.db.exec('ROLLBACK')
      } catch {
        // Already rolled back by SQLite.
      }
      try {
        // The decisions of this turn were undone on disk: undo them in memory too.
        this.restore(this.load())
      } catch {
        // The file cannot be read either; the next operation fails on it too.
      }
      for (const w of waiting) w.reject(e)
      return
    }
    for (const w of waiting) w.resolve()
  }

  private load(): LiveLease[] {
    return this.all.all().map((row) => ({ grant: JSON.parse(String(row.grant_json)) as LeaseGrant, expiresAt: Number(row.expires_at) }))
  }

  private begin(): void {
    if (this.open) return
    this.db.exec('BEGIN IMMEDIATE')
    this.open = true
    setImmediate(() => this.commit())
  }
}
