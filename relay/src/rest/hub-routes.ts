/**
 * The coordination hub's REST API (docs/HUBS.md), kept working unchanged on the relay, on the default space and the
 * same under `/spaces/<space>/...`. Every route acts in a hosted space through the typed `Space` API, so what a
 * REST client does reaches sync clients and `/ws` streams at once, and the other way round. JSON in and out;
 * errors are `{error, message, details?}` with the status of their code (http.ts). Shapes are in hub-mapping.ts:
 * times are ISO 8601 strings, durations `*_ms`.
 *
 * | route | body / query | answer |
 * |---|---|---|
 * | `POST /entities/register` | `{entity_id, entity_type, name, capabilities?, metadata?}` | `{status:'registered', entity}` |
 * | `GET /entities/list` | | `{entities, count}` |
 * | `POST /entities/{id}/heartbeat` | `{current_task?}` | `{status:'ok', entity_id, presence, last_seen}` |
 * | `POST /messages/send` | `{sender_id, content, channel='general', recipient_id?, priority='normal', reply_to?}` | `{status:'sent', message}` |
 * | `GET /messages/recent` | `?channel ?limit ?entity_id` | `{messages, count}` |
 * | `GET /messages/for/{entity_id}` | `?channel ?limit` | `{entity_id, messages, count}` |
 * | `POST /tasks/create` | `{title, description?, priority?, requires_human?, created_by?}` | `{status:'created', task_id, task}` |
 * | `GET /tasks/list` | `?status=open\|claimed\|completed` | `{tasks, count}` |
 * | `POST /tasks/{id}/claim` | `{entity_id, duration_ms?}` (default 60 s) | `{status:'claimed', task, lease: {token, duration_ms, grant}}` |
 * | `POST /tasks/{id}/renew` | `{entity_id, duration_ms?}` | `{status:'renewed', task, lease}` |
 * | `POST /tasks/{id}/release` | `{entity_id}` | `{status:'released', task}` |
 * | `POST /tasks/{id}/complete` | `{entity_id, result?}` | `{status:'completed', task}` |
 * | `POST /proposals/create` | `{title, description?, created_by, threshold?=0.75, quorum?=1, deadline?}` | `{status:'created', proposal_id, proposal}` |
 * | `POST /proposals/{id}/vote` | `{entity_id, vote: for\|against\|abstain}` | `{status:'voted', vote, proposal}` |
 * | `GET /proposals/list` | `?status=open\|approved\|rejected\|expired` | `{proposals, count}` |
 * | `GET /state` | | `{space, schema, state, summary: {participants, tasks, proposals, resources}}` |
 * | `GET /dependencies` | | `{status: ok\|degraded, space, relay, dependencies: {<part>: {status, version?, detail?, ...}}}` |
 *
 * Words: `entity_type` is any of human, ai_agent, ai_instance, session, computer, service (or Chorus's ai), in
 * any case; `priority` low, normal, high, urgent in any case (`medium` reads as normal); `deadline` an ISO date or
 * ms since 1970.
 *
 * Who acts: a body names the acting entity (`sender_id`, `entity_id`, `created_by`); with tokens it must be the
 * token's participant, registered with the token's kind. `POST /tasks/create` without `created_by` is created by
 * the token's participant, or in open mode by the relay's own `coordination-hub` service participant (joined on
 * first use), since the hub's create-task script names no creator. Claims made over REST are not renewed by the
 * relay: they run `duration_ms` unless renewed, so a client that goes away frees its tasks.
 *
 * Reading messages: `GET /messages/recent` is the public feed (broadcasts on open channels) unless it names a
 * reader (`?entity_id=`; with tokens, always the token's participant), who also sees its own direct messages (sent
 * and received) and the restricted channel of its kind. `GET /messages/for/<id>` is that reader's view. `?limit`
 * is 1..1000 (default 50; larger values are capped at 1000): the newest `limit` messages, oldest first.
 */
import { createRequire } from 'node:module'
import type { IncomingMessage } from 'node:http'
import { DatabaseSync } from 'node:sqlite'
import { z } from 'zod'
import {
  ChorusError,
  jsonSchema,
  LIMITS,
  PRIORITIES,
  PROPOSAL_STATUSES,
  SCHEMA_VERSION,
  TASK_STATUSES,
  VOTES,
  channelSchema,
  type Json,
  type LeaseGrant,
  type Participant,
  type ParticipantKind,
  type ProposalStatus,
  type RecordedGrant,
  type Space,
  type TaskStatus,
} from '@chorus/sync'
import { checkActingAs, checkSpaceAccess, type Caller } from '../auth.ts'
import type { HostedSpaces } from '../hosted-spaces.ts'
import type { RequestContext, Router } from './http.ts'
import {
  ENTITY_TYPE_KEY,
  ENTITY_TYPES,
  entityView,
  kindOfEntityType,
  iso,
  mayRead,
  mayReadChannel,
  restrictedTo,
  messageView,
  proposalView,
  taskView,
  type HubMessage,
  type Viewer,
} from './hub-mapping.ts'
import { parseBody, spaceParam } from './params.ts'
import { packageVersionAt, RELAY_VERSION } from '../version.ts'

/** What `GET /dependencies` reports for one part. */
export interface DependencyStatus {
  status: 'ok' | 'error'
  version?: string
  detail?: string
  [field: string]: Json | undefined
}

export interface HubRoutesContext {
  spaces: HostedSpaces
  caller: (req: IncomingMessage) => Caller
  defaultSpace: string
}

/** The participant that creates tasks for open-mode clients that name no creator. */
export const HUB_PARTICIPANT = { id: 'coordination-hub', name: 'Coordination hub', kind: 'service' } as const

export const DEFAULT_MESSAGE_LIMIT = 50
export const MAX_MESSAGE_LIMIT = 1000

// Body schemas. Each field's messages name it, so a 400 says which one was wrong.

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

const registerSchema = z.object({
  entity_id: idField('entity_id'),
  entity_type: z
    .string({ error: required('entity_type', `one of ${ENTITY_TYPES.join(', ')}`) })
    .refine((s) => kindOfEntityType(s) !== undefined, `entity_type must be one of ${ENTITY_TYPES.join(', ')}`),
  name: z.string({ error: required('name', 'a string') }).trim().min(1, 'name must not be empty').max(LIMITS.nameLength),
  capabilities: z.array(z.string({ error: 'capabilities must be strings' }), { error: 'capabilities must be an array of strings' }).nullish(),
  metadata: z.record(z.string(), jsonSchema, { error: 'metadata must be an object of JSON values' }).nullish(),
})

const heartbeatSchema = z.object({
  /** What the entity is working on, shown in presence. */
  current_task: z.string({ error: 'current_task must be a string' }).max(LIMITS.titleLength).nullish(),
})

const sendSchema = z.object({
  sender_id: idField('sender_id'),
  content: textField('content').refine((s) => s.trim().length > 0, 'content must not be empty'),
  channel: channelField.nullish(),
  recipient_id: idField('recipient_id').nullish(),
  priority: priorityField.nullish(),
  reply_to: idField('reply_to').nullish(),
})

const createTaskSchema = z.object({
  title: textField('title').trim().min(1, 'title must not be empty').max(LIMITS.titleLength, `title must be at most ${LIMITS.titleLength} characters`),
  description: z.string({ error: 'description must be a string' }).nullish(),
  priority: priorityField.nullish(),
  requires_human: z.boolean({ error: 'requires_human must be true or false' }).nullish(),
  created_by: idField('created_by').nullish(),
})

const claimSchema = z.object({
  entity_id: idField('entity_id'),
  duration_ms: z.number({ error: 'duration_ms must be a number of milliseconds' }).int('duration_ms must be a whole number').nullish(),
})

const completeSchema = z.object({
  entity_id: idField('entity_id'),
  result: jsonSchema.nullish(),
})

const releaseSchema = z.object({ entity_id: idField('entity_id') })

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

const createProposalSchema = z.object({
  title: textField('title').trim().min(1, 'title must not be empty').max(LIMITS.titleLength, `title must be at most ${LIMITS.titleLength} characters`),
  description: z.string({ error: 'description must be a string' }).nullish(),
  created_by: idField('created_by'),
  threshold: z.number({ error: 'threshold must be a number' }).gt(0, 'threshold must be above 0').max(1, 'threshold must be at most 1').nullish(),
  quorum: z.number({ error: 'quorum must be a number' }).int('quorum must be a whole number').min(1, 'quorum must be at least 1').nullish(),
  deadline: deadlineField.nullish(),
})

const voteSchema = z.object({
  entity_id: idField('entity_id'),
  vote: z
    .string({ error: required('vote', `one of ${VOTES.join(', ')}`) })
    .transform((s) => s.trim().toLowerCase())
    .pipe(z.enum(VOTES, { error: `vote must be one of ${VOTES.join(', ')}` })),
})

/** The caller and the space a request names, once the caller may use that space. */
function authorize(ctx: RequestContext, context: HubRoutesContext): { caller: Caller; name: string } {
  const caller = context.caller(ctx.req)
  const name = spaceParam(ctx, context.defaultSpace)
  checkSpaceAccess(caller, name)
  return { caller, name }
}

/** Runs `fn` in the hosted space `name`, released whatever happens. */
async function using<T>(context: HubRoutesContext, name: string, fn: (space: Space) => T | Promise<T>): Promise<T> {
  const hosted = await context.spaces.use(name)
  try {
    return await fn(hosted.space)
  } finally {
    hosted.release()
  }
}

/** A route without a body, in the request's space. */
function inSpace<T>(context: HubRoutesContext, fn: (space: Space, caller: Caller, ctx: RequestContext, name: string) => T | Promise<T>) {
  return (ctx: RequestContext): Promise<T> => {
    const { caller, name } = authorize(ctx, context)
    return using(context, name, (space) => fn(space, caller, ctx, name))
  }
}

/** A route whose body is parsed with `schema` (a bad one refused) before its space is loaded. */
function withBody<S extends z.ZodType, T>(
  context: HubRoutesContext,
  schema: S,
  fn: (space: Space, body: z.infer<S>, caller: Caller, ctx: RequestContext) => T | Promise<T>,
) {
  return async (ctx: RequestContext): Promise<T> => {
    const { caller, name } = authorize(ctx, context)
    const body = parseBody(schema, await ctx.body())
    return using(context, name, (space) => fn(space, body, caller, ctx))
  }
}

/**
 * The participant `id` acting through the caller: with tokens only the token's own participant, registered
 * with the token's kind. Throws not_found when it has not registered.
 */
function actingAs(space: Space, caller: Caller, id: string): Participant {
  checkActingAs(caller, id)
  const p = space.participants.get(id)
  if (p === undefined) throw new ChorusError('not_found', `unknown entity "${id}"; register it first (POST /entities/register)`, { entity_id: id })
  if (!caller.open && p.kind !== caller.identity.kind) {
    throw new ChorusError('forbidden', `${id} is registered as ${p.kind}, but this token is for a ${caller.identity.kind}`)
  }
  return p
}

/**
 * A route on one task, acted on by the entity its body names (`entity_id`): the task must exist and the entity
 * act through the caller before `fn` runs.
 */
function onTask<S extends z.ZodType<{ entity_id: string }>, T>(
  context: HubRoutesContext,
  schema: S,
  fn: (space: Space, id: string, body: z.infer<S>) => T | Promise<T>,
) {
  return withBody(context, schema, (space, body, caller, ctx) => {
    const id = ctx.params.id as string
    space.tasks.require(id)
    actingAs(space, caller, body.entity_id)
    return fn(space, id, body)
  })
}

const queryParam = (ctx: RequestContext, name: string): string | undefined => ctx.url.searchParams.get(name) ?? undefined

function limitParam(ctx: RequestContext): number {
  const raw = queryParam(ctx, 'limit')
  if (raw === undefined || raw === '') return DEFAULT_MESSAGE_LIMIT
  if (!/^\d+$/.test(raw) || Number(raw) < 1) throw new ChorusError('invalid_input', `limit must be a whole number from 1 to ${MAX_MESSAGE_LIMIT}`, { field: 'limit' })
  return Math.min(Number(raw), MAX_MESSAGE_LIMIT)
}

function channelParam(ctx: RequestContext, viewer: Viewer | undefined): string | undefined {
  const channel = queryParam(ctx, 'channel')
  if (channel === undefined) return undefined
  const parsed = channelSchema.safeParse(channel)
  if (!parsed.success) throw new ChorusError('invalid_input', parsed.error.issues[0]?.message ?? 'invalid channel', { field: 'channel' })
  if (!mayReadChannel(viewer?.kind, channel)) {
    const only = restrictedTo(channel)
    throw new ChorusError(
      'forbidden',
      viewer === undefined
        ? `${channel} is for ${only} participants; name one with ?entity_id=<id>`
        : `${channel} is for ${only} participants; ${viewer.id} is ${viewer.kind}`,
      { channel },
    )
  }
  return channel
}

function statusParam<T extends string>(ctx: RequestContext, allowed: readonly T[]): T | undefined {
  const raw = queryParam(ctx, 'status')
  if (raw === undefined) return undefined
  if (!(allowed as readonly string[]).includes(raw)) throw new ChorusError('invalid_input', `status must be one of ${allowed.join(', ')}`, { field: 'status' })
  return raw as T
}

/** The newest `limit` messages `viewer` may read (of one channel if given), oldest first. */
function visibleMessages(space: Space, viewer: Viewer | undefined, channel: string | undefined, limit: number): HubMessage[] {
  const all = space.messages.all()
  const out: HubMessage[] = []
  for (let i = all.length - 1; i >= 0 && out.length < limit; i--) {
    const m = all[i]
    if (m === undefined || (channel !== undefined && m.channel !== channel) || !mayRead(viewer, m)) continue
    out.push(messageView(m))
  }
  return out.reverse()
}

/**
 * A claim as the holder needs it: its fencing token, how long it runs from when it was asked for, and the signed
 * grant itself (what `POST /leases/renew` and `/leases/release` take).
 */
function leaseView(claim: RecordedGrant): { token: number; duration_ms: number; grant: LeaseGrant } {
  const { at: _at, ...grant } = claim
  return { token: claim.token, duration_ms: claim.duration, grant }
}

const viewerOf = (caller: Caller, p: Participant): Viewer => ({ id: p.id, kind: caller.open ? p.kind : caller.identity.kind })

export function addHubRoutes(router: Router, context: HubRoutesContext): void {
  for (const prefix of ['', '/spaces/{space}']) {
    addEntityRoutes(router, context, prefix)
    addMessageRoutes(router, context, prefix)
    addTaskRoutes(router, context, prefix)
    addProposalRoutes(router, context, prefix)
    router.get(`${prefix}/state`, inSpace(context, (space, _caller, _ctx, name) => stateOf(space, name)))
    router.get(`${prefix}/dependencies`, (ctx) => dependencies(ctx, context))
  }
}

function addEntityRoutes(router: Router, context: HubRoutesContext, prefix: string): void {
  router.post(
    `${prefix}/entities/register`,
    withBody(context, registerSchema, (space, body, caller) => {
      checkActingAs(caller, body.entity_id)
      const kind = kindOfEntityType(body.entity_type) as ParticipantKind
      if (!caller.open && caller.identity.kind !== kind) {
        throw new ChorusError('forbidden', `this token is for a ${caller.identity.kind}; it cannot register a ${body.entity_type}`, { field: 'entity_type' })
      }
      const { id } = space.join({
        id: body.entity_id,
        name: body.name,
        kind,
        capabilities: body.capabilities ?? [],
        metadata: { ...(body.metadata ?? {}), [ENTITY_TYPE_KEY]: body.entity_type.trim() },
      })
      return { status: 'registered', entity: entityView(space.participants.get(id) as Participant, space.presence.status(id)) }
    }),
  )
  router.get(
    `${prefix}/entities/list`,
    inSpace(context, (space) => {
      const entities = space.participants.list().map((p) => entityView(p, space.presence.status(p.id)))
      return { entities, count: entities.length }
    }),
  )
  router.post(
    `${prefix}/entities/{id}/heartbeat`,
    withBody(context, heartbeatSchema, (space, body, caller, ctx) => {
      const id = ctx.params.id as string
      actingAs(space, caller, id)
      space.presence.touch(id, body.current_task ?? undefined)
      const presence = space.presence.status(id)
      return { status: 'ok', entity_id: id, presence: presence.status, last_seen: iso(presence.lastSeen) }
    }),
  )
}

function addMessageRoutes(router: Router, context: HubRoutesContext, prefix: string): void {
  router.post(
    `${prefix}/messages/send`,
    withBody(context, sendSchema, (space, body, caller) => {
      actingAs(space, caller, body.sender_id)
      const message = space.member(body.sender_id).send(body.content, {
        channel: body.channel ?? 'general',
        priority: body.priority ?? 'normal',
        ...(body.recipient_id == null ? {} : { to: body.recipient_id }),
        ...(body.reply_to == null ? {} : { replyTo: body.reply_to }),
      })
      return { status: 'sent', message: messageView(message) }
    }),
  )
  router.get(
    `${prefix}/messages/recent`,
    inSpace(context, (space, caller, ctx) => {
      const named = queryParam(ctx, 'entity_id')
      let viewer: Viewer | undefined
      if (!caller.open) {
        if (named !== undefined) checkActingAs(caller, named)
        viewer = { id: caller.identity.participant, kind: caller.identity.kind }
      } else if (named !== undefined) {
        const p = space.participants.get(named)
        if (p === undefined) throw new ChorusError('not_found', `unknown entity "${named}"`, { entity_id: named })
        viewer = { id: p.id, kind: p.kind }
      }
      const messages = visibleMessages(space, viewer, channelParam(ctx, viewer), limitParam(ctx))
      return { messages, count: messages.length }
    }),
  )
  router.get(
    `${prefix}/messages/for/{entity_id}`,
    inSpace(context, (space, caller, ctx) => {
      const id = ctx.params.entity_id as string
      checkActingAs(caller, id)
      const p = space.participants.get(id)
      if (p === undefined) throw new ChorusError('not_found', `unknown entity "${id}"`, { entity_id: id })
      const viewer = viewerOf(caller, p)
      const messages = visibleMessages(space, viewer, channelParam(ctx, viewer), limitParam(ctx))
      return { entity_id: id, messages, count: messages.length }
    }),
  )
}

function addTaskRoutes(router: Router, context: HubRoutesContext, prefix: string): void {
  router.post(
    `${prefix}/tasks/create`,
    withBody(context, createTaskSchema, (space, body, caller) => {
      let creator: string
      if (body.created_by != null) creator = actingAs(space, caller, body.created_by).id
      else if (!caller.open) creator = actingAs(space, caller, caller.identity.participant).id
      else {
        if (space.participants.get(HUB_PARTICIPANT.id) === undefined) space.participants.join({ ...HUB_PARTICIPANT })
        creator = HUB_PARTICIPANT.id
      }
      const task = space.member(creator).createTask({
        title: body.title,
        ...(body.description == null ? {} : { description: body.description }),
        ...(body.priority == null ? {} : { priority: body.priority }),
        requiresHuman: body.requires_human ?? false,
      })
      return { status: 'created', task_id: task.id, task: taskView(task) }
    }),
  )
  router.get(
    `${prefix}/tasks/list`,
    inSpace(context, (space, _caller, ctx) => {
      const status = statusParam<TaskStatus>(ctx, TASK_STATUSES)
      const tasks = space.tasks.list(status === undefined ? {} : { status }).map(taskView)
      return { tasks, count: tasks.length }
    }),
  )
  router.post(
    `${prefix}/tasks/{id}/claim`,
    onTask(context, claimSchema, async (space, id, body) => {
      // Not renewed by the relay: a REST holder that goes away loses the task when the claim runs out. It keeps
      // the claim longer with POST .../renew (or by claiming again, which grants a new token).
      const task = await space.tasks.claim(id, body.entity_id, { renew: false, ...(body.duration_ms == null ? {} : { duration: body.duration_ms }) })
      space.presence.touch(body.entity_id)
      const claim = task.claim
      if (claim === undefined) throw new ChorusError('conflict', `task ${id} could not be claimed`, { task: id })
      return { status: 'claimed', task: taskView(task), lease: leaseView(claim) }
    }),
  )
  router.post(
    `${prefix}/tasks/{id}/complete`,
    onTask(context, completeSchema, async (space, id, body) => {
      const task = await space.member(body.entity_id).complete(id, body.result ?? undefined)
      return { status: 'completed', task: taskView(task) }
    }),
  )
  router.post(
    `${prefix}/tasks/{id}/renew`,
    onTask(context, claimSchema, async (space, id, body) => {
      const task = await space.tasks.renew(id, body.entity_id, body.duration_ms == null ? {} : { duration: body.duration_ms })
      space.presence.touch(body.entity_id)
      const claim = task.claim
      if (claim === undefined) throw new ChorusError('lease_lost', `the claim on task ${id} is no longer live`, { task: id })
      return { status: 'renewed', task: taskView(task), lease: leaseView(claim) }
    }),
  )
  router.post(
    `${prefix}/tasks/{id}/release`,
    onTask(context, releaseSchema, async (space, id, body) => {
      const task = await space.tasks.release(id, body.entity_id)
      space.presence.touch(body.entity_id)
      return { status: 'released', task: taskView(task) }
    }),
  )
}

function addProposalRoutes(router: Router, context: HubRoutesContext, prefix: string): void {
  router.post(
    `${prefix}/proposals/create`,
    withBody(context, createProposalSchema, (space, body, caller) => {
      actingAs(space, caller, body.created_by)
      const proposal = space.member(body.created_by).propose({
        title: body.title,
        ...(body.description == null ? {} : { description: body.description }),
        ...(body.threshold == null ? {} : { threshold: body.threshold }),
        ...(body.quorum == null ? {} : { quorum: body.quorum }),
        ...(body.deadline == null ? {} : { deadline: body.deadline }),
      })
      return { status: 'created', proposal_id: proposal.id, proposal: proposalView(proposal) }
    }),
  )
  router.post(
    `${prefix}/proposals/{id}/vote`,
    withBody(context, voteSchema, (space, body, caller, ctx) => {
      const id = ctx.params.id as string
      space.proposals.require(id)
      actingAs(space, caller, body.entity_id)
      space.member(body.entity_id).vote(id, body.vote)
      return { status: 'voted', vote: body.vote, proposal: proposalView(space.proposals.require(id)) }
    }),
  )
  router.get(
    `${prefix}/proposals/list`,
    inSpace(context, (space, _caller, ctx) => {
      const status = statusParam<ProposalStatus>(ctx, PROPOSAL_STATUSES)
      const proposals = space.proposals
        .list()
        .filter((p) => status === undefined || p.status === status)
        .map(proposalView)
      return { proposals, count: proposals.length }
    }),
  )
}

function stateOf(space: Space, name: string) {
  const participants = { total: 0, online: 0, idle: 0, offline: 0 }
  for (const p of space.participants.list()) {
    participants.total++
    participants[space.presence.status(p.id).status]++
  }
  const tasks = { total: 0, open: 0, claimed: 0, completed: 0 }
  for (const t of space.tasks.list()) {
    tasks.total++
    tasks[t.status]++
  }
  const proposals = { total: 0, open: 0, approved: 0, rejected: 0, expired: 0 }
  for (const p of space.proposals.list()) {
    proposals.total++
    proposals[p.status]++
  }
  const resources = space.resources.list()
  return {
    space: name,
    schema: space.meta.schema,
    state: space.state.all(),
    summary: {
      participants,
      tasks,
      proposals,
      resources: { total: resources.length, locked: resources.filter((r) => r.lock !== undefined).length },
    },
  }
}

// GET /dependencies: each part the REST API stands on, checked now rather than assumed.

const requireHere = createRequire(import.meta.url)

function packageVersion(name: string): DependencyStatus {
  try {
    const pkg = requireHere(`${name}/package.json`) as { version?: unknown }
    return typeof pkg.version === 'string' ? { status: 'ok', version: pkg.version } : { status: 'error', detail: 'package.json has no version' }
  } catch (e) {
    return { status: 'error', detail: e instanceof Error ? e.message : String(e) }
  }
}

function syncPackage(): DependencyStatus {
  const version = packageVersionAt(new URL('../package.json', import.meta.resolve('@chorus/sync')))
  return { status: 'ok', ...(version === undefined ? {} : { version }), schema: SCHEMA_VERSION }
}

function runtime(): DependencyStatus {
  const major = Number(process.versions.node.split('.')[0])
  return major >= 22
    ? { status: 'ok', version: process.versions.node }
    : { status: 'error', version: process.versions.node, detail: 'the relay needs Node 22 or newer' }
}

/** node:sqlite answers a query (in memory; the store's own file is checked by loading the space). */
function sqlite(): DependencyStatus {
  try {
    const db = new DatabaseSync(':memory:')
    try {
      const row = db.prepare('select sqlite_version() as version').get() as { version?: unknown } | undefined
      return { status: 'ok', version: typeof row?.version === 'string' ? row.version : 'unknown' }
    } finally {
      db.close()
    }
  } catch (e) {
    return { status: 'error', detail: e instanceof Error ? e.message : String(e) }
  }
}

/** The space loads from the store, and its grants are verifiable (the arbiter's key is in its meta). */
async function spaceParts(context: HubRoutesContext, name: string): Promise<{ store: DependencyStatus; leases: DependencyStatus }> {
  let hosted: Awaited<ReturnType<HostedSpaces['use']>>
  try {
    hosted = await context.spaces.use(name)
  } catch (e) {
    const detail = e instanceof Error ? e.message : String(e)
    return { store: { status: 'error', detail }, leases: { status: 'error', detail: 'the space could not be loaded' } }
  }
  try {
    const { space } = hosted
    const relayKey = space.meta.relayKey
    const claims = space.tasks.list({ status: 'claimed' }).length
    const locks = space.resources.list().filter((r) => r.lock !== undefined).length
    return {
      store: { status: 'ok', detail: `space ${name} is loaded`, participants: space.participants.list().length },
      leases:
        relayKey === undefined
          ? { status: 'error', detail: 'no arbiter key in the space meta; grants cannot be verified' }
          : { status: 'ok', relay_key: relayKey, live_task_claims: claims, live_resource_locks: locks },
    }
  } finally {
    hosted.release()
  }
}

/** What cannot change while the process runs (runtime, sqlite and package versions): read on the first request. */
let staticParts: { runtime: Record<string, DependencyStatus>; packages: Record<string, DependencyStatus> } | undefined

async function dependencies(ctx: RequestContext, context: HubRoutesContext) {
  const { name } = authorize(ctx, context)
  staticParts ??= {
    runtime: { node: runtime(), 'node:sqlite': sqlite() },
    packages: {
      '@chorus/sync': syncPackage(),
      yjs: packageVersion('yjs'),
      'y-protocols': packageVersion('y-protocols'),
      ws: packageVersion('ws'),
      zod: packageVersion('zod'),
    },
  }
  const parts: Record<string, DependencyStatus> = { ...staticParts.runtime, ...(await spaceParts(context, name)), ...staticParts.packages }
  const ok = Object.values(parts).every((p) => p.status === 'ok')
  return { status: ok ? 'ok' : 'degraded', space: name, relay: { name: 'chorus-relay', version: RELAY_VERSION }, dependencies: parts }
}
