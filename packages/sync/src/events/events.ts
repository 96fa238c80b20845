import type { Json, Message } from '../schema.ts'

/** Every kind of event a space produces. All but `lease_lost` are derived from the document. */
export const EVENT_TYPES = [
  'message',
  'join',
  'leave',
  'state_update',
  'task_created',
  'task_claimed',
  'task_released',
  'task_completed',
  'proposal_created',
  'proposal_closed',
  'vote',
  'resource_created',
  'edit',
  'lock',
  'unlock',
  'conflict',
  'lease_lost',
] as const
export type EventType = (typeof EVENT_TYPES)[number]

export interface ChorusEvent<T extends EventType = EventType> {
  /** Stable on every replica: the id of the log entry the event is derived from. */
  id: string
  type: T
  at: number
  /** The participant who caused it. */
  participant: string
  /** The entity it concerns (task, proposal, resource, state key, message id). */
  ref?: string
  data: EventData[T]
}

export interface EventData {
  message: Message
  join: { name: string; kind: string }
  leave: Record<string, never>
  /** For `merge`, `value` holds the one field this event wrote. */
  state_update: { key: string; mode: 'merge' | 'replace' | 'delete'; value?: Json }
  task_created: { title: string; priority: string; requiresHuman: boolean }
  task_claimed: { token: number }
  task_released: { token: number }
  task_completed: { token: number; result?: Json }
  proposal_created: { title: string }
  proposal_closed: Record<string, never>
  vote: { vote: string }
  resource_created: { name: string }
  edit: { version: number }
  lock: { token: number; duration: number }
  unlock: { token: number }
  conflict: { version: number; kept: string; other: string }
  lease_lost: { key: string; token: number; reason: string }
}

/** An activity-log record: what happened, by whom, about what. Messages are their own log and never appear here. */
export interface ActivityRecord {
  type: Exclude<EventType, 'message' | 'conflict' | 'lease_lost' | 'state_update' | 'vote'>
  by: string
  ref?: string
  data?: Record<string, Json>
}

export interface HistoryQuery {
  type?: EventType | EventType[]
  participant?: string
  /** Only events at or after this time (ms) */
  since?: number
  /**
   * Replay from a point: only events after this one in the agreed order, given as an event (or its `{ at, id }`)
   * or an event id that is still in the history. With `limit`, the oldest `limit` events after the point.
   * An event that arrives later from a replica that was offline may sort before the point; live handlers see it.
   */
  after?: string | { at: number; id: string }
  /** The newest `limit` events (still returned oldest first); with `after`, the oldest after the point. */
  limit?: number
}
