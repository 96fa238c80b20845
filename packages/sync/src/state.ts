import * as Y from 'yjs'
import type { SpaceCore } from './core.ts'
import { ChorusError } from './errors.ts'
import { assertJson } from './json.ts'
import { LIMITS, type Json } from './schema.ts'
import { checkSize } from './validate.ts'

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

/**
 * Shared key/value state. `replace` overwrites a key (last writer wins); `merge` writes an object's fields into a
 * nested map, so concurrent merges of different fields both survive.
 */
export class SharedState {
  private readonly core: SpaceCore

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
    this.core.transact(() => {
      if (mode === 'merge') {
        let m = this.core.state.get(k)
        if (!(m instanceof Y.Map)) {
          m = new Y.Map<unknown>()
          this.core.state.set(k, m)
        }
        for (const [f, v] of Object.entries(value as Record<string, Json>)) (m as Y.Map<StateEntry>).set(f, { v, by: options.by, at })
      } else {
        this.core.state.set(k, { v: value, by: options.by, at } satisfies StateEntry)
      }
    })
  }

  get(key: string): Json | undefined {
    const v = this.core.state.get(key)
    if (v instanceof Y.Map) {
      // Sorted fields: a Y.Map iterates in local insertion order, which differs between replicas.
      const out: Record<string, Json> = {}
      for (const f of [...v.keys()].sort()) out[f] = (v.get(f) as StateEntry).v ?? null
      return out
    }
    const e = v as StateEntry | undefined
    return e === undefined || e.deleted === true ? undefined : (e.v ?? null)
  }

  /** Who last wrote a key, and when. */
  author(key: string): { by: string; at: number } | undefined {
    const v = this.core.state.get(key)
    if (v instanceof Y.Map) {
      let last: StateEntry | undefined
      for (const e of (v as Y.Map<StateEntry>).values()) if (last === undefined || e.at > last.at || (e.at === last.at && e.by > last.by)) last = e
      return last === undefined ? undefined : { by: last.by, at: last.at }
    }
    const e = v as StateEntry | undefined
    return e === undefined ? undefined : { by: e.by, at: e.at }
  }

  keys(): string[] {
    return [...this.core.state.keys()].filter((k) => this.get(k) !== undefined).sort()
  }

  all(): Record<string, Json> {
    const out: Record<string, Json> = {}
    for (const key of this.keys()) out[key] = this.get(key) as Json
    return out
  }

  delete(key: string, options: { by: string }): void {
    const k = this.checkKey(key)
    this.core.requireKind(options.by)
    if (this.get(k) === undefined) throw new ChorusError('not_found', `no shared state named "${k}"`, { key: k })
    this.core.transact(() => this.core.state.set(k, { by: options.by, at: this.core.now(), deleted: true } satisfies StateEntry))
  }

  private checkKey(key: string): string {
    if (typeof key !== 'string' || key.trim().length === 0) throw new ChorusError('invalid_input', 'invalid state key: key must be a non-empty string')
    const k = key.trim()
    if (k.length > LIMITS.stateKeyLength) throw new ChorusError('invalid_input', `invalid state key: key must be at most ${LIMITS.stateKeyLength} characters`)
    return k
  }
}
