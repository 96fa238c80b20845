/** Reading what a REST request names: its space, and a body checked against a zod schema. */
import type { z } from 'zod'
import { ChorusError } from '@chorus/sync'
import { checkSpaceName } from '../spaces.ts'
import type { RequestContext } from './http.ts'

/** The space of a route: `{space}` from `/spaces/{space}/...`, or the default one. Restricted documents are refused. */
export function spaceParam(ctx: RequestContext, defaultSpace: string): string {
  const space = ctx.params.space ?? defaultSpace
  const invalid = checkSpaceName(space)
  if (invalid !== null) throw new ChorusError('invalid_input', invalid, { space })
  if (space.includes('#')) throw new ChorusError('invalid_input', `"${space}" names a restricted-channel document, not a space`)
  return space
}

/** Parses a JSON body; the first problem becomes a 400 naming the field. */
export function parseBody<T extends z.ZodType>(schema: T, body: unknown): z.infer<T> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new ChorusError('invalid_input', 'the request body must be a JSON object')
  const result = schema.safeParse(body)
  if (result.success) return result.data
  const issue = result.error.issues[0]
  const field = issue?.path.join('.') ?? ''
  throw new ChorusError('invalid_input', `${field === '' ? '' : `${field}: `}${issue?.message ?? 'invalid request body'}`, field === '' ? {} : { field })
}
