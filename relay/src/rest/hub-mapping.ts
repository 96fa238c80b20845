/**
 * The coordination hub's words and shapes (docs/PROTOCOL.md) over Chorus records: entity types ↔ participant
 * kinds, snake_case views of participants, messages, tasks and proposals. The REST routes (hub-routes.ts) and the
 * `/ws` event stream (event-socket.ts) share them, so both answer alike; who may read which message is decided in
 * access.ts.
 *
 * Times in these views are ISO 8601 strings in UTC (`2025-01-01T12:00:00.000Z`), as the hub's JSON had them;
 * durations are milliseconds (`*_ms`).
 */
import {
  HUB_ENTITY_TYPES,
  type Json,
  type Message,
  type Participant,
  type ParticipantKind,
  type PresenceInfo,
  type Proposal,
  type Task,
} from '@chorus/sync'

/** The entity types the hubs used and the kind each stands for: one table, in @chorus/sync. */
export { ENTITY_KINDS, ENTITY_TYPES, kindOfEntityType } from '@chorus/sync'

/** The metadata key that keeps the entity type a participant registered with. */
export const ENTITY_TYPE_KEY = 'entity_type'

export const iso = (ms: number): string => new Date(ms).toISOString()

const isoOrNull = (ms: number | undefined): string | null => (ms === undefined ? null : iso(ms))

export interface HubEntity {
  entity_id: string
  /** The word it registered with (`ai_agent`, `session`, ...), or one derived from its kind. */
  entity_type: string
  kind: ParticipantKind
  name: string
  capabilities: string[]
  metadata: Record<string, Json>
  /** From presence: online, idle (no activity for a while) or offline (no replica announces it). */
  status: PresenceInfo['status']
  last_seen: string
  registered_at: string
  current_task: string | null
  /** Set when the participant left the space. */
  left_at: string | null
}

export function entityView(p: Participant, presence: PresenceInfo): HubEntity {
  const { [ENTITY_TYPE_KEY]: stored, ...metadata } = p.metadata
  return {
    entity_id: p.id,
    entity_type: typeof stored === 'string' ? stored : HUB_ENTITY_TYPES[p.kind],
    kind: p.kind,
    name: p.name,
    capabilities: p.capabilities,
    metadata,
    status: presence.status,
    last_seen: iso(presence.lastSeen),
    registered_at: iso(p.joinedAt),
    current_task: presence.task ?? null,
    left_at: isoOrNull(p.leftAt),
  }
}

export interface HubMessage {
  id: string
  sender_id: string
  content: string
  channel: string
  /** The addressee of a direct message; null for a broadcast on the channel. */
  recipient_id: string | null
  priority: Message['priority']
  timestamp: string
  reply_to: string | null
}

export const messageView = (m: Message): HubMessage => ({
  id: m.id,
  sender_id: m.from,
  content: m.content,
  channel: m.channel,
  recipient_id: m.to ?? null,
  priority: m.priority,
  timestamp: iso(m.at),
  reply_to: m.replyTo ?? null,
})

export interface HubTask {
  task_id: string
  title: string
  description: string
  priority: Task['priority']
  requires_human: boolean
  status: Task['status']
  created_by: string
  created_at: string
  /** The holder of the live claim (null when open or completed). */
  claimed_by: string | null
  /** When the claim was asked for; it runs `claim_duration_ms` from then. */
  claimed_at: string | null
  claim_token: number | null
  claim_duration_ms: number | null
  completed_by: string | null
  completed_at: string | null
  result: Json | null
  history: Array<{ status: Task['status']; by: string; at: string }>
}

export const taskView = (t: Task): HubTask => ({
  task_id: t.id,
  title: t.title,
  description: t.description,
  priority: t.priority,
  requires_human: t.requiresHuman,
  status: t.status,
  created_by: t.createdBy,
  created_at: iso(t.createdAt),
  claimed_by: t.claim?.holder ?? null,
  claimed_at: isoOrNull(t.claim?.at),
  claim_token: t.claim?.token ?? null,
  claim_duration_ms: t.claim?.duration ?? null,
  completed_by: t.completedBy ?? null,
  completed_at: isoOrNull(t.completedAt),
  result: t.result ?? null,
  history: t.history.map((h) => ({ status: h.status, by: h.by, at: iso(h.at) })),
})

export interface HubProposal {
  proposal_id: string
  title: string
  description: string
  created_by: string
  created_at: string
  /** Share of for / (for + against) needed to pass. */
  threshold: number
  /** Votes of any choice needed before it can pass. */
  quorum: number
  deadline: string | null
  closed_at: string | null
  /** open, approved (threshold and quorum met), rejected or expired (closed without quorum). */
  status: Proposal['status']
  votes: Record<string, string>
  tally: { for: number; against: number; abstain: number; total: number; approval: number }
}

export const proposalView = (p: Proposal): HubProposal => ({
  proposal_id: p.id,
  title: p.title,
  description: p.description,
  created_by: p.proposer,
  created_at: iso(p.createdAt),
  threshold: p.threshold,
  quorum: p.quorum,
  deadline: isoOrNull(p.deadline),
  closed_at: isoOrNull(p.closedAt),
  status: p.status,
  votes: { ...p.votes },
  tally: {
    for: p.tally.for,
    against: p.tally.against,
    abstain: p.tally.abstain,
    total: p.tally.for + p.tally.against + p.tally.abstain,
    approval: p.tally.ratio,
  },
})
