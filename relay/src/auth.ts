/**
 * Who is asking. Without tokens the relay is open (loopback only, unless `--insecure`): callers name themselves
 * and are trusted. With tokens every request but `/health` and `/capabilities` must carry one
 * (`Authorization: Bearer <token>`, or `?token=` where a browser WebSocket cannot set headers); a token stands for
 * one participant of one kind, optionally limited to some spaces, and the relay acts only as that participant.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import { readFileSync } from 'node:fs'
import type { IncomingMessage } from 'node:http'
import { z } from 'zod'
import { ChorusError, PARTICIPANT_KINDS, type ParticipantKind } from '@chorus/sync'

export interface Identity {
  participant: string
  kind: ParticipantKind
  /** Spaces this token may use; every space when absent. */
  spaces?: readonly string[]
}

const tokenFileSchema = z.object({
  tokens: z.array(
    z.object({
      token: z.string().min(16, 'a token must be at least 16 characters'),
      participant: z.string().min(1).max(128),
      kind: z.enum(PARTICIPANT_KINDS),
      spaces: z.array(z.string().min(1)).optional(),
    }),
  ),
})

export type TokenEntry = z.infer<typeof tokenFileSchema>['tokens'][number]

const digest = (token: string): Buffer => createHash('sha256').update(token).digest()

/** What a request's credentials amount to: open mode (anyone), a known identity, or a refusal. */
export type Caller = { open: true } | { open: false; identity: Identity }

export class Auth {
  private readonly entries: Array<{ digest: Buffer; identity: Identity }>

  constructor(tokens: readonly TokenEntry[] | undefined) {
    this.entries = (tokens ?? []).map((t) => ({
      digest: digest(t.token),
      identity: { participant: t.participant, kind: t.kind, ...(t.spaces === undefined ? {} : { spaces: t.spaces }) },
    }))
  }

  /** Reads a tokens file (`{"tokens": [{"token", "participant", "kind", "spaces?"}]}`); a bad file is a clear error. */
  static fromFile(path: string): Auth {
    let parsed: unknown
    try {
      parsed = JSON.parse(readFileSync(path, 'utf8'))
    } catch (e) {
      throw new ChorusError('invalid_input', `could not read the tokens file ${path}: ${e instanceof Error ? e.message : String(e)}`)
    }
    const result = tokenFileSchema.safeParse(parsed)
    if (!result.success) {
      const issue = result.error.issues[0]
      throw new ChorusError('invalid_input', `tokens file ${path}: ${issue?.path.join('.') ?? ''} ${issue?.message ?? 'is invalid'}`)
    }
    return new Auth(result.data.tokens)
  }

  /** Whether requests must carry a token. */
  get required(): boolean {
    return this.entries.length > 0
  }

  /** The caller behind a request; throws `unauthorized` (401) when a token is required and missing or unknown. */
  caller(req: IncomingMessage): Caller {
    if (!this.required) return { open: true }
    const token = tokenOf(req)
    if (token === undefined) throw new ChorusError('unauthorized', 'this relay requires a bearer token (Authorization: Bearer <token>)')
    const d = digest(token)
    const hit = this.entries.find((e) => timingSafeEqual(e.digest, d))
    if (hit === undefined) throw new ChorusError('unauthorized', 'unknown token')
    return { open: false, identity: hit.identity }
  }
}

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

/** Throws `forbidden` unless the caller may act as `participant`. */
export function checkActingAs(caller: Caller, participant: string): void {
  if (!caller.open && caller.identity.participant !== participant) {
    throw new ChorusError('forbidden', `this token belongs to ${caller.identity.participant}; it cannot act as ${participant}`)
  }
}

/** Throws `forbidden` unless the caller may use `space` (a main space, or one of its restricted documents). */
export function checkSpaceAccess(caller: Caller, space: string): void {
  if (caller.open || caller.identity.spaces === undefined) return
  const main = space.split('#')[0] ?? space
  if (!caller.identity.spaces.includes(main)) throw new ChorusError('forbidden', `this token does not give access to space ${main}`)
}
