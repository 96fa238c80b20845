/**
 * The coordination hub's REST API (docs/PROTOCOL.md), kept working unchanged on the relay, on the default space
 * and the same under `/spaces/<space>/...` (space-routes.ts). Every route acts in a hosted space through the typed
 * `Space` API, so what a REST client does reaches sync clients and `/ws` streams at once, and the other way round.
 * JSON in and out; errors are `{error, message, details?}` with the status of their code (http.ts). Shapes are in
 * hub-mapping.ts: times are ISO 8601 strings, durations `*_ms`.
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
 *
 * `GET /state` and `GET /dependencies` are in status-routes.ts; the body schemas in hub-schemas.ts.
 *
 * Words: `entity_type` is any of human, ai_agent, ai_instance, session, computer, service (or Chorus's ai), in
 * any case; `priority` low, normal, high, urgent in any case (`medium` reads as normal); `deadline` an ISO date or
 * ms since 1970.
 *
 * Who acts (access.ts): a body names the acting entity (`sender_id`, `entity_id`, `created_by`); with tokens it
 * must be the token's participant, registered with the token's kind. `POST /tasks/create` without `created_by` is
 * created by the token's participant, or in open mode by the relay's own `coordination-hub` service participant
 * (joined on first use), since the hub's create-task script names no creator. Claims made over REST are not renewed by the
 * relay: they run `duration_ms` unless renewed, so a client that goes away frees its tasks.
 *
 * Reading messages: `GET /messages/recent` is the public feed (broadcasts on open channels) unless it names a
 * reader (`?entity_id=`; with tokens, always the token's participant), who also sees its own direct messages (sent
 * and received) and the restricted channel of its kind. `GET /messages/for/<id>` is that reader's view. `?limit`
 * is 1..1000 (default 50; larger values are capped at 1000): the newest `limit` messages, oldest first.
 */
import {
  ChorusError,
  channelSchema,
  mayReadMessage,
  PROPOSAL_STATUSES,
  TASK_STATUSES,
  type LeaseGrant,
  type Participant,
  type ParticipantKind,
  type ProposalStatus,
  type RecordedGrant,
  type Space,
  type TaskStatus,
} from '@chorus/sync'
import { actingAs, actingAsNamedOrSelf, checkChannel, checkRegistering, feedReader, readerAs, type Viewer } from '../access.ts'
import type { HostedSpaces } from '../hosted-spaces.ts'
import type { RequestContext } from './http.ts'
import { ENTITY_TYPE_KEY, entityView, iso, kindOfEntityType, messageView, proposalView, taskView, type HubMessage } from './hub-mapping.ts'
import {
  claimSchema,
  completeSchema,
  createProposalSchema,
  createTaskSchema,
  heartbeatSchema,
  registerSchema,
  releaseSchema,
  sendSchema,
  voteSchema,
} from './hub-schemas.ts'
import type { SpaceRequest, SpaceRoutes } from './space-routes.ts'

/** The participant that creates tasks for open-mode clients that name no creator. */
export const HUB_PARTICIPANT = { id: 'coordination-hub', name: 'Coordination hub', kind: 'service' } as const

export const DEFAULT_MESSAGE_LIMIT = 50
export const MAX_MESSAGE_LIMIT = 1000

/** A hub route's handler, run in the hosted space the request names. */
type HubHandler<B> = (space: Space, request: SpaceRequest<B>) => unknown

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
  checkChannel(viewer, channel)
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
    if (m === undefined || (channel !== undefined && m.channel !== channel) || !mayReadMessage(viewer, m)) continue
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

/** How hub routes run: in the hosted space the request names, given back after. */
function hostedIn(spaces: HostedSpaces) {
  const inSpace =
    <B>(fn: HubHandler<B>) =>
    (request: SpaceRequest<B>): Promise<unknown> =>
      spaces.using(request.space, (space) => fn(space, request))
  /** A route on one task, acted on by the entity its body names: the task must exist and the entity act through the caller. */
  const onTask = <B extends { entity_id: string }>(fn: (space: Space, id: string, body: B) => unknown) =>
    inSpace<B>((space, { caller, body, ctx }) => {
      const id = ctx.params.id as string
      space.tasks.require(id)
      actingAs(space, caller, body.entity_id)
      return fn(space, id, body)
    })
  return { inSpace, onTask }
}

type Hosted = ReturnType<typeof hostedIn>

export function addHubRoutes(routes: SpaceRoutes, spaces: HostedSpaces): void {
  const hosted = hostedIn(spaces)
  addEntityRoutes(routes, hosted)
  addMessageRoutes(routes, hosted)
  addTaskRoutes(routes, hosted)
  addProposalRoutes(routes, hosted)
}

function addEntityRoutes(routes: SpaceRoutes, { inSpace }: Hosted): void {
  routes.post(
    '/entities/register',
    registerSchema,
    inSpace((space, { caller, body }) => {
      const kind = kindOfEntityType(body.entity_type) as ParticipantKind
      checkRegistering(caller, body.entity_id, kind, body.entity_type)
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
  routes.get(
    '/entities/list',
    inSpace((space) => {
      const entities = space.participants.list().map((p) => entityView(p, space.presence.status(p.id)))
      return { entities, count: entities.length }
    }),
  )
  routes.post(
    '/entities/{id}/heartbeat',
    heartbeatSchema,
    inSpace((space, { caller, body, ctx }) => {
      const id = ctx.params.id as string
      actingAs(space, caller, id)
      space.presence.touch(id, body.current_task ?? undefined)
      const presence = space.presence.status(id)
      return { status: 'ok', entity_id: id, presence: presence.status, last_seen: iso(presence.lastSeen) }
    }),
  )
}

function addMessageRoutes(routes: SpaceRoutes, { inSpace }: Hosted): void {
  routes.post(
    '/messages/send',
    sendSchema,
    inSpace((space, { caller, body }) => {
      actingAs(space, caller, body.sender_id)
      const message = space.member(body.sender_id).send(body.content, {
        channel: body.channel ?? 'general',
        priority: body.priority ?? 'normal',
        to: body.recipient_id ?? undefined,
        replyTo: body.reply_to ?? undefined,
      })
      return { status: 'sent', message: messageView(message) }
    }),
  )
  routes.get(
    '/messages/recent',
    inSpace((space, { caller, ctx }) => {
      const viewer = feedReader(space, caller, queryParam(ctx, 'entity_id'))
      const messages = visibleMessages(space, viewer, channelParam(ctx, viewer), limitParam(ctx))
      return { messages, count: messages.length }
    }),
  )
  routes.get(
    '/messages/for/{entity_id}',
    inSpace((space, { caller, ctx }) => {
      const id = ctx.params.entity_id as string
      const viewer = readerAs(space, caller, id)
      const messages = visibleMessages(space, viewer, channelParam(ctx, viewer), limitParam(ctx))
      return { entity_id: id, messages, count: messages.length }
    }),
  )
}

function addTaskRoutes(routes: SpaceRoutes, { inSpace, onTask }: Hosted): void {
  routes.post(
    '/tasks/create',
    createTaskSchema,
    inSpace((space, { caller, body }) => {
      let creator = actingAsNamedOrSelf(space, caller, body.created_by ?? undefined)?.id
      if (creator === undefined) {
        if (space.participants.get(HUB_PARTICIPANT.id) === undefined) space.participants.join({ ...HUB_PARTICIPANT })
        creator = HUB_PARTICIPANT.id
      }
      const task = space.member(creator).createTask({
        title: body.title,
        description: body.description ?? undefined,
        priority: body.priority ?? undefined,
        requiresHuman: body.requires_human ?? false,
      })
      return { status: 'created', task_id: task.id, task: taskView(task) }
    }),
  )
  routes.get(
    '/tasks/list',
    inSpace((space, { ctx }) => {
      const status = statusParam<TaskStatus>(ctx, TASK_STATUSES)
      const tasks = space.tasks.list({ status }).map(taskView)
      return { tasks, count: tasks.length }
    }),
  )
  routes.post(
    '/tasks/{id}/claim',
    claimSchema,
    onTask(async (space, id, body) => {
      // Not renewed by the relay: a REST holder that goes away loses the task when the claim runs out. It keeps
      // the claim longer with POST .../renew (or by claiming again, which grants a new token).
      const task = await space.tasks.claim(id, body.entity_id, { renew: false, duration: body.duration_ms ?? undefined })
      space.presence.touch(body.entity_id)
      const claim = task.claim
      if (claim === undefined) throw new ChorusError('conflict', `task ${id} could not be claimed`, { task: id })
      return { status: 'claimed', task: taskView(task), lease: leaseView(claim) }
    }),
  )
  routes.post(
    '/tasks/{id}/complete',
    completeSchema,
    onTask(async (space, id, body) => {
      const task = await space.member(body.entity_id).complete(id, body.result ?? undefined)
      return { status: 'completed', task: taskView(task) }
    }),
  )
  routes.post(
    '/tasks/{id}/renew',
    claimSchema,
    onTask(async (space, id, body) => {
      const task = await space.tasks.renew(id, body.entity_id, { duration: body.duration_ms ?? undefined })
      space.presence.touch(body.entity_id)
      const claim = task.claim
      if (claim === undefined) throw new ChorusError('lease_lost', `the claim on task ${id} is no longer live`, { task: id })
      return { status: 'renewed', task: taskView(task), lease: leaseView(claim) }
    }),
  )
  routes.post(
    '/tasks/{id}/release',
    releaseSchema,
    onTask(async (space, id, body) => {
      const task = await space.tasks.release(id, body.entity_id)
      space.presence.touch(body.entity_id)
      return { status: 'released', task: taskView(task) }
    }),
  )
}

function addProposalRoutes(routes: SpaceRoutes, { inSpace }: Hosted): void {
  routes.post(
    '/proposals/create',
    createProposalSchema,
    inSpace((space, { caller, body }) => {
      actingAs(space, caller, body.created_by)
      const proposal = space.member(body.created_by).propose({
        title: body.title,
        description: body.description ?? undefined,
        threshold: body.threshold ?? undefined,
        quorum: body.quorum ?? undefined,
        deadline: body.deadline ?? undefined,
      })
      return { status: 'created', proposal_id: proposal.id, proposal: proposalView(proposal) }
    }),
  )
  routes.post(
    '/proposals/{id}/vote',
    voteSchema,
    inSpace((space, { caller, body, ctx }) => {
      const id = ctx.params.id as string
      space.proposals.require(id)
      actingAs(space, caller, body.entity_id)
      space.member(body.entity_id).vote(id, body.vote)
      return { status: 'voted', vote: body.vote, proposal: proposalView(space.proposals.require(id)) }
    }),
  )
  routes.get(
    '/proposals/list',
    inSpace((space, { ctx }) => {
      const status = statusParam<ProposalStatus>(ctx, PROPOSAL_STATUSES)
      const proposals = space.proposals
        .list()
        .filter((p) => status === undefined || p.status === status)
        .map(proposalView)
      return { proposals, count: proposals.length }
    }),
  )
}
