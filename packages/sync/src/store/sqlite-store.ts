/**
 * A Store on `node:sqlite` (Node 22.5+, no native addon): an agent's offline cache and the relay's store.
 *
 * ```ts
 * const store = new SqliteStore('.data/chorus.sqlite')
 * const seq = await store.append('team', update) // the row is committed before append returns
 * ```
 *
 * Durability: the database runs in WAL mode. `append`, `compact` and `remove` are each their own committed
 * transaction, made synchronously before the returned promise exists. `appendGrouped` (group commit, see
 * `GroupCommitStore`) instead adds to one transaction shared by every grouped append of the current turn of the
 * event loop, committed right after that turn; its promise resolves, and `onGroupCommitted` listeners run, only
 * once that commit is done. The relay appends that way and fans an update out only after its commit.
 *
 * Synchronous level: `durability: 'normal'` (the default) is synchronous=NORMAL: a commit appends to the WAL
 * without an fsync (the WAL is synced at checkpoints). The write has reached the OS when COMMIT returns, so a
 * crash of the process (SIGKILL included) loses nothing committed; a power loss or OS crash may lose the last
 * commits, never the file's consistency. That is the right trade for the relay (clients keep their updates and
 * resync them to a relay that lost its last commits) and for an agent's cache. `durability: 'full'`
 * (synchronous=FULL) syncs the WAL on every commit, so commits also survive power loss, for one fsync per commit:
 * per append, or per turn of the event loop with group commit.
 *
 * Checkpoints are kept off the write path: SQLite's automatic checkpoint (run inside the COMMIT that crosses the
 * threshold) only starts at `walAutocheckpointPages` (default 10,000 pages, ~40 MB) as a safety net, and a
 * PASSIVE checkpoint runs on a timer every `checkpointIntervalMs` (default 1 s) between turns, copying each page
 * changed since the last one once, however often it was rewritten. The timer is unref'd and cleared on close.
 *
 * The `updates` table stays a rowid table with its `(space, seq)` key as an index: measured against a
 * `WITHOUT ROWID` table (the key as the one b-tree), it writes fewer pages per commit, since rows go to the end
 * of the table and only the small index entries land beside their space's earlier ones, while `WITHOUT ROWID`
 * puts the whole row there: 20-22 µs per append (insert and its share of a commit) against 22-39 µs for
 * 60-300 byte updates over 100 spaces.
 *
 * Several connections (processes) may share one file: sequence numbers are assigned under SQLite's write lock,
 * so they stay unique and increasing per space: inside the insert statement for `append`; for `appendGrouped`
 * from the connection's own record of each space's last seq, which it drops whenever `PRAGMA data_version`,
 * read once the group holds the write lock, says another connection has committed. A group holds the write lock
 * for the rest of its turn of the event loop; another connection in the same process commits it before writing.
 */
import { mkdirSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { DatabaseSync, type SQLOutputValue, type StatementSync } from 'node:sqlite'
import { ChorusError } from '../errors.ts'
import type { GroupCommitStore, StoredSpace } from './store.ts'
import { checkCompaction } from './memory-store.ts'

/** The schema this code writes; a file with a higher version was written by newer code and is refused. */
export const SQLITE_SCHEMA_VERSION = 1

export interface SqliteStoreOptions {
  /** 'normal' (default) survives a process crash; 'full' also survives power loss. See the module comment. */
  durability?: 'normal' | 'full'
  /** How long a call waits for another connection's write lock before failing, in ms. Default 5000. */
  busyTimeoutMs?: number
  /** A PASSIVE WAL checkpoint runs this often, in ms (default 1000); 0 leaves checkpoints to SQLite alone. */
  checkpointIntervalMs?: number
  /** SQLite checkpoints by itself, inside a commit, once the WAL holds this many pages (default 10,000). */
  walAutocheckpointPages?: number
}

export const DEFAULT_CHECKPOINT_INTERVAL_MS = 1000
export const DEFAULT_WAL_AUTOCHECKPOINT_PAGES = 10_000
/** Spaces whose last seq a connection remembers for grouped appends (see `lastSeqs`). */
const MAX_CACHED_SEQS = 100_000
/** A WAL file that grew past this during a burst is truncated back to it once it is checkpointed. */
const JOURNAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024

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

/**
 * Open groups by database file, for this process: a connection's open group holds the file's write lock until its
 * turn of the event loop ends, so another connection of this process that writes first commits it (else it would
 * wait for the lock on the very event loop that has to release it).
 */
const openGroups = new Map<string, Set<SqliteStore>>()

interface Group {
  /** Settles when the group transaction ends: resolves once committed, rejects when it failed. */
  readonly done: Promise<void>
  readonly resolve: () => void
  readonly reject: (e: unknown) => void
}

export class SqliteStore implements GroupCommitStore {
  readonly path: string
  private readonly db: DatabaseSync
  private readonly stmt: {
    begin: StatementSync
    beginWrite: StatementSync
    commit: StatementSync
    rollback: StatementSync
    append: StatementSync
    appendAt: StatementSync
    dataVersion: StatementSync
    lastSeq: StatementSync
    snapshot: StatementSync
    updates: StatementSync
    deleteThrough: StatementSync
    putSnapshot: StatementSync
    deleteUpdates: StatementSync
    deleteSnapshot: StatementSync
    spaces: StatementSync
    checkpoint: StatementSync | undefined
  }
  private closed = false
  /** The open group transaction (`appendGrouped`), if any. */
  private group: Group | undefined
  private readonly groupListeners = new Set<(error: unknown) => void>()
  /**
   * The last seq of each space this connection appended to in a group, so that a grouped append is one plain
   * insert (the seq subquery and RETURNING cost more than the insert itself). Valid while no other connection
   * has committed: `data_version`, read under the group's write lock, says when one has, and clears it.
   */
  private readonly lastSeqs = new Map<string, number>()
  private dataVersion: unknown
  private readonly checkpointTimer: ReturnType<typeof setInterval> | undefined

  /** Identifies the file among this process's connections (`undefined`: a private in-memory database). */
  private readonly fileKey: string | undefined

  constructor(path: string, options: SqliteStoreOptions = {}) {
    this.path = path
    this.fileKey = path === ':memory:' ? undefined : path.startsWith('file:') ? path : resolve(path)
    if (path !== ':memory:' && !path.startsWith('file:')) mkdirSync(dirname(resolve(path)), { recursive: true })
    this.db = new DatabaseSync(path, { timeout: options.busyTimeoutMs ?? 5000 })
    try {
      this.db.exec('PRAGMA journal_mode = WAL')
      this.db.exec(`PRAGMA synchronous = ${options.durability === 'full' ? 'FULL' : 'NORMAL'}`)
      const autocheckpoint = options.walAutocheckpointPages ?? DEFAULT_WAL_AUTOCHECKPOINT_PAGES
      const interval = options.checkpointIntervalMs ?? DEFAULT_CHECKPOINT_INTERVAL_MS
      if (!(Number.isSafeInteger(autocheckpoint) && autocheckpoint >= 0)) {
        throw new ChorusError('invalid_input', `walAutocheckpointPages must be a non-negative integer, got ${autocheckpoint}`)
      }
      if (!(Number.isFinite(interval) && interval >= 0)) {
        throw new ChorusError('invalid_input', `checkpointIntervalMs must be a non-negative number, got ${interval}`)
      }
      this.db.exec(`PRAGMA wal_autocheckpoint = ${autocheckpoint}`)
      this.db.exec(`PRAGMA journal_size_limit = ${JOURNAL_SIZE_LIMIT_BYTES}`)
      this.migrate()
      // An in-memory database has no WAL (its journal_mode stays 'memory'): nothing to checkpoint.
      const wal = this.db.prepare('PRAGMA journal_mode').get()?.journal_mode === 'wal'
      const db = this.db
      this.stmt = {
        begin: db.prepare('BEGIN'),
        // Takes the write lock up front, so a read-then-write transaction cannot be overtaken by another writer.
        beginWrite: db.prepare('BEGIN IMMEDIATE'),
        commit: db.prepare('COMMIT'),
        rollback: db.prepare('ROLLBACK'),
        append: db.prepare(`INSERT INTO updates (space, seq, data) VALUES (?1, ${LAST_SEQ} + 1, ?2) RETURNING seq`),
        appendAt: db.prepare('INSERT INTO updates (space, seq, data) VALUES (?, ?, ?)'),
        dataVersion: db.prepare('PRAGMA data_version'),
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
        checkpoint: wal ? db.prepare('PRAGMA wal_checkpoint(PASSIVE)') : undefined,
      }
      if (wal && interval > 0) {
        this.checkpointTimer = setInterval(this.checkpoint, interval)
        // A checkpoint timer alone must not keep a process alive; close() clears it.
        this.checkpointTimer.unref()
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
      // Outside a group (autocommit): the seq is computed inside the insert, under the write lock.
      const seq = int(this.stmt.append.get(space, update)?.seq, space)
      if (this.lastSeqs.has(space)) this.lastSeqs.set(space, seq)
      return seq
    })
  }

  appendGrouped(space: string, update: Uint8Array): Promise<number> {
    let group: Group
    let seq: number
    try {
      this.checkOpen()
      group = this.openGroup()
      try {
        const last = this.lastSeqs.get(space)
        if (last === undefined) {
          seq = int(this.stmt.append.get(space, update)?.seq, space)
        } else {
          seq = last + 1
          this.stmt.appendAt.run(space, seq, update)
        }
        this.lastSeqs.set(space, seq)
      } catch (e) {
        // Some errors (a full disk, I/O) make SQLite roll the whole transaction back, others only the statement.
        // Either way the group fails as a whole, so that a group that commits holds every update appended to it.
        this.abortGroup(group, e)
        throw e
      }
    } catch (e) {
      return Promise.reject(this.translate(e))
    }
    return group.done.then(() => seq)
  }

  get groupOpen(): boolean {
    return this.group !== undefined
  }

  commitGroup(): void {
    const group = this.group
    if (group === undefined) return
    try {
      this.stmt.commit.run()
    } catch (e) {
      this.abortGroup(group, e)
      return
    }
    this.endGroup(group, undefined)
  }

  onGroupCommitted(listener: (error: unknown) => void): () => void {
    // Wrapped, so that the same function subscribed twice is called twice and unsubscribes one at a time.
    const entry = (error: unknown): void => listener(error)
    this.groupListeners.add(entry)
    return () => this.groupListeners.delete(entry)
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
        this.lastSeqs.delete(space)
        this.stmt.deleteUpdates.run(space)
        this.stmt.deleteSnapshot.run(space)
      }),
    )
  }

  close(): Promise<void> {
    if (!this.closed) {
      this.commitGroup()
      this.closed = true
      if (this.checkpointTimer !== undefined) clearInterval(this.checkpointTimer)
      this.db.close()
    }
    return Promise.resolve()
  }

  private openGroup(): Group {
    if (this.group !== undefined) return this.group
    this.commitOtherGroups()
    // Takes the write lock now: another connection cannot slip a seq in between our appends' reads and writes.
    this.stmt.beginWrite.run()
    try {
      const version = this.stmt.dataVersion.get()?.data_version
      // Another connection committed (its seqs may be ahead of ours), or the map grew past any use.
      if (version !== this.dataVersion || this.lastSeqs.size > MAX_CACHED_SEQS) this.lastSeqs.clear()
      this.dataVersion = version
    } catch (e) {
      this.stmt.rollback.run()
      throw e
    }
    let resolve!: () => void
    let reject!: (e: unknown) => void
    const done = new Promise<void>((res, rej) => {
      resolve = res
      reject = rej
    })
    // Failures reach the callers through appendGrouped's promises and the listeners; this one is never awaited.
    done.catch(() => undefined)
    const group: Group = { done, resolve, reject }
    this.group = group
    if (this.fileKey !== undefined) {
      let stores = openGroups.get(this.fileKey)
      if (stores === undefined) openGroups.set(this.fileKey, (stores = new Set()))
      stores.add(this)
    }
    setImmediate(() => {
      if (this.group === group) this.commitGroup()
    })
    return group
  }

  private abortGroup(group: Group, e: unknown): void {
    // Seqs handed out in the lost transaction are free again.
    this.lastSeqs.clear()
    try {
      if (this.db.isTransaction) this.stmt.rollback.run()
    } catch {
      // Nothing more to undo: the group is lost either way.
    }
    this.endGroup(group, this.translate(e))
  }

  private commitOtherGroups(): void {
    const stores = this.fileKey === undefined ? undefined : openGroups.get(this.fileKey)
    if (stores !== undefined) for (const store of [...stores]) if (store !== this) store.commitGroup()
  }

  private endGroup(group: Group, error: unknown): void {
    if (this.group !== group) return
    this.group = undefined
    if (this.fileKey !== undefined) {
      const stores = openGroups.get(this.fileKey)
      stores?.delete(this)
      if (stores?.size === 0) openGroups.delete(this.fileKey)
    }
    if (error === undefined) group.resolve()
    else group.reject(error)
    for (const listener of [...this.groupListeners]) {
      try {
        listener(error)
      } catch (e) {
        queueMicrotask(() => {
          throw e
        })
      }
    }
  }

  /** The periodic PASSIVE checkpoint: never waits for readers or writers, and gives up quietly when busy. */
  private readonly checkpoint = (): void => {
    // A group open now is committed after this turn; its pages are checkpointed next time.
    if (this.closed || this.group !== undefined) return
    try {
      this.stmt.checkpoint?.run()
    } catch {
      // Busy or locked by another connection: SQLite's own checkpoint or the next tick catches up.
    }
  }

  private checkOpen(): void {
    if (this.closed) throw new ChorusError('closed', `SqliteStore ${this.path} is closed`, { path: this.path })
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

  /**
   * Runs `fn` now (so a write is committed before the promise exists) and reports failure as a rejection. An open
   * group is committed first: `fn` runs in a transaction (or autocommit) of its own.
   */
  private op<T>(fn: () => T): Promise<T> {
    try {
      this.checkOpen()
      this.commitGroup()
      this.commitOtherGroups()
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
