import * as Y from 'yjs'
import type { SpaceCore } from './core.ts'
import { ChorusError } from './errors.ts'
import { LIMITS, type Json } from './schema.ts'
import { checkSize, idSchema, parse } from './validate.ts'
import { assertJson } from './json.ts'

export type StateMode = 'merge' | 'replace'

/** Values at most this long (JSON) are copied into the `state_update` event; larger ones are only referenced. */
const EVENT_VALUE_LIMIT = 1024

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
    this.core.requireParticipant(options.by)
    const mode = options.mode ?? 'replace'
    if (mode !== 'merge' && mode !== 'replace') throw new ChorusError('invalid_input', `mode must be "merge" or "replace", got ${String(mode)}`)
    assertJson(value, 'state value')
    const json = JSON.stringify(value)
    checkSize(`state value of "${k}"`, json, LIMITS.stateValue)
    if (mode === 'merge' && (value === null || typeof value !== 'object' || Array.isArray(value))) {
      throw new ChorusError('invalid_input', `merge mode needs an object value for "${k}"`)
    }
    const now = this.core.now()
    this.core.transact(() => {
      if (mode === 'merge') {
        let m = this.core.state.get(k)
        if (!(m instanceof Y.Map)) {
          m = new Y.Map<unknown>()
          this.core.state.set(k, m)
        }
        for (const [f, v] of Object.entries(value as Record<string, Json>)) (m as Y.Map<unknown>).set(f, v)
      } else {
        this.core.state.set(k, value)
      }
      const data: Record<string, Json> = { key: k, mode }
      if (json.length <= EVENT_VALUE_LIMIT) data.value = value
      this.core.record({ type: 'state_update', by: options.by, ref: k, data }, now)
    })
  }

  get(key: string): Json | undefined {
    const v = this.core.state.get(key)
    if (!(v instanceof Y.Map)) return v as Json | undefined
    // Sorted fields: a Y.Map iterates in local insertion order, which differs between replicas.
    const out: Record<string, Json> = {}
    for (const f of [...v.keys()].sort()) out[f] = v.get(f) as Json
    return out
  }

  all(): Record<string, Json> {
    const out: Record<string, Json> = {}
    for (const key of [...this.core.state.keys()].sort()) out[key] = this.get(key) as Json
    return out
  }

  delete(key: string, options: { by: string }): void {
    const k = this.checkKey(key)
    this.core.requireParticipant(options.by)
    if (!this.core.state.has(k)) throw new ChorusError('not_found', `no shared state named "${k}"`, { key: k })
    this.core.transact(() => {
      this.core.state.delete(k)
      this.core.record({ type: 'state_update', by: options.by, ref: k, data: { key: k, mode: 'delete' } })
    })
  }

  private checkKey(key: string): string {
    const k = parse(idSchema, key, 'state key')
    if (k.length > LIMITS.stateKeyLength) throw new ChorusError('invalid_input', `state key is longer than ${LIMITS.stateKeyLength} characters`)
    return k
  }
}
