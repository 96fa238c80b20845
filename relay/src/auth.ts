/**
 * The relay's bearer tokens: a tokens file (`{"tokens": [{"token", "participant", "kind", "spaces?"}]}`), each
 * token standing for one participant of one kind, optionally limited to some spaces. Without tokens the relay is
 * open. What a request's token lets it do is decided in access.ts.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import { readFileSync } from 'node:fs'
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

export class Auth {
  private readonly entries: Array<{ digest: Buffer; identity: Identity }>

  constructor(tokens: readonly TokenEntry[] | undefined) {
    this.entries = (tokens ?? []).map((t) => ({
      digest: digest(t.token),
      identity: { participant: t.participant, kind: t.kind, spaces: t.spaces },
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

  /** The identity `token` stands for, or undefined for an unknown token. */
  identify(token: string): Identity | undefined {
    const d = digest(token)
    return this.entries.find((e) => timingSafeEqual(e.digest, d))?.identity
  }
}
