/**
 * The bodies the coordination hub's REST routes take (hub-routes.ts), as zod schemas. Each field's messages name
 * it, so a 400 says which one was wrong.
 */
import { z } from 'zod'
import { channelSchema, jsonSchema, LIMITS, PRIORITIES, VOTES } from '@chorus/sync'
import { ENTITY_TYPES, kindOfEntityType } from './hub-mapping.ts'

const required = (field: string, what: string) => (issue: { input: unknown }) =>
  issue.input === undefined ? `${field} is required` : `${field} must be ${what}`

const idField = (field: string) =>
  z
    .string({ error: required(field, 'a string') })
    .min(1, `${field} must not be empty`)
    .max(LIMITS.idLength, `${field} must be at most ${LIMITS.idLength} characters`)
    .refine((s) => s.trim() === s, `${field} must not start or end with whitespace`)

const textField = (field: string) => z.string({ error: required(field, 'a string') })

/** Case-insensitive, as the hubs took `NORMAL` and `normal` alike; `medium` is read as `normal`. */
const priorityField = z
  .string({ error: `priority must be one of ${PRIORITIES.join(', ')}` })
  .transform((s) => (s.trim().toLowerCase() === 'medium' ? 'normal' : s.trim().toLowerCase()))
  .pipe(z.enum(PRIORITIES, { error: `priority must be one of ${PRIORITIES.join(', ')}` }))

const channelField = z.string({ error: 'channel must be a string' }).pipe(channelSchema)

export const registerSchema = z.object({
  entity_id: idField('entity_id'),
  entity_type: z
    .string({ error: required('entity_type', `one of ${ENTITY_TYPES.join(', ')}`) })
    .refine((s) => kindOfEntityType(s) !== undefined, `entity_type must be one of ${ENTITY_TYPES.join(', ')}`),
  name: z.string({ error: required('name', 'a string') }).trim().min(1, 'name must not be empty').max(LIMITS.nameLength),
  capabilities: z.array(z.string({ error: 'capabilities must be strings' }), { error: 'capabilities must be an array of strings' }).nullish(),
  metadata: z.record(z.string(), jsonSchema, { error: 'metadata must be an object of JSON values' }).nullish(),
})

export const heartbeatSchema = z.object({
  /** What the entity is working on, shown in presence. */
  current_task: z.string({ error: 'current_task must be a string' }).max(LIMITS.titleLength).nullish(),
})

export const sendSchema = z.object({
  sender_id: idField('sender_id'),
  content: textField('content').refine((s) => s.trim().length > 0, 'content must not be empty'),
  channel: channelField.nullish(),
  recipient_id: idField('recipient_id').nullish(),
  priority: priorityField.nullish(),
  reply_to: idField('reply_to').nullish(),
})

export const createTaskSchema = z.object({
  title: textField('title').trim().min(1, 'title must not be empty').max(LIMITS.titleLength, `title must be at most ${LIMITS.titleLength} characters`),
  description: z.string({ error: 'description must be a string' }).nullish(),
  priority: priorityField.nullish(),
  requires_human: z.boolean({ error: 'requires_human must be true or false' }).nullish(),
  created_by: idField('created_by').nullish(),
})

export const claimSchema = z.object({
  entity_id: idField('entity_id'),
  duration_ms: z.number({ error: 'duration_ms must be a number of milliseconds' }).int('duration_ms must be a whole number').nullish(),
})

export const completeSchema = z.object({
  entity_id: idField('entity_id'),
  result: jsonSchema.nullish(),
})

export const releaseSchema = z.object({ entity_id: idField('entity_id') })

const deadlineField = z.union(
  [
    z.number().int().positive(),
    z
      .string()
      .refine((s) => !Number.isNaN(Date.parse(s)))
      .transform((s) => Date.parse(s)),
  ],
  { error: 'deadline must be an ISO 8601 date or milliseconds since 1970' },
)

export const createProposalSchema = z.object({
  title: textField('title').trim().min(1, 'title must not be empty').max(LIMITS.titleLength, `title must be at most ${LIMITS.titleLength} characters`),
  description: z.string({ error: 'description must be a string' }).nullish(),
  created_by: idField('created_by'),
  threshold: z.number({ error: 'threshold must be a number' }).gt(0, 'threshold must be above 0').max(1, 'threshold must be at most 1').nullish(),
  quorum: z.number({ error: 'quorum must be a number' }).int('quorum must be a whole number').min(1, 'quorum must be at least 1').nullish(),
  deadline: deadlineField.nullish(),
})

export const voteSchema = z.object({
  entity_id: idField('entity_id'),
  vote: z
    .string({ error: required('vote', `one of ${VOTES.join(', ')}`) })
    .transform((s) => s.trim().toLowerCase())
    .pipe(z.enum(VOTES, { error: `vote must be one of ${VOTES.join(', ')}` })),
})
