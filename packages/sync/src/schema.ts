/**
 * The space document: names of its top-level types, the records they hold, and the documented limits.
 * Bump SCHEMA_VERSION when a record changes shape; replicas refuse documents from a newer schema.
 */
export const SCHEMA_VERSION = 1

export const PARTICIPANT_KINDS = ['human', 'ai', 'computer', 'service'] as const
export type ParticipantKind = (typeof PARTICIPANT_KINDS)[number]

export const PRIORITIES = ['low', 'normal', 'high', 'urgent'] as const
export type Priority = (typeof PRIORITIES)[number]

export const STANDARD_CHANNELS = ['general', 'urgent', 'technical', 'strategic', 'ai-only', 'human-only'] as const
/** Channels whose messages live in their own document, served only to participants of one kind. */
export const RESTRICTED_CHANNELS = { 'ai-only': 'ai', 'human-only': 'human' } as const
export type RestrictedChannel = keyof typeof RESTRICTED_CHANNELS

/** The restricted channel participants of `kind` read (`ai-only` for an ai, `human-only` for a human), if any. */
export const restrictedChannelOf = (kind: ParticipantKind): RestrictedChannel | undefined =>
  (Object.keys(RESTRICTED_CHANNELS) as RestrictedChannel[]).find((c) => RESTRICTED_CHANNELS[c] === kind)

export const VOTES = ['for', 'against', 'abstain'] as const
export type Vote = (typeof VOTES)[number]

export const TASK_STATUSES = ['open', 'claimed', 'completed'] as const
export type TaskStatus = (typeof TASK_STATUSES)[number]

export const PROPOSAL_STATUSES = ['open', 'approved', 'rejected', 'expired'] as const
export type ProposalStatus = (typeof PROPOSAL_STATUSES)[number]

/** Documented size limits (bytes of UTF-8 unless noted). */
export const LIMITS = {
  idLength: 128,
  nameLength: 200,
  channelLength: 64,
  messageContent: 64 * 1024,
  titleLength: 500,
  description: 64 * 1024,
  stateKeyLength: 256,
  stateValue: 256 * 1024,
  metadata: 16 * 1024,
  resourceData: 1024 * 1024,
  taskResult: 256 * 1024,
} as const

/** Top-level types of the main document. */
export const ROOT = {
  meta: 'meta',
  participants: 'participants',
  state: 'state',
  messages: 'messages',
  activity: 'activity',
  tasks: 'tasks',
  proposals: 'proposals',
  resources: 'resources',
  cursors: 'cursors',
  leases: 'leases',
} as const

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json }

export interface Participant {
  id: string
  name: string
  kind: ParticipantKind
  capabilities: string[]
  metadata: Record<string, Json>
  /** Channels whose broadcasts reach this participant's inbox; absent means every channel its kind may read. */
  channels?: string[]
  joinedAt: number
  lastSeen: number
  /** Set when the participant left; cleared when it joins again. */
  leftAt?: number
}

export interface Message {
  /** `<client>-<clock>`: the Yjs id of the message's first character, unique and stable on every replica. */
  id: string
  channel: string
  from: string
  to?: string
  priority: Priority
  content: string
  at: number
  replyTo?: string
}

/** A signed lease grant (L7). `at` is when the recording replica wrote it down, used only for display and expiry views. */
export interface LeaseGrant {
  space: string
  key: string
  holder: string
  token: number
  /** Milliseconds the grant is valid for, counted by the holder from when it sent the request (L3). */
  duration: number
  /** Ed25519 signature (base64url) over the canonical grant bytes. */
  signature: string
}

export interface RecordedGrant extends LeaseGrant {
  at: number
}

export interface TaskTransition {
  status: TaskStatus
  by: string
  at: number
  token?: number
}

export interface Task {
  id: string
  title: string
  description: string
  priority: Priority
  requiresHuman: boolean
  status: TaskStatus
  createdBy: string
  createdAt: number
  /** The claim that wins under L8, if any is live. */
  claim?: RecordedGrant
  result?: Json
  completedBy?: string
  completedAt?: number
  history: TaskTransition[]
}

export interface Tally {
  for: number
  against: number
  abstain: number
  /** for / (for + against); 0 when nobody took a side. */
  ratio: number
}

export interface Proposal {
  id: string
  title: string
  description: string
  proposer: string
  createdAt: number
  threshold: number
  quorum: number
  deadline?: number
  closedAt?: number
  votes: Record<string, Vote>
  tally: Tally
  status: ProposalStatus
}

export type ResourceKind = 'text' | 'json'

export interface Revision {
  id: string
  /** The version this edit was made on; it produces version base + 1. */
  base: number
  data: Json
  by: string
  at: number
  token?: number
}

export interface ResourceConflict {
  version: number
  kept: Revision
  other: Revision
}

export interface Resource {
  id: string
  name: string
  owner: string
  kind: ResourceKind
  createdAt: number
  version: number
  data: Json
  lock?: RecordedGrant
  conflicts: ResourceConflict[]
}
