/**
 * Who may do what on the relay: the one place that decides access. The REST routes, the three WebSocket
 * endpoints and the libp2p mesh all ask here.
 *
 * - Who the caller is. Without tokens the relay is open (loopback only, unless `--insecure`): callers name
 *   themselves and are trusted. With tokens (auth.ts) every request but `/health` and `/capabilities` carries one
 *   (`Authorization: Bearer <token>`, or `?token=` where a browser WebSocket cannot set headers), and the caller is
 *   the token's participant, of the token's kind.
 * - Which spaces it may use: the token's spaces, or every space.
 * - Which documents it may open: a restricted-channel document (`team#ai-only`) only for participants of its kind
 *   (docs/ARCHITECTURE.md, restricted channels).
 * - Which messages it may read: the rule of @chorus/sync (`mayReadMessage`), for the viewer worked out here.
 * - Whom it may act as: with a token only its participant, and once registered only with the token's kind.
 */
import type { IncomingMessage } from 'node:http'
import {
  ChorusError,
  checkId,
  mayReadMessage,
  PARTICIPANT_KINDS,
  RESTRICTED_CHANNELS,
  restrictedChannelOf,
  ROOT,
  type Participant,
  type ParticipantKind,
  type RestrictedChannel,
  type Space,
} from '@chorus/sync'
import type { Auth, Identity } from './auth.ts'
import type { SpaceRegistry } from './spaces.ts'

/** What a request's credentials amount to: open mode (anyone, trusted to name itself) or a known identity. */
export type Caller = { open: true } | { open: false; identity: Identity }

/** Who reads messages: a participant and the kind it reads as (with tokens, the token's). */
export type Viewer = Pick<Participant, 'id' | 'kind'>

/** Who an agent request acts as, and with which kind when it joins (`@chorus/agent`'s `SpaceAgentOptions`). */
export interface AgentActor {
  participant: string
  kind?: ParticipantKind
  /** The kind is the token's: the participant may have no other. */
  fixedKind?: boolean
}

export class Access {
  private readonly auth: Auth
  private readonly registry: SpaceRegistry

  constructor(auth: Auth, registry: SpaceRegistry) {
    this.auth = auth
    this.registry = registry
  }

  /** The caller behind a request; throws `unauthorized` (401) when a token is required and missing or unknown. */
  caller(req: IncomingMessage): Caller {
    if (!this.auth.required) return { open: true }
    const token = tokenOf(req)
    if (token === undefined) throw new ChorusError('unauthorized', 'this relay requires a bearer token (Authorization: Bearer <token>)')
    const identity = this.auth.identify(token)
    if (identity === undefined) throw new ChorusError('unauthorized', 'unknown token')
    return { open: false, identity }
  }

  /**
   * Throws unless `caller` may open the document `doc`: a space it may use, or one of that space's
   * restricted-channel documents, which go only to participants of the channel's kind. With tokens the kind is the
   * token's; on an open relay the client names itself (`participant`, from `?participant=<id>`) and the kind is
   * the one it registered with in the space: `not_found` while it has not joined (its join may not have reached
   * the relay yet), else `forbidden`.
   */
  async checkDocument(caller: Caller, doc: string, participant: string | undefined): Promise<void> {
    checkSpaceAccess(caller, doc)
    const channel = doc.split('#')[1] as RestrictedChannel | undefined
    if (channel === undefined) return
    // Own keys only: `constructor` is no channel.
    if (!Object.hasOwn(RESTRICTED_CHANNELS, channel)) throw new ChorusError('forbidden', `unknown restricted channel document ${doc}`)
    const kind = RESTRICTED_CHANNELS[channel]
    if (!caller.open) {
      if (caller.identity.kind !== kind) throw new ChorusError('forbidden', `${channel} is for ${kind} participants; this token is ${caller.identity.kind}`)
      return
    }
    if (participant === undefined) throw new ChorusError('forbidden', `${channel} is for ${kind} participants; name yourself with ?participant=<id>`)
    const space = doc.split('#')[0] as string
    const registered = await this.registeredKind(space, participant)
    if (registered === undefined) throw new ChorusError('not_found', `${participant} has not joined ${space}; join, then connect to ${channel}`)
    if (registered !== kind) throw new ChorusError('forbidden', `${channel} is for ${kind} participants; ${participant} is ${registered}`)
  }

  /**
   * The kind `participant` acts with in `space` through `caller`, who must be able to act as it: the token's, or
   * on an open relay the kind it registered with (undefined while it has not joined).
   */
  async kindOf(caller: Caller, space: string, participant: string): Promise<ParticipantKind | undefined> {
    checkActingAs(caller, participant)
    return caller.open ? this.registeredKind(space, participant) : caller.identity.kind
  }

  /** The kind `participant` joined `space` with, or undefined if it has not joined. */
  async registeredKind(space: string, participant: string): Promise<ParticipantKind | undefined> {
    const main = await this.registry.acquire(space)
    try {
      const record = main.doc.getMap<{ get(k: string): unknown }>(ROOT.participants).get(participant)
      const kind = record?.get('kind')
      return typeof kind === 'string' && (PARTICIPANT_KINDS as readonly string[]).includes(kind) ? (kind as ParticipantKind) : undefined
    } finally {
      this.registry.release(main)
    }
  }
}

/** The bearer token of a request: its `Authorization` header, else `?token=`. */
function tokenOf(req: IncomingMessage): string | undefined {
  const header = req.headers.authorization
  if (header !== undefined) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header)
    return m?.[1]
  }
  try {
    return new URL(req.url ?? '/', 'http://relay').searchParams.get('token') ?? undefined
  } catch {
    return undefined
  }
}

/** The caller a libp2p peer is once its credential for `doc` is verified: that participant, in that space only. */
export function memberCaller(participant: string, kind: ParticipantKind, doc: string): Caller {
  return { open: false, identity: { participant, kind, spaces: [doc.split('#')[0] as string] } }
}

/** Throws `forbidden` unless the caller may use `space` (a main space, or one of its restricted documents). */
export function checkSpaceAccess(caller: Caller, space: string): void {
  if (caller.open || caller.identity.spaces === undefined) return
  const main = space.split('#')[0] ?? space
  if (!caller.identity.spaces.includes(main)) throw new ChorusError('forbidden', `this token does not give access to space ${main}`)
}

/** The documents of `space` a participant of `kind` may open: the main one and the restricted one of its kind. */
export function documentsOf(space: string, kind: ParticipantKind): string[] {
  const channel = restrictedChannelOf(kind)
  return channel === undefined ? [space] : [space, `${space}#${channel}`]
}

/** Throws `forbidden` unless the caller may act as `participant` (`action` names what it tried, for the message). */
export function checkActingAs(caller: Caller, participant: string, action = 'act as'): void {
  if (!caller.open && caller.identity.participant !== participant) {
    throw new ChorusError('forbidden', `this token belongs to ${caller.identity.participant}; it cannot ${action} ${participant}`)
  }
}

/**
 * The registered participant `id` acting through the caller: with tokens only the token's own participant,
 * registered with the token's kind. Throws `not_found` when it has not registered.
 */
export function actingAs(space: Space, caller: Caller, id: string): Participant {
  checkActingAs(caller, id)
  const p = space.participants.get(id)
  if (p === undefined) throw new ChorusError('not_found', `unknown entity "${id}"; register it first (POST /entities/register)`, { entity_id: id })
  if (!caller.open && p.kind !== caller.identity.kind) {
    throw new ChorusError('forbidden', `${id} is registered as ${p.kind}, but this token is for a ${caller.identity.kind}`)
  }
  return p
}

/**
 * Who acts on a request that may name its actor (`named`) or leave it out: the participant named (as `actingAs`),
 * else with a token the token's own participant (registered), else nobody in particular (undefined).
 */
export function actingAsNamedOrSelf(space: Space, caller: Caller, named: string | undefined): Participant | undefined {
  if (named !== undefined) return actingAs(space, caller, named)
  return caller.open ? undefined : actingAs(space, caller, caller.identity.participant)
}

/** Throws `forbidden` unless the caller may register `id` as a participant of `kind`. */
export function checkRegistering(caller: Caller, id: string, kind: ParticipantKind, entityType: string): void {
  checkActingAs(caller, id)
  if (!caller.open && caller.identity.kind !== kind) {
    throw new ChorusError('forbidden', `this token is for a ${caller.identity.kind}; it cannot register a ${entityType}`, { field: 'entity_type' })
  }
}

/**
 * Who an agent request acts as: with a token, the token's participant of the token's kind (naming another is
 * refused); on an open relay the participant it names (`named`), undefined when it names none.
 */
export function agentActor(caller: Caller, named: string | undefined): AgentActor | undefined {
  if (!caller.open) {
    if (named !== undefined) checkActingAs(caller, named)
    return { participant: caller.identity.participant, kind: caller.identity.kind, fixedKind: true }
  }
  return named === undefined ? undefined : { participant: checkId(named, 'participant id') }
}

/**
 * The viewer participant `id` reads as through the caller: the token's kind with tokens, else the kind it
 * registered with (`registered`; no viewer while it has not).
 */
export function viewerOf(caller: Caller, id: string, registered: ParticipantKind | undefined): Viewer | undefined {
  if (!caller.open) return { id, kind: caller.identity.kind }
  return registered === undefined ? undefined : { id, kind: registered }
}

/** The viewer reading as participant `id`, which the caller must act as and which must have registered. */
export function readerAs(space: Space, caller: Caller, id: string): Viewer {
  checkActingAs(caller, id)
  const p = space.participants.get(id)
  if (p === undefined) throw new ChorusError('not_found', `unknown entity "${id}"`, { entity_id: id })
  return viewerOf(caller, p.id, p.kind) as Viewer
}

/**
 * The viewer of a public feed that may name a reader (`named`): with tokens always the token's participant (who
 * may name only itself); on an open relay the registered participant named, or nobody (undefined: broadcasts on
 * open channels only).
 */
export function feedReader(space: Space, caller: Caller, named: string | undefined): Viewer | undefined {
  if (!caller.open) {
    if (named !== undefined) checkActingAs(caller, named)
    return { id: caller.identity.participant, kind: caller.identity.kind }
  }
  return named === undefined ? undefined : readerAs(space, caller, named)
}

/** Throws `forbidden` unless `viewer` (undefined: nobody in particular) may read `channel` at all. */
export function checkChannel(viewer: Viewer | undefined, channel: string): void {
  // A broadcast on the channel: what every reader of the channel may read.
  if (mayReadMessage(viewer, { channel, from: '' })) return
  const only = RESTRICTED_CHANNELS[channel as RestrictedChannel]
  throw new ChorusError(
    'forbidden',
    viewer === undefined ? `${channel} is for ${only} participants; name one with ?entity_id=<id>` : `${channel} is for ${only} participants; ${viewer.id} is ${viewer.kind}`,
    { channel },
  )
}
