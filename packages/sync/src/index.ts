/**
 * @chorus/sync: the space replica every Chorus participant holds.
 *
 * ```ts
 * import { Space, LocalLeaseClient } from '@chorus/sync'
 *
 * const space = new Space({ id: 'demo', leases: new LocalLeaseClient() })
 * const alice = space.join({ id: 'alice', name: 'Alice', kind: 'human' })
 * const bot = space.join({ id: 'bot', name: 'Helper', kind: 'ai' })
 *
 * alice.send('Can someone review main.py?', { priority: 'high' })
 * const task = alice.createTask({ title: 'Review main.py' })
 * await bot.claim(task.id)
 * await bot.complete(task.id, { verdict: 'looks good' })
 * console.log(bot.inbox().length, space.tasks.get(task.id)?.status) // 1 'completed'
 * space.destroy()
 * ```
 *
 * (test/sync/docs.test.ts runs this example.)
 */
export { Member, Space, type SpaceOptions, type SpaceDocument, type SpaceSnapshot } from './space/space.ts'
export { ChorusError, isChorusError, type ChorusErrorCode } from './errors.ts'
export { systemClock, ManualClock, type Clock } from './clock.ts'
export * from './schema.ts'
export { EVENT_TYPES, type ChorusEvent, type EventType, type EventData, type HistoryQuery } from './events/events.ts'
export type { JoinOptions } from './space/participants.ts'
export type { PresenceInfo, PresenceStatus } from './space/presence.ts'
export type { StateMode } from './space/state.ts'
export { mayReadMessage, mayUseChannel, type SendOptions } from './space/messages.ts'
export type { CreateTaskOptions } from './space/tasks.ts'
export { DEFAULT_THRESHOLD, statusOf, type CreateProposalOptions } from './space/proposals.ts'
export type { CreateResourceOptions, EditOptions } from './space/resources.ts'
export type { Transport, TransportListener, TransportStatus, PeerId } from './transports/transport.ts'
export { STORE_ORIGIN, isGroupCommitStore, type GroupCommitStore, type Store, type StoredSpace } from './store/store.ts'
export { checkLeaseDuration, DEFAULT_CLAIM_MS, DEFAULT_LOCK_MS, MAX_LEASE_MS, MIN_LEASE_MS, type LeaseClient, type LeaseRequest, type LeaseLossReason } from './leases/lease-client.ts'
export { LeaseArbiter } from './leases/arbiter.ts'
export type { AcquiredLease, GrantTerms, LeaseLedger, LedgerAcquire, LiveLease, SignGrant } from './leases/ledger.ts'
export { LeaseTable } from './leases/lease-table.ts'
export { MemoryLeaseLedger } from './leases/memory-ledger.ts'
export { LocalLeaseClient } from './leases/local-client.ts'
export { createGrantSigner, createGrantVerifier, generateSecretKey, grantPayload, type GrantSigner } from './leases/grants.ts'
export { resolveGrant } from './leases/claims.ts'
export { activityReport } from './hub/report.ts'
export { ENTITY_KINDS, ENTITY_TYPES, HUB_ENTITY_TYPES, HUB_KIND_NAMES, kindOfEntityType, type HubParticipantType } from './hub/words.ts'
export { CollaborationHub, type HubParticipant, type HubStatus } from './hub/collaboration-hub.ts'
export { connectSpace, type SpaceConnection } from './transports/space-sync.ts'
export {
  Replicator,
  PeerOrigin,
  encodeSyncStep1,
  encodeSyncStep2,
  encodeSyncUpdate,
  encodeAwarenessMessage,
  encodeQueryAwareness,
  messageSync,
  messageAwareness,
  messageAuth,
  messageQueryAwareness,
  readAwarenessUpdate,
  answerSyncMessage,
  type AwarenessEntry,
  type ReplicatorOptions,
  type ReplicatorStats,
} from './sync/replicator.ts'
export { MemoryStore } from './store/memory-store.ts'
export { persist, DEFAULT_COMPACT_EVERY, type Persistence, type PersistOptions, type PersistenceStats } from './store/persistence.ts'
export { persistSpace, type SpacePersistence } from './store/space-store.ts'
export { WebSocketTransport, syncUrl, backoffDelay, type WebSocketTransportOptions, type WebSocketTransportState, type WebSocketConstructor, type Timers } from './transports/websocket-transport.ts'
export { LEASE_PATH, MAX_LEASE_FRAME_BYTES, MAX_LEASE_KEY_LENGTH, grantSchema, leaseKeySchema, leaseRequestSchema, type LeaseWireRequest, type LeaseWireReply, type LeaseWireError, type LeaseLostPush } from './leases/wire.ts'
export { RelayLeaseClient, leaseUrl, type RelayLeaseClientOptions, type LeaseChannel, type LeaseChannelEvents, type LeaseChannelFactory } from './leases/relay-client.ts'
export { idSchema, nameSchema, channelSchema, kindSchema, prioritySchema, jsonSchema, checkId } from './validate.ts'
export { openRelaySpace, type RelaySpace, type RelaySpaceOptions } from './transports/relay-space.ts'
