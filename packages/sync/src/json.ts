import { ChorusError } from './errors.ts'

/**
 * A deep copy of a JSON value. Yjs keeps the very object it is given and views return what Yjs holds, so
 * values are copied on the way in and out: a caller mutating its object later cannot change one replica's
 * document behind the CRDT's back (which would make replicas differ for good).
 */
export const copyJson = <T>(value: T): T => {
  // Hand-written rather than structuredClone: for the small objects of state and results it is several times faster.
  if (value === null || typeof value !== 'object') return value
  if (Array.isArray(value)) return value.map(copyJson) as T
  const out: Record<string, unknown> = {}
  for (const k of Object.keys(value)) out[k] = copyJson((value as Record<string, unknown>)[k])
  return out as T
}

/**
 * Throws `invalid_input` unless `value` is plain JSON (finite numbers, no undefined, functions, class
 * instances or cycles). Hand-written because it runs on every write and a schema library walks slower.
 */
export const assertJson = (value: unknown, what: string, depth = 0): void => {
  if (depth > 64) throw new ChorusError('invalid_input', `${what} is nested deeper than 64 levels`)
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return
    case 'number':
      if (!Number.isFinite(value)) throw new ChorusError('invalid_input', `${what} contains a non-finite number`)
      return
    case 'object': {
      if (value === null) return
      if (Array.isArray(value)) {
        for (const v of value) assertJson(v, what, depth + 1)
        return
      }
      const proto = Object.getPrototypeOf(value) as unknown
      if (proto !== Object.prototype && proto !== null) throw new ChorusError('invalid_input', `${what} contains a non-plain object`)
      for (const v of Object.values(value)) assertJson(v, what, depth + 1)
      return
    }
    default:
      throw new ChorusError('invalid_input', `${what} contains a ${typeof value}, which is not JSON`)
  }
}
