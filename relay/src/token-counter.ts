/**
 * Durable fencing-token counters (L2) on `node:sqlite`, in their own file (`leases.sqlite`) in the data folder.
 * `next` increments and commits in one statement before returning, with synchronous=FULL, so a token is on disk
 * before the grant carrying it is sent, and tokens keep increasing across crashes and restarts.
 */
import { mkdirSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { DatabaseSync, type StatementSync } from 'node:sqlite'
import { ChorusError, type TokenCounter } from '@chorus/sync'

export const TOKEN_COUNTER_FILE = 'leases.sqlite'

export class SqliteTokenCounter implements TokenCounter {
  readonly path: string
  private readonly db: DatabaseSync
  private readonly bump: StatementSync
  private closed = false

  constructor(path: string) {
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
      `)
      // One autocommitted statement: the increment is read and written under SQLite's write lock.
      this.bump = this.db.prepare(`
        INSERT INTO tokens (space, key, last_token) VALUES (?, ?, 1)
        ON CONFLICT (space, key) DO UPDATE SET last_token = last_token + 1
        RETURNING last_token
      `)
    } catch (e) {
      this.db.close()
      throw e
    }
  }

  next(space: string, key: string): number {
    if (this.closed) throw new ChorusError('closed', 'the token counter is closed')
    const row = this.bump.get(space, key)
    const token = row?.last_token
    if (typeof token !== 'number' || !Number.isSafeInteger(token)) {
      throw new ChorusError('corrupt', `token counter returned ${String(token)} for ${key}`, { space, key })
    }
    return token
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    this.db.close()
  }
}
