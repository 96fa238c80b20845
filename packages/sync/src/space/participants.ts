import * as Y from 'yjs'
import { z } from 'zod'
import type { SpaceCore } from './core.ts'
import { readParticipant } from './core.ts'
import { LIMITS, type Json, type Participant, type ParticipantKind } from '../schema.ts'
import { channelSchema, checkId, checkJsonSize, idSchema, jsonSchema, kindSchema, nameSchema, parse } from '../validate.ts'

export interface JoinOptions {
  /** Stable id; reuse it to rejoin as the same participant. Generated from the name when absent. */
  id?: string
  name: string
  kind: ParticipantKind
  capabilities?: string[]
  metadata?: Record<string, Json>
  /** Channels whose broadcasts reach the inbox; default: every channel the kind may read. */
  channels?: string[]
}

const joinSchema = z.object({
  id: idSchema.optional(),
  name: nameSchema,
  kind: kindSchema,
  capabilities: z.array(z.string().max(100)).max(100).optional(),
  metadata: z.record(z.string(), jsonSchema).optional(),
  channels: z.array(channelSchema).max(100).optional(),
})

const slug = (name: string): string =>
  name
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '')
    .slice(0, 40) || 'participant'

/** Who is in the space. Presence (online / idle / offline) is separate: see `Presence`. */
export class Participants {
  private readonly core: SpaceCore

  constructor(core: SpaceCore) {
    this.core = core
  }

  /** Adds (or re-adds) a participant and records a `join` event. */
  join(options: JoinOptions): Participant {
    const o = parse(joinSchema, options, 'join options')
    checkJsonSize('metadata', o.metadata ?? {}, LIMITS.metadata)
    const id = o.id ?? this.core.newId(slug(o.name))
    const now = this.core.now()
    this.core.transact(() => {
      let m = this.core.participants.get(id)
      if (m === undefined) {
        m = new Y.Map<unknown>()
        this.core.participants.set(id, m)
        m.set('joinedAt', now)
      }
      m.set('name', o.name)
      m.set('kind', o.kind)
      // zod's parse already returned fresh copies of these, so the caller's objects are not stored.
      m.set('capabilities', o.capabilities ?? [])
      m.set('metadata', o.metadata ?? {})
      if (o.channels !== undefined) m.set('channels', o.channels)
      else if (m.has('channels')) m.delete('channels')
      m.set('lastSeen', now)
      if (m.has('leftAt')) m.delete('leftAt')
      this.core.record({ type: 'join', by: id, data: { name: o.name, kind: o.kind } }, now)
    })
    return this.core.requireParticipant(id)
  }

  /** Marks a participant as gone and records a `leave` event; its record stays for history. */
  leave(id: string): void {
    this.core.requireParticipant(checkId(id, 'participant id'))
    const now = this.core.now()
    this.core.transact(() => {
      const m = this.core.participants.get(id) as Y.Map<unknown>
      m.set('leftAt', now)
      m.set('lastSeen', now)
      this.core.record({ type: 'leave', by: id }, now)
    })
  }

  get(id: string): Participant | undefined {
    return this.core.participant(id)
  }

  /** Everyone who ever joined, sorted by id; `leftAt` is set for those who left. */
  list(): Participant[] {
    const out: Participant[] = []
    for (const [id, m] of this.core.participants) out.push(readParticipant(id, m))
    return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  }
}
