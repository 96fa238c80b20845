/**
 * `@chorus/sync/vocabulary`: the names, limits, error type and input schemas of Chorus without the replica (no Yjs,
 * no transports). For clients that only talk to a relay, such as the `chorus` command, which then start quickly.
 * Everything here is also exported by `@chorus/sync`.
 */
export { ChorusError, isChorusError, type ChorusErrorCode } from './errors.ts'
export * from './schema.ts'
export { EVENT_TYPES, type ChorusEvent, type EventType, type EventData, type HistoryQuery } from './events/events.ts'
export { checkLeaseDuration, DEFAULT_CLAIM_MS, DEFAULT_LOCK_MS, MAX_LEASE_MS, MIN_LEASE_MS } from './leases/lease-client.ts'
export { idSchema, nameSchema, channelSchema, kindSchema, prioritySchema, jsonSchema, checkId } from './validate.ts'
export type { PresenceInfo, PresenceStatus } from './space/presence.ts'
