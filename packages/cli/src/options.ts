/**
 * Reading the command line: flags win over environment variables, which win over defaults. Durations are written
 * `30s`, `5m`, `2h` or `1500ms`; a bare number is seconds.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { UsageError } from './exit-codes.ts'

export const DEFAULT_RELAY = 'http://127.0.0.1:8550'
export const DEFAULT_SPACE = 'default'

/** Where and as whom: `--relay`, `--space`, `--id`, `--token`, or CHORUS_RELAY, CHORUS_SPACE, CHORUS_ID, CHORUS_TOKEN. */
export interface Connection {
  relay: string
  space: string
  id: string | undefined
  token: string | undefined
  json: boolean
}

type Options = NonNullable<ParseArgsConfig['options']>

export const GLOBAL_OPTIONS = {
  relay: { type: 'string' },
  space: { type: 'string' },
  id: { type: 'string' },
  token: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies Options

export type Values = Record<string, string | boolean | undefined>

/** Parses `args` with the global options and `options`; unknown flags and missing values are usage errors. */
export function parse(args: readonly string[], options: Options): { values: Values; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({ args: [...args], options: { ...GLOBAL_OPTIONS, ...options }, allowPositionals: true, strict: true })
    return { values: values, positionals }
  } catch (e) {
    throw new UsageError(e instanceof Error ? e.message : String(e))
  }
}

export function connection(values: Values, env: Readonly<Record<string, string | undefined>>): Connection {
  const pick = (flag: string, name: string): string | undefined => {
    const v = values[flag]
    if (typeof v === 'string') return v
    const e = env[name]
    return e === undefined || e === '' ? undefined : e
  }
  return {
    relay: pick('relay', 'CHORUS_RELAY') ?? DEFAULT_RELAY,
    space: pick('space', 'CHORUS_SPACE') ?? DEFAULT_SPACE,
    id: pick('id', 'CHORUS_ID'),
    token: pick('token', 'CHORUS_TOKEN'),
    json: values.json === true,
  }
}

export function durationMs(text: string, what: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim())
  if (m === null) throw new UsageError(`${what} must be a duration such as 30s, 5m, 2h or 1500ms (a bare number is seconds), not "${text}"`)
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h']
  return Math.round(Number(m[1]) * unit)
}

export const stringOf = (values: Values, name: string): string | undefined => {
  const v = values[name]
  return typeof v === 'string' ? v : undefined
}

export function integerOf(values: Values, name: string): number | undefined {
  const v = stringOf(values, name)
  if (v === undefined) return undefined
  if (!/^\d+$/.test(v)) throw new UsageError(`--${name} must be a whole number, not "${v}"`)
  return Number(v)
}

export function numberOf(values: Values, name: string): number | undefined {
  const v = stringOf(values, name)
  if (v === undefined) return undefined
  const n = Number(v)
  if (v.trim() === '' || !Number.isFinite(n)) throw new UsageError(`--${name} must be a number, not "${v}"`)
  return n
}

/** A value given on the command line: JSON if it parses as JSON, else the text itself. */
export function jsonOrText(text: string): unknown {
  try {
    return JSON.parse(text) as unknown
  } catch {
    return text
  }
}

/** A time as ISO 8601 or milliseconds since 1970. */
export function timeOf(text: string, what: string): number {
  const n = /^\d+$/.test(text) ? Number(text) : Date.parse(text)
  if (!Number.isFinite(n)) throw new UsageError(`${what} must be an ISO 8601 time or milliseconds since 1970, not "${text}"`)
  return n
}
