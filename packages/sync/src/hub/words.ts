/**
 * The two hubs' words for participants, and the Chorus kind each stands for. The coordination hub registered
 * entities with an `entity_type` (`ai_agent`, and `session` for a coding-agent session); the collaboration hub named
 * participant types (`ai_instance`) and printed them in its activity report. Everything below is read from `WORDS`.
 */
import { PARTICIPANT_KINDS, type ParticipantKind } from '../schema.ts'

const WORDS = {
  human: { entityType: 'human', participantType: 'human', alsoMeans: [] },
  ai: { entityType: 'ai_agent', participantType: 'ai_instance', alsoMeans: ['session'] },
  computer: { entityType: 'computer', participantType: 'computer', alsoMeans: [] },
  service: { entityType: 'service', participantType: 'service', alsoMeans: [] },
} as const satisfies Record<ParticipantKind, { entityType: string; participantType: string; alsoMeans: readonly string[] }>

const byKind = (pick: (kind: ParticipantKind) => string): Record<ParticipantKind, string> =>
  Object.fromEntries(PARTICIPANT_KINDS.map((kind) => [kind, pick(kind)])) as Record<ParticipantKind, string>

/** Each of a kind's `words` mapped to that kind, kind by kind in the order of `PARTICIPANT_KINDS`. */
const kindsOf = (words: (kind: ParticipantKind) => readonly string[]): Readonly<Record<string, ParticipantKind>> =>
  Object.fromEntries(PARTICIPANT_KINDS.flatMap((kind) => words(kind).map((word) => [word, kind])))

/** The coordination hub's `entity_type` for each kind (its REST API registers and reports entities with it). */
export const HUB_ENTITY_TYPES: Readonly<Record<ParticipantKind, string>> = byKind((kind) => WORDS[kind].entityType)

/** The participant kinds in the collaboration hub's words, as its reports printed them. */
export const HUB_KIND_NAMES: Readonly<Record<ParticipantKind, string>> = byKind((kind) => WORDS[kind].participantType)

/** Every entity type either hub used, and Chorus's own kinds, each mapped to its kind. */
export const ENTITY_KINDS = kindsOf((kind) => [kind, WORDS[kind].entityType, WORDS[kind].participantType, ...WORDS[kind].alsoMeans])

export const ENTITY_TYPES = Object.keys(ENTITY_KINDS)

/** The kind an entity type stands for, matched case-insensitively; undefined for a word no hub used. */
export const kindOfEntityType = (type: string): ParticipantKind | undefined => {
  const key = type.trim().toLowerCase()
  return Object.hasOwn(ENTITY_KINDS, key) ? ENTITY_KINDS[key] : undefined
}

/** Participant types as the collaboration hub named them, plus Chorus's own kinds. */
export type HubParticipantType = (typeof WORDS)[ParticipantKind]['participantType'] | ParticipantKind

/** The collaboration hub's participant types and Chorus's kinds, each mapped to its kind (matched exactly, as the hub did). */
export const PARTICIPANT_TYPE_KINDS = kindsOf((kind) => [WORDS[kind].participantType, kind]) as Readonly<Record<HubParticipantType, ParticipantKind>>
