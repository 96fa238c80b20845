import { z } from 'zod'
import { ChorusError } from './errors.ts'
import { assertJson } from './json.ts'
import { LIMITS, PARTICIPANT_KINDS, PRIORITIES, type Json } from './schema.ts'

const encoder = new TextEncoder()

/** UTF-8 length without encoding when the string is surely short enough. */
export const utf8Length = (s: string, limit: number): number => (s.length * 3 <= limit ? s.length : encoder.encode(s).length)

/** Throws `too_large` when `text` is over `limit` bytes of UTF-8. */
export const checkSize = (what: string, text: string, limit: number): void => {
  const n = utf8Length(text, limit)
  if (n > limit) throw new ChorusError('too_large', `${what} is ${n} bytes; the limit is ${limit} bytes`, { limit, size: n })
}

/** Throws `too_large` when the JSON form of `value` is over `limit` bytes. */
export const checkJsonSize = (what: string, value: unknown, limit: number): void => {
  checkSize(what, JSON.stringify(value) ?? '', limit)
}

const nonEmpty = (what: string, max: number) =>
  z.string({ error: `${what} must be a string` }).trim().min(1, `${what} must not be empty`).max(max, `${what} must be at most ${max} characters`)

/** Ids are used as map keys and lease keys, so they are taken exactly as given: no surrounding whitespace. */
export const idSchema = z
  .string({ error: 'id must be a string' })
  .min(1, 'id must not be empty')
  .max(LIMITS.idLength, `id must be at most ${LIMITS.idLength} characters`)
  .refine((s) => s.trim() === s, 'id must not start or end with whitespace')
export const nameSchema = nonEmpty('name', LIMITS.nameLength)
export const channelSchema = z
  .string({ error: 'channel must be a string' })
  .regex(
    new RegExp(`^[a-z0-9][a-z0-9_.-]{0,${LIMITS.channelLength - 1}}$`),
    `channel must be 1-${LIMITS.channelLength} characters of a-z, 0-9, "_", "." or "-", starting with a letter or digit`,
  )
export const kindSchema = z.enum(PARTICIPANT_KINDS, { error: `kind must be one of ${PARTICIPANT_KINDS.join(', ')}` })
export const prioritySchema = z.enum(PRIORITIES, { error: `priority must be one of ${PRIORITIES.join(', ')}` })

/**
 * Plain JSON nested at most 64 levels. Checked by `assertJson` rather than a recursive zod schema, which recurses
 * several frames per level and overflows the stack on a few kilobytes of `[[[[...]]]]`.
 */
export const jsonSchema: z.ZodType<Json> = z.custom<Json>((v) => {
  try {
    assertJson(v, 'value')
    return true
  } catch {
    return false
  }
}, 'must be plain JSON (finite numbers, nested at most 64 levels)')

/** Parses `input` with `schema`, turning zod's issues into one readable `invalid_input` error. */
export const parse = <T>(schema: z.ZodType<T>, input: unknown, what: string): T => {
  const result = schema.safeParse(input)
  if (result.success) return result.data
  const issues = result.error.issues.map((i) => (i.path.length > 0 ? `${i.path.join('.')}: ${i.message}` : i.message))
  throw new ChorusError('invalid_input', `invalid ${what}: ${issues.join('; ')}`, { issues })
}

/**
 * The check `idSchema` makes, by hand: ids are validated on every write, and this keeps them off the schema
 * library's slower path.
 */
export const checkId = (value: unknown, what: string): string => {
  if (typeof value !== 'string') throw new ChorusError('invalid_input', `invalid ${what}: id must be a string`)
  if (value.length === 0) throw new ChorusError('invalid_input', `invalid ${what}: id must not be empty`)
  if (value.length > LIMITS.idLength) throw new ChorusError('invalid_input', `invalid ${what}: id must be at most ${LIMITS.idLength} characters`)
  if (value.trim() !== value) throw new ChorusError('invalid_input', `invalid ${what}: id must not start or end with whitespace`)
  return value
}

/** Checks that `value` is one of `allowed`, with the same message the schemas give. */
export const checkOneOf = <T extends string>(value: unknown, allowed: readonly T[], what: string): T => {
  if (typeof value === 'string' && (allowed as readonly string[]).includes(value)) return value as T
  throw new ChorusError('invalid_input', `invalid ${what}: ${what} must be one of ${allowed.join(', ')}`)
}
