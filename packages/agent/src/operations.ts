/**
 * The operations an agent performs in a space, each with its input schema. One list serves three doors: the MCP
 * tools (stdio and the relay's /mcp), the relay's HTTP agent API (`POST /agent/<operation>`) and the `chorus`
 * command. The schemas validate every input at the edge; the space validates again on write.
 */
import { z } from 'zod'
import {
  channelSchema,
  EVENT_TYPES,
  kindSchema,
  LIMITS,
  MAX_LEASE_MS,
  MIN_LEASE_MS,
  PRIORITIES,
  PROPOSAL_STATUSES,
  TASK_STATUSES,
  VOTES,
  type Json,
} from '@chorus/sync/vocabulary'

/**
 * The longest one wait_for may block: under the 60 s an MCP client waits for an answer by default, and under common
 * proxy timeouts. Waiting longer is waiting again (`RelayAgent` does it, carrying the event cursor over).
 */
export const MAX_WAIT_MS = 50_000

/** A missing field says so, rather than that undefined is not a string. */
const stringField = (what: string) => z.string({ error: (issue) => (issue.input === undefined ? `${what} is required` : `${what} must be a string`) })
const text = (what: string, max: number) =>
  stringField(what).trim().min(1, `${what} must not be empty`).max(max, `${what} must be at most ${max} characters`)
const leaseMs = (what: string) =>
  z
    .number({ error: `${what} must be a number of milliseconds` })
    .int(`${what} must be a whole number of milliseconds`)
    .min(MIN_LEASE_MS, `${what} must be at least ${MIN_LEASE_MS} ms`)
    .max(MAX_LEASE_MS, `${what} must be at most ${MAX_LEASE_MS} ms`)
// Inputs arrive as JSON, so any value is JSON; the space checks size and depth when it writes. (The replica's own
// jsonSchema is a custom check, which MCP cannot describe in JSON Schema.)
const anyJson = z
  .unknown()
  .refine((v) => v !== undefined, 'is required')
  .describe('Any JSON value') as z.ZodType<Json>
const id = (what: string) =>
  stringField(what)
    .min(1, `${what} must not be empty`)
    .max(LIMITS.idLength, `${what} must be at most ${LIMITS.idLength} characters`)
    .refine((s) => s.trim() === s, `${what} must not start or end with whitespace`)
const priority = z.enum(PRIORITIES, { error: `priority must be one of ${PRIORITIES.join(', ')}` })

export const OPERATIONS = {
  join: {
    description: 'Join the space as yourself (your participant id comes from your token or configuration), or update your name, kind and capabilities.',
    input: {
      name: text('name', LIMITS.nameLength).optional().describe('Display name (default: your id)'),
      kind: kindSchema.optional().describe('human, ai, computer or service (default ai, or the kind of your token)'),
      capabilities: z.array(text('capability', 100)).max(100).optional().describe('What you can do, e.g. ["python", "review"]'),
    },
  },
  send_message: {
    description: 'Send a message to a channel (default general) or directly to one participant.',
    input: {
      content: stringField('content').min(1, 'content must not be empty').describe('The message text'),
      channel: channelSchema.optional().describe('Channel: general, urgent, technical, strategic, ai-only, human-only, or any other'),
      to: id('to').optional().describe('A participant id, for a direct message'),
      priority: priority.optional().describe('low, normal (default), high or urgent'),
      reply_to: id('reply_to').optional().describe('Id of the message this answers'),
    },
  },
  read_inbox: {
    description: 'Read your unread messages (direct, and broadcasts on channels you read), oldest first. With ack, they are marked read and not returned again, across restarts.',
    input: {
      ack: z.boolean({ error: 'ack must be true or false' }).optional().describe('Mark the returned messages read'),
      limit: z.number().int().min(1).max(1000).optional().describe('At most this many (default all)'),
    },
  },
  wait_for: {
    description:
      'Block until there is something for you, or the timeout passes: for "message", an unread message in your inbox; for "task", an open task; for "event", the next event of the space (pass the cursor a timed-out wait returned as after, to miss none). Filters narrow it.',
    input: {
      for: z.enum(['message', 'task', 'event'], { error: 'for must be message, task or event' }).describe('What to wait for'),
      timeout_ms: z
        .number({ error: 'timeout_ms must be a number of milliseconds' })
        .int()
        .min(0)
        .max(MAX_WAIT_MS, `timeout_ms must be at most ${MAX_WAIT_MS}; to wait longer, wait again`)
        .describe(`Give up after this long (at most ${MAX_WAIT_MS} ms; to wait longer, wait again)`),
      type: z.enum(EVENT_TYPES, { error: `type must be one of ${EVENT_TYPES.join(', ')}` }).optional().describe('Events: only this type'),
      from: id('from').optional().describe('Only from (or, for events, caused by) this participant'),
      channel: channelSchema.optional().describe('Messages: only on this channel'),
      priority: priority.optional().describe('Messages and tasks: only this priority'),
      requires_human: z.boolean().optional().describe('Tasks: only those that do (true) or do not (false) need a human (default: what you may claim)'),
      after: id('after').optional().describe('Events: only those after this event id (the cursor a timed-out wait returned)'),
    },
  },
  create_task: {
    description: 'Create a task for someone to claim.',
    input: {
      title: text('title', LIMITS.titleLength),
      description: z.string().max(LIMITS.description).optional(),
      priority: priority.optional(),
      requires_human: z.boolean().optional().describe('Only a human may claim it'),
    },
  },
  list_tasks: {
    description: 'List tasks, optionally by status.',
    input: { status: z.enum(TASK_STATUSES, { error: `status must be one of ${TASK_STATUSES.join(', ')}` }).optional() },
  },
  claim_task: {
    description: 'Claim a task: a lease from the relay that nobody else can hold meanwhile. Returns the fencing token and when the claim expires; renew it before then.',
    input: { task_id: id('task_id').describe('The task'), duration_ms: leaseMs('duration_ms').optional().describe('How long the claim lasts (default 60000)') },
  },
  renew_claim: {
    description: 'Renew your claim on a task before it expires.',
    input: { task_id: id('task_id'), duration_ms: leaseMs('duration_ms').optional() },
  },
  release_claim: {
    description: 'Give a claimed task back, open for others.',
    input: { task_id: id('task_id') },
  },
  complete_task: {
    description: 'Complete a task you hold the claim on, with an optional JSON result.',
    input: { task_id: id('task_id'), result: anyJson.optional() },
  },
  create_proposal: {
    description: 'Propose something for the space to vote on.',
    input: {
      title: text('title', LIMITS.titleLength),
      description: z.string().max(LIMITS.description).optional(),
      threshold: z.number().gt(0).max(1).optional().describe('Share of for-votes among for+against needed (default 0.75)'),
      quorum: z.number().int().min(1).optional().describe('Votes needed before it can pass (default 1)'),
      deadline_ms: z.number().int().positive().optional().describe('Closes at this time (ms since 1970)'),
    },
  },
  vote: {
    description: 'Vote on a proposal; voting again changes your vote.',
    input: { proposal_id: id('proposal_id'), vote: z.enum(VOTES, { error: `vote must be one of ${VOTES.join(', ')}` }) },
  },
  list_proposals: {
    description: 'List proposals with their tallies, optionally by status.',
    input: { status: z.enum(PROPOSAL_STATUSES, { error: `status must be one of ${PROPOSAL_STATUSES.join(', ')}` }).optional() },
  },
  get_state: {
    description: 'Read the shared state: one key, or all of it.',
    input: { key: text('key', LIMITS.stateKeyLength).optional() },
  },
  set_state: {
    description: 'Set a key of the shared state to a JSON value (merge: combine object fields with what is there).',
    input: {
      key: text('key', LIMITS.stateKeyLength),
      value: anyJson,
      mode: z.enum(['replace', 'merge'], { error: 'mode must be replace or merge' }).optional(),
    },
  },
  list_participants: {
    description: 'Who is in the space: kind, presence (online, idle, offline), last seen and what each is working on.',
    input: {},
  },
  lock_resource: {
    description: 'Lock a shared resource (by name or id; created, empty, if no resource has that name). Returns the fencing token and expiry.',
    input: {
      resource: text('resource', LIMITS.nameLength).describe('Resource name or id'),
      timeout_ms: leaseMs('timeout_ms').optional().describe('Unlocked automatically after this long (default 300000)'),
    },
  },
  unlock_resource: {
    description: 'Unlock a resource you hold the lock on.',
    input: { resource: text('resource', LIMITS.nameLength) },
  },
  report: {
    description: "The space's activity report as text: participants, tasks, proposals, recent messages.",
    input: {},
  },
} as const

export type OperationName = keyof typeof OPERATIONS
export const OPERATION_NAMES = Object.keys(OPERATIONS) as OperationName[]

type Shape<N extends OperationName> = (typeof OPERATIONS)[N]['input']
/** The validated input of an operation. */
export type Input<N extends OperationName> = z.infer<z.ZodObject<Shape<N>>>

const objects = new Map<OperationName, z.ZodObject>()
/** The input schema of `name` as one object (strict: unknown fields are refused). */
export const inputSchema = <N extends OperationName>(name: N): z.ZodObject<Shape<N>> => {
  let schema = objects.get(name)
  if (schema === undefined) {
    schema = z.strictObject(OPERATIONS[name].input)
    objects.set(name, schema)
  }
  return schema
}

export const isOperation = (name: string): name is OperationName => Object.hasOwn(OPERATIONS, name)
