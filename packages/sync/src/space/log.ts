import * as Y from 'yjs'
import { ChorusError } from '../errors.ts'

/**
 * An append-only log of JSON records kept in a Y.Text, one `<at>\t<json>\n` line per record.
 *
 * Why a Y.Text and not a Y.Array of objects: Yjs merges consecutive items of one writer, and for ContentAny that
 * merge copies the whole array (quadratic writes), while `push` walks the list from its start. A Y.Text appends
 * in constant time, its items merge by string concatenation, and a 1M-record log decodes as a few long strings
 * instead of a million objects (bench/sync.ts measures both). Records are never deleted, and every append is whole
 * lines at the end, so items always start at a line boundary.
 *
 * A record's id is the Yjs id of its first character, `<client>-<clock>`: unique, identical on every replica, and
 * ordered per writer, which is what makes read cursors (a clock per writer) possible.
 */
/**
 * One record of a log. Built for every record when a log is first read, so it keeps only numbers and a reference
 * to the item's text; the id string and the record's JSON text are made when asked for.
 */
export class LogEntry {
  readonly client: number
  readonly clock: number
  readonly at: number
  /** The parsed record, once someone parsed it (or it was written here). */
  parsed?: unknown
  private readonly src: string
  private readonly start: number
  private readonly end: number
  private idText: string | undefined

  constructor(client: number, clock: number, at: number, src: string, start: number, end: number) {
    this.client = client
    this.clock = clock
    this.at = at
    this.src = src
    this.start = start
    this.end = end
  }

  /** `<client>-<clock>`: the Yjs id of the record's first character. */
  get id(): string {
    return (this.idText ??= entryId(this.client, this.clock))
  }

  /** The JSON text of the record. */
  get raw(): string {
    return this.src.slice(this.start, this.end)
  }
}

export const entryId = (client: number, clock: number): string => `${client}-${clock}`

export const parseEntryId = (id: string): { client: number; clock: number } | undefined => {
  const m = /^(\d+)-(\d+)$/.exec(id)
  return m ? { client: Number(m[1]), clock: Number(m[2]) } : undefined
}

/**
 * The order every replica agrees on: time first, then the id. Ids compare by length before text so that one
 * writer's `<client>-<clock>` ids keep their numeric order ("7-10" after "7-9").
 */
export const compareEntries = (a: { at: number; id: string }, b: { at: number; id: string }): number =>
  a.at - b.at || a.id.length - b.id.length || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)

export class JsonLog {
  readonly text: Y.Text
  private index: LogEntry[] | undefined
  private readonly listeners = new Set<(entries: LogEntry[], txn: Y.Transaction) => void>()
  /** Records appended locally in the current transaction, so their entries need not parse them back. */
  private written = new Map<number, object>()

  constructor(text: Y.Text) {
    this.text = text
    text.observe((_event, txn) => this.onChange(txn))
  }

  /** Appends one record; call inside a transaction of the log's document to batch with other writes. */
  append(at: number, record: object): string {
    const doc = this.doc()
    const clock = Y.getState(doc.store, doc.clientID)
    // Whole milliseconds: the index reads the timestamp back digit by digit.
    this.text.insert(this.text.length, `${Math.trunc(at)}\t${JSON.stringify(record)}\n`)
    if (this.index !== undefined || this.listeners.size > 0) this.written.set(clock, record)
    return entryId(doc.clientID, clock)
  }

  /** All entries in agreed order. The index is built on first use and then kept up to date. */
  entries(): readonly LogEntry[] {
    if (this.index === undefined) {
      const all = this.scan()
      // Logs are mostly written in time order; sort only when the scan found otherwise.
      let sorted = true
      for (let i = 1; i < all.length && sorted; i++) sorted = compareEntries(all[i - 1] as LogEntry, all[i] as LogEntry) <= 0
      this.index = sorted ? all : all.sort(compareEntries)
    }
    return this.index
  }

  get size(): number {
    return this.entries().length
  }

  /** Called with the entries each transaction added (local or remote), in agreed order. */
  onAppend(listener: (entries: LogEntry[], txn: Y.Transaction) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  private doc(): Y.Doc {
    const doc = this.text.doc
    if (doc === null) throw new ChorusError('invalid_input', 'log is not attached to a document')
    return doc
  }

  private scan(): LogEntry[] {
    const out: LogEntry[] = []
    for (let item = this.text._start; item !== null; item = item.right) {
      if (!item.deleted && item.content instanceof Y.ContentString) pushLines(out, item.id.client, item.id.clock, item.content.str)
    }
    return out
  }

  private onChange(txn: Y.Transaction): void {
    const written = this.written
    this.written = new Map()
    if (this.index === undefined && this.listeners.size === 0) return
    const added: LogEntry[] = []
    const structs = txn.doc.store.clients
    // A local transaction only adds structs of this replica's own client; skip scanning every writer ever seen.
    const changed = txn.local ? [[txn.doc.clientID, txn.afterState.get(txn.doc.clientID) ?? 0] as const] : txn.afterState
    for (const [client, after] of changed) {
      const before = txn.beforeState.get(client) ?? 0
      if (after <= before) continue
      const list = structs.get(client)
      if (list === undefined) continue
      for (let i = Y.findIndexSS(list, before); i < list.length; i++) {
        const s = list[i]
        if (s === undefined || s.id.clock >= after) break
        if (s instanceof Y.Item && s.parent === this.text && !s.deleted && s.content instanceof Y.ContentString) {
          // A struct that began before this transaction (only possible when it was split) is skipped up to `before`.
          const skip = Math.max(0, before - s.id.clock)
          const str = skip === 0 ? s.content.str : s.content.str.slice(skip)
          pushLines(added, client, s.id.clock + skip, str)
        }
      }
    }
    if (added.length === 0) return
    if (written.size > 0 && txn.local) {
      for (const e of added) if (e.client === txn.doc.clientID) e.parsed = written.get(e.clock)
    }
    added.sort(compareEntries)
    if (this.index !== undefined) insertSorted(this.index, added)
    for (const l of this.listeners) l(added, txn)
  }
}

const TAB = 9
const ZERO = 48

const pushLines = (out: LogEntry[], client: number, clock: number, str: string): void => {
  let start = 0
  for (;;) {
    const end = str.indexOf('\n', start)
    if (end < 0) return
    // The timestamp before the tab, read digit by digit: no substring per record.
    let at = 0
    let i = start
    for (let c = str.charCodeAt(i); c !== TAB && i < end; c = str.charCodeAt(++i)) at = at * 10 + (c - ZERO)
    if (i > start && i < end) out.push(new LogEntry(client, clock + start, at, str, i + 1, end))
    start = end + 1
  }
}

/** Merges sorted `added` into sorted `index`; appends at the end in the common case. */
const insertSorted = (index: LogEntry[], added: LogEntry[]): void => {
  for (const e of added) {
    let i = index.length
    while (i > 0 && compareEntries(index[i - 1] as LogEntry, e) > 0) i--
    if (i === index.length) index.push(e)
    else index.splice(i, 0, e)
  }
}

/** Parses a log entry's record, memoizing on the entry. */
export const readEntry = <T>(entry: LogEntry): T => {
  if (entry.parsed === undefined) entry.parsed = JSON.parse(entry.raw) as T
  return entry.parsed as T
}

/** Several lists, each in agreed order, walked together from the newest item to the oldest. */
export function* newestFirst<T extends { at: number; id: string }>(lists: ReadonlyArray<readonly T[]>): Generator<[item: T, source: number]> {
  const pos = lists.map((l) => l.length - 1)
  for (;;) {
    let best = -1
    let bestItem: T | undefined
    for (let i = 0; i < lists.length; i++) {
      const p = pos[i] as number
      if (p < 0) continue
      const item = (lists[i] as readonly T[])[p] as T
      if (bestItem === undefined || compareEntries(item, bestItem) > 0) {
        best = i
        bestItem = item
      }
    }
    if (bestItem === undefined) return
    yield [bestItem, best]
    pos[best] = (pos[best] as number) - 1
  }
}
