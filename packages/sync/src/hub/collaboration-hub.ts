import type { Clock } from '../clock.ts'
import { ChorusError, isChorusError } from '../errors.ts'
import type { ChorusEvent, EventType } from '../events/events.ts'
import type { LeaseClient } from '../leases/lease-client.ts'
import { LocalLeaseClient } from '../leases/local-client.ts'
import { PRIORITIES, type Json, type Message, type Priority } from '../schema.ts'
import { Space } from '../space/space.ts'
import type { StateMode } from '../space/state.ts'
import { openRelaySpace } from '../transports/relay-space.ts'
import { activityReport } from './report.ts'
import { HUB_KIND_NAMES, PARTICIPANT_TYPE_KINDS, type HubParticipantType } from './words.ts'

export interface HubParticipant {
  id: string
  name: string
  type: string
  metadata: Record<string, Json>
  joinedAt: number
  lastSeen: number
  isActive: boolean
}

export interface HubStatus {
  name: string
  status: 'online' | 'idle' | 'offline'
  lastSeen: number
  /** The hub's own wording, e.g. "online (last seen 0.0s ago)". */
  text: string
}

/**
 * The collaboration hub's API (docs/HUBS.md) on top of a Space, for code ported from the Python hub.
 * Names follow the hub in camelCase; timeouts are in seconds, as the hub had them.
 *
 * Locks: `CollaborationHub.connect({ hubId, relay })` shares the hub through a relay, whose leases arbitrate
 * locks between every process on it. Built with `new CollaborationHub({ hubId })` and no `leases`, the hub uses a
 * `LocalLeaseClient`: locks are arbitrated inside this replica only, as in the single-process hub.
 */
export class CollaborationHub {
  readonly hubId: string
  readonly space: Space
  private readonly clock: Clock | undefined
  private disconnect: (() => Promise<void>) | undefined

  /**
   * The hub as a replica of the space `hubId` on a relay: state, messages and resources sync with every other
   * participant there, and locks are the relay's leases (renewed while held, auto-unlocked at the timeout).
   */
  static async connect(options: { hubId: string; relay: string; token?: string; clock?: Clock }): Promise<CollaborationHub> {
    const shared = await openRelaySpace({ relay: options.relay, space: options.hubId, token: options.token, clock: options.clock })
    try {
      await shared.synced()
    } catch (e) {
      await shared.close()
      throw e
    }
    const hub = new CollaborationHub({ hubId: options.hubId, space: shared.space, clock: options.clock })
    hub.disconnect = () => shared.close()
    return hub
  }

  constructor(options: { hubId: string; leases?: LeaseClient; clock?: Clock; space?: Space }) {
    this.hubId = options.hubId
    this.clock = options.clock
    this.space =
      options.space ??
      new Space({ id: options.hubId, leases: options.leases ?? new LocalLeaseClient({ clock: options.clock }), clock: options.clock })
    this.space.initialize()
  }

  /** Adds a participant and returns its id. */
  addParticipant(name: string, type: HubParticipantType, metadata: Record<string, Json> = {}, id?: string): string {
    const kind = Object.hasOwn(PARTICIPANT_TYPE_KINDS, type) ? PARTICIPANT_TYPE_KINDS[type] : undefined
    if (kind === undefined) throw new ChorusError('invalid_input', `participant type must be one of ${Object.keys(PARTICIPANT_TYPE_KINDS).join(', ')}, got "${type}"`)
    return this.space.join({ name, kind, metadata, id }).id
  }

  removeParticipant(participantId: string): void {
    this.space.member(participantId).leave()
  }

  /** Broadcasts when `recipientId` is absent; priorities as the hub had them (upper or lower case). */
  sendMessage(senderId: string, content: string, recipientId?: string, priority: Priority | Uppercase<Priority> = 'normal', channel?: string): Message {
    const p = priority.toLowerCase() as Priority
    if (!PRIORITIES.includes(p)) throw new ChorusError('invalid_input', `priority must be one of ${PRIORITIES.join(', ')}, got "${priority}"`)
    return this.space.member(senderId).send(content, { priority: p, to: recipientId, channel })
  }

  updateSharedState(participantId: string, key: string, value: Json, mode: StateMode = 'replace'): void {
    this.space.member(participantId).set(key, value, mode)
  }

  /** One key's value, or every key when called without one. */
  getSharedState(key?: string): Json | undefined {
    return key === undefined ? this.space.state.all() : this.space.state.get(key)
  }

  /** Creates a resource and returns its id. */
  createResource(name: string, ownerId: string, initialData: Json = ''): string {
    return this.space.member(ownerId).createResource(name, initialData).id
  }

  /** True when the lock was taken; false when someone else holds it. Auto-unlocks after `timeout` seconds. */
  async lockResource(resourceId: string, participantId: string, timeout = 300): Promise<boolean> {
    try {
      await this.space.member(participantId).lock(resourceId, { timeout: timeout * 1000 })
      return true
    } catch (e) {
      if (isChorusError(e, 'locked')) return false
      throw e
    }
  }

  /** True when the edit was written; false when locked by another or `version` is not the current version. */
  editResource(resourceId: string, participantId: string, newData: Json, version?: number): boolean {
    try {
      this.space.member(participantId).edit(resourceId, newData, { expectedVersion: version })
      return true
    } catch (e) {
      if (isChorusError(e, 'locked') || isChorusError(e, 'version_conflict')) return false
      throw e
    }
  }

  /** True when unlocked; false when the participant did not hold the lock. */
  async unlockResource(resourceId: string, participantId: string): Promise<boolean> {
    try {
      await this.space.member(participantId).unlock(resourceId)
      return true
    } catch (e) {
      if (isChorusError(e, 'forbidden') || isChorusError(e, 'conflict')) return false
      throw e
    }
  }

  getResource(resourceId: string): { id: string; name: string; ownerId: string; lockedBy: string | null; version: number; data: Json } {
    const r = this.space.resources.require(resourceId)
    return { id: r.id, name: r.name, ownerId: r.owner, lockedBy: r.lock?.holder ?? null, version: r.version, data: r.data }
  }

  onEvent<T extends EventType>(type: T | '*', handler: (event: ChorusEvent<T>) => void): () => void {
    return this.space.events.on(type, handler)
  }

  /** Participants that have not left and are online or idle. */
  getActiveParticipants(): HubParticipant[] {
    return this.participants().filter((p) => p.isActive)
  }

  participants(): HubParticipant[] {
    return this.space.participants.list().map((p) => {
      const presence = this.space.presence.status(p.id)
      return {
        id: p.id,
        name: p.name,
        type: HUB_KIND_NAMES[p.kind],
        metadata: p.metadata,
        joinedAt: p.joinedAt,
        lastSeen: presence.lastSeen,
        isActive: p.leftAt === undefined && presence.status !== 'offline',
      }
    })
  }

  getParticipantStatus(participantId: string): HubStatus {
    const p = this.space.participants.get(participantId)
    if (p === undefined) throw new ChorusError('not_found', `unknown participant "${participantId}"`)
    const s = this.space.presence.status(participantId)
    const ago = Math.max(0, ((this.clock?.now() ?? Date.now()) - s.lastSeen) / 1000)
    return { name: p.name, status: s.status, lastSeen: s.lastSeen, text: `${s.status} (last seen ${ago.toFixed(1)}s ago)` }
  }

  /** The newest `limit` events (oldest first), optionally of one type and/or one participant. */
  getRecentEvents(limit = 10, eventType?: EventType, participantId?: string): ChorusEvent[] {
    return this.space.events.history({ limit, type: eventType, participant: participantId })
  }

  generateActivityReport(): string {
    return activityReport(this.space, { hubId: this.hubId })
  }

  /** Stops syncing (for a connected hub) and destroys the space. */
  async close(): Promise<void> {
    const disconnect = this.disconnect
    this.disconnect = undefined
    if (disconnect !== undefined) await disconnect()
    else this.space.destroy()
  }

  destroy(): void {
    if (this.disconnect !== undefined) void this.close()
    else this.space.destroy()
  }
}
