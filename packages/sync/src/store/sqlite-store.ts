/**
 * A Store on `node:sqlite` (Node 22.5+, no native addon): an agent's offline cache and the relay's store.
 *
 * ```ts
 * const store = new SqliteStore('.data/chorus.sqlite')
 * const seq = await store.append('team', update) // the row is committed before append returns
 * ```
 *
 * Durability: the database runs in WAL mode and every call is its own committed transaction, made
 * synchronously before the returned promise exists. With the default `durability: 'normal'`
 * (synchronous=NORMAL) a crash of the process loses nothing that was appended; a power loss or OS crash may
 * lose the last few commits but never corrupts the file. `durability: 'full'` (synchronous=FULL) syncs the
 * WAL on every commit, so appends also survive power loss, at the price of one fsync per append.
 *
 * Several connections (processes) may share one file: sequence numbers are assigned inside the insert
 * statement, under SQLite's write lock, so they stay unique and increasing per space.
 */
import { mkdirSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { DatabaseSync, type SQLOutputValue, type StatementSync } from 'node:sqlite'
import { ChorusError } from '../errors.ts'
import type { Store, StoredSpace } from '../store.ts'
import { checkCompaction } from './memory-store.ts'

/** The schema this code writes; a file with a higher version was written by newer code and is refused. */
export const SQLITE_SCHEMA_VERSION = 1

export interface SqliteStoreOptions {
  /** 'normal' (default) survives a process crash; 'full' also survives power loss. See the module comment. */
  durability?: 'normal' | 'full'
  /** How long a call waits for another connection's write lock before failing, in ms. Default 5000. */
  busyTimeoutMs?: number
}

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS updates (
    space TEXT NOT NULL,
    seq INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (space, seq)
  );
  CREATE TABLE IF NOT EXISTS snapshots (
    space TEXT PRIMARY KEY,
    data BLOB NOT NULL,
    through_seq INTEGER NOT NULL
  );
`

// The last seq of a space: its newest update, or the snapshot's when compaction removed every update.
const LAST_SEQ = `COALESCE((SELECT MAX(s) FROM (
  SELECT MAX(seq) AS s FROM updates WHERE space = ?1
  UNION ALL SELECT through_seq FROM snapshots WHERE space = ?1
)), 0)`

// SQLITE_CORRUPT and SQLITE_NOTADB: the file is damaged or is not a database.
const CORRUPT_ERRCODES = new Set([11, 26])

export class SqliteStore implements Store {
  readonly path: string
  private readonly db: DatabaseSync
  private readonly stmt: {
    begin: StatementSync
    beginWrite: StatementSync
    commit: StatementSync
    rollback: StatementSync
    append: StatementSync
    lastSeq: StatementSync
    snapshot: StatementSync
    updates: StatementSync
    deleteThrough: StatementSync
    putSnapshot: StatementSync
    deleteUpdates: StatementSync
    deleteSnapshot: StatementSync
    spaces: StatementSync
  }
  private closed = false

  constructor(path: string, options: SqliteStoreOptions = {}) {
    this.path = path
    if (path !== ':memory:' && !path.startsWith('file:')) mkdirSync(dirname(resolve(path)), { recursive: true })
    this.db = new DatabaseSync(path, { timeout: options.busyTimeoutMs ?? 5000 })
    try {
      this.db.exec('PRAGMA journal_mode = WAL')
      this.db.exec(`PRAGMA synchronous = ${options.durability === 'full' ? 'FULL' : 'NORMAL'}`)
      this.migrate()
      const db = this.db
      this.stmt = {
        begin: db.prepare('BEGIN'),
        // Takes the write lock up front, so a read-then-write transaction cannot be overtaken by another writer.
        beginWrite: db.prepare('BEGIN IMMEDIATE'),
        commit: db.prepare('COMMIT'),
        rollback: db.prepare('ROLLBACK'),
        append: db.prepare(`INSERT INTO updates (space, seq, data) VALUES (?1, ${LAST_SEQ} + 1, ?2) RETURNING seq`),
        lastSeq: db.prepare(`SELECT ${LAST_SEQ} AS last_seq, COALESCE(
          (SELECT through_seq FROM snapshots WHERE space = ?1), 0) AS snapshot_seq`),
        snapshot: db.prepare('SELECT data, through_seq FROM snapshots WHERE space = ?'),
        updates: db.prepare('SELECT seq, data FROM updates WHERE space = ? ORDER BY seq'),
        deleteThrough: db.prepare('DELETE FROM updates WHERE space = ? AND seq <= ?'),
        putSnapshot: db.prepare(`INSERT INTO snapshots (space, data, through_seq) VALUES (?, ?, ?)
          ON CONFLICT (space) DO UPDATE SET data = excluded.data, through_seq = excluded.through_seq`),
        deleteUpdates: db.prepare('DELETE FROM updates WHERE space = ?'),
        deleteSnapshot: db.prepare('DELETE FROM snapshots WHERE space = ?'),
        spaces: db.prepare('SELECT space FROM updates UNION SELECT space FROM snapshots ORDER BY space'),
      }
    } catch (e) {
      this.db.close()
      throw this.translate(e)
    }
  }

  load(space: string): Promise<StoredSpace> {
    return this.op(() =>
      // One read transaction, so a concurrent compaction cannot make us see a snapshot and a gap.
      this.transaction(this.stmt.begin, () => {
        const updates: Uint8Array[] = []
        let lastSeq = 0
        const snap = this.stmt.snapshot.get(space)
        if (snap !== undefined) {
          updates.push(blob(snap.data, space))
          lastSeq = int(snap.through_seq, space)
        }
        for (const row of this.stmt.updates.iterate(space)) {
          updates.push(blob(row.data, space))
          lastSeq = Math.max(lastSeq, int(row.seq, space))
        }
        return { updates, lastSeq }
      }),
    )
  }

  append(space: string, update: Uint8Array): Promise<number> {
    return this.op(() => {
      const row = this.stmt.append.get(space, update)
      return int(row?.seq, space)
    })
  }

  compact(space: string, snapshot: Uint8Array, throughSeq: number): Promise<void> {
    return this.op(() =>
      this.transaction(this.stmt.beginWrite, () => {
        const row = this.stmt.lastSeq.get(space)
        checkCompaction(space, throughSeq, int(row?.last_seq, space), int(row?.snapshot_seq, space))
        this.stmt.deleteThrough.run(space, throughSeq)
        this.stmt.putSnapshot.run(space, snapshot, throughSeq)
      }),
    )
  }

  spaces(): Promise<string[]> {
    return this.op(() => this.stmt.spaces.all().map((row) => String(row.space)))
  }

  remove(space: string): Promise<void> {
    return this.op(() =>
      this.transaction(this.stmt.beginWrite, () => {
        this.stmt.deleteUpdates.run(space)
        this.stmt.deleteSnapshot.run(space)
      }),
    )
  }

  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true
      this.db.close()
    }
    return Promise.resolve()
  }

  private migrate(): void {
    this.db.exec('BEGIN IMMEDIATE')
    try {
      this.db.exec('CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value)')
      const row = this.db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get()
      if (row === undefined) {
        this.db.exec(SCHEMA)
        this.db.prepare("INSERT INTO meta (key, value) VALUES ('schema_version', ?)").run(SQLITE_SCHEMA_VERSION)
      }
      const version = row === undefined ? SQLITE_SCHEMA_VERSION : Number(row.value)
      if (!Number.isInteger(version) || version > SQLITE_SCHEMA_VERSION) {
        throw new ChorusError(
          'corrupt',
          `${this.path} has store schema version ${String(row?.value)}; this Chorus reads versions up to ` +
            `${SQLITE_SCHEMA_VERSION} (written by a newer Chorus?)`,
          { path: this.path, version: row?.value, supported: SQLITE_SCHEMA_VERSION },
        )
      }
      // Version 1 is the first schema: nothing to migrate from yet.
      this.db.exec('COMMIT')
    } catch (e) {
      if (this.db.isTransaction) this.db.exec('ROLLBACK')
      throw e
    }
  }

  private transaction<T>(begin: StatementSync, fn: () => T): T {
    begin.run()
    try {
      const result = fn()
      this.stmt.commit.run()
      return result
    } catch (e) {
      if (this.db.isTransaction) this.stmt.rollback.run()
      throw e
    }
  }

  /** Runs `fn` now (so a write is committed before the promise exists) and reports failure as a rejection. */
  private op<T>(fn: () => T): Promise<T> {
    try {
      if (this.closed) throw new ChorusError('closed', `SqliteStore ${this.path} is closed`, { path: this.path })
      return Promise.resolve(fn())
    } catch (e) {
      return Promise.reject(this.translate(e))
    }
  }

  private translate(e: unknown): Error {
    if (e instanceof ChorusError) return e
    const errcode = (e as { errcode?: unknown } | null)?.errcode
    if (typeof errcode === 'number' && CORRUPT_ERRCODES.has(errcode)) {
      const message = e instanceof Error ? e.message : String(e)
      return new ChorusError('corrupt', `${this.path} is not a readable Chorus store: ${message}`, {
        path: this.path,
        cause: e,
      })
    }
    return e instanceof Error ? e : new Error(String(e))
  }
}

function blob(value: SQLOutputValue | undefined, space: string): Uint8Array {
  if (value instanceof Uint8Array) return value
  throw new ChorusError('corrupt', `space ${space}: a stored update is not a blob`, { space })
}

function int(value: SQLOutputValue | undefined, space: string): number {
  if (typeof value === 'number' && Number.isSafeInteger(value)) return value
  throw new ChorusError('corrupt', `space ${space}: a stored sequence number is not an integer`, { space })
}
