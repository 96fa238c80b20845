import type * as Y from 'yjs'
import type { SpaceCore } from './core.ts'
import { ChorusError } from '../errors.ts'
import { assertJson, copyJson } from '../json.ts'
import { LIMITS, type Json } from '../schema.ts'
import { checkSize } from '../validate.ts'

export type StateMode = 'merge' | 'replace'

/**
 * One written value with its author. Stored in place of the bare value so the state map itself is the record
 * of who changed what: `state_update` events are derived from these entries, and an overwritten value leaves
 * nothing behind (the document does not grow with every update of a busy key).
 */
export interface StateEntry {
  v?: Json
  by: string
  at: number
  /** A deletion, kept as a tombstone so the event history can show it. */
  deleted?: true
}

/** Separates a key from a field in the flat keys of merged fields: `<key>\u0000<field>`. */
export const FIELD_SEP = '\u0000'

/**
 * Shared key/value state. `replace` overwrites a key (last writer wins); `merge` writes each field of an object
 * as its own entry (`<key>\u0000<field>` in the same map), so concurrent merges of different fields all survive.
 * Flat entries rather than a nested map per key: two replicas creating that nested map at once would each make
 * their own, and one whole map (with its fields) would lose.
 */
export class SharedState {
  private readonly core: SpaceCore
  /** key → its merged fields, so reads and replaces need not scan the whole map; built on first use. */
  private fieldIndex: Map<string, Set<string>> | undefined

  constructor(core: SpaceCore) {
    this.core = core
  }

  set(key: string, value: Json, options: { by: string; mode?: StateMode }): void {
    const k = this.checkKey(key)
    this.core.requireKind(options.by)
    const mode = options.mode ?? 'replace'
    if (mode !== 'merge' && mode !== 'replace') throw new ChorusError('invalid_input', `mode must be "merge" or "replace", got ${String(mode)}`)
    assertJson(value, 'state value')
    checkSize(`state value of "${k}"`, JSON.stringify(value), LIMITS.stateValue)
    if (mode === 'merge' && (value === null || typeof value !== 'object' || Array.isArray(value))) {
      throw new ChorusError('invalid_input', `merge mode needs an object value for "${k}"`)
    }
    const at = this.core.now()
    const state = this.core.state as Y.Map<StateEntry>
    this.core.transact(() => {
      if (mode === 'merge') {
        for (const [f, v] of Object.entries(value as Record<string, Json>)) state.set(`${k}${FIELD_SEP}${f}`, { v: copyJson(v), by: options.by, at })
      } else {
        this.dropFields(k)
        state.set(k, { v: copyJson(value), by: options.by, at })
      }
    })
  }

  get(key: string): Json | undefined {
    return this.read(key, this.fields(key))
  }

  /** Who last wrote a key (or one of its fields), and when. */
  author(key: string): { by: string; at: number } | undefined {
    let last: StateEntry | undefined
    for (const e of [this.entry(key), ...this.fields(key).values()]) {
      if (e !== undefined && (last === undefined || e.at > last.at || (e.at === last.at && e.by > last.by))) last = e
    }
    return last === undefined ? undefined : { by: last.by, at: last.at }
  }

  keys(): string[] {
    return Object.keys(this.all())
  }

  all(): Record<string, Json> {
    // One pass: group merged fields under their key.
    const fields = new Map<string, Map<string, StateEntry>>()
    const keys = new Set<string>()
    for (const [k, e] of this.core.state as Y.Map<StateEntry>) {
      const sep = k.indexOf(FIELD_SEP)
      if (sep < 0) {
        keys.add(k)
        continue
      }
      const key = k.slice(0, sep)
      keys.add(key)
      let f = fields.get(key)
      if (f === undefined) fields.set(key, (f = new Map<string, StateEntry>()))
      f.set(k.slice(sep + 1), e)
    }
    const out: Record<string, Json> = {}
    for (const key of [...keys].sort()) {
      const v = this.read(key, fields.get(key) ?? new Map<string, StateEntry>())
      if (v !== undefined) out[key] = v
    }
    return out
  }

  delete(key: string, options: { by: string }): void {
    const k = this.checkKey(key)
    this.core.requireKind(options.by)
    if (this.get(k) === undefined) throw new ChorusError('not_found', `no shared state named "${k}"`, { key: k })
    this.core.transact(() => {
      this.dropFields(k)
      ;(this.core.state as Y.Map<StateEntry>).set(k, { by: options.by, at: this.core.now(), deleted: true })
    })
  }

  /** The value of a key: its whole value, with merged fields laid over it when it is an object. */
  private read(key: string, fields: Map<string, StateEntry>): Json | undefined {
    const base = this.entry(key)
    const value = base === undefined || base.deleted === true ? undefined : (base.v ?? null)
    if (fields.size === 0) return copyJson(value)
    const out: Record<string, Json> = value !== null && typeof value === 'object' && !Array.isArray(value) ? copyJson(value) : {}
    // Sorted fields: map iteration follows local insertion order, which differs between replicas.
    for (const f of [...fields.keys()].sort()) out[f] = copyJson((fields.get(f) as StateEntry).v ?? null)
    return out
  }

  private entry(key: string): StateEntry | undefined {
    return (this.core.state as Y.Map<StateEntry>).get(key)
  }

  private fields(key: string): Map<string, StateEntry> {
    const out = new Map<string, StateEntry>()
    const state = this.core.state as Y.Map<StateEntry>
    for (const f of this.index().get(key) ?? []) {
      const e = state.get(`${key}${FIELD_SEP}${f}`)
      if (e !== undefined) out.set(f, e)
    }
    return out
  }

  private index(): Map<string, Set<string>> {
    if (this.fieldIndex !== undefined) return this.fieldIndex
    const index = new Map<string, Set<string>>()
    const note = (mapKey: string): void => {
      const sep = mapKey.indexOf(FIELD_SEP)
      if (sep < 0) return
      const key = mapKey.slice(0, sep)
      let set = index.get(key)
      if (set === undefined) index.set(key, (set = new Set()))
      // Kept even after a delete: `fields()` skips names whose entry is gone.
      set.add(mapKey.slice(sep + 1))
    }
    for (const k of this.core.state.keys()) note(k)
    this.core.state.observe((event) => {
      for (const k of event.keysChanged as Set<string>) note(k)
    })
    this.fieldIndex = index
    return index
  }

  /** Replacing or deleting a key drops the merged fields this replica knows of. */
  private dropFields(key: string): void {
    for (const f of this.fields(key).keys()) this.core.state.delete(`${key}${FIELD_SEP}${f}`)
  }

  private checkKey(key: string): string {
    if (typeof key !== 'string' || key.length === 0) throw new ChorusError('invalid_input', 'invalid state key: key must be a non-empty string')
    if (key.length > LIMITS.stateKeyLength) throw new ChorusError('invalid_input', `invalid state key: key must be at most ${LIMITS.stateKeyLength} characters`)
    if (key.trim() !== key || key.includes(FIELD_SEP)) throw new ChorusError('invalid_input', 'invalid state key: key must not start or end with whitespace or contain NUL')
    return key
  }
}
