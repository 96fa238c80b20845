import * as Y from 'yjs'
import type { Awareness } from 'y-protocols/awareness'
import { systemClock, type Clock } from '../clock.ts'
import { ChorusError } from '../errors.ts'
import { EventStream } from '../events/event-stream.ts'
import type { ChorusEvent, EventType } from '../events/events.ts'
import type { LeaseClient } from '../leases/lease-client.ts'
import { SCHEMA_VERSION, type Json, type LeaseGrant, type Message, type Participant, type Priority, type Proposal, type Resource, type RestrictedChannel, type Task, type Vote } from '../schema.ts'
import { checkId } from '../validate.ts'
import { SpaceCore } from './core.ts'
import { Messages } from './messages.ts'
import { Participants, type JoinOptions } from './participants.ts'
import { Presence, type PresenceInfo } from './presence.ts'
import { Proposals, type CreateProposalOptions } from './proposals.ts'
import { Resources } from './resources.ts'
import { SharedState, type StateMode } from './state.ts'
import { Tasks, type CreateTaskOptions } from './tasks.ts'

export interface SpaceOptions {
  /** The space's id (its name on the relay). */
  id: string
  /** An existing document to wrap; a new one otherwise. */
  doc?: Y.Doc
  /** Time source for timestamps, expiry and presence; the system clock by default. */
  clock?: Clock
  /** The lease arbiter's client, for task claims and resource locks. */
  leases?: LeaseClient
  /** Replaces the default grant check (Ed25519 against `meta.relayKey`). */
  verifyGrant?: (grant: LeaseGrant) => boolean
  awareness?: Awareness
  /** Random source for generated ids (seed it in tests for reproducible runs). */
  random?: () => number
  /** Presence turns from online to idle after this long without activity (default 5 min). */
  idleAfterMs?: number
  /** Existing documents for the restricted channels (`<id>#ai-only`, `<id>#human-only`); new ones otherwise. */
  restricted?: Partial<Record<RestrictedChannel, Y.Doc>>
}

/** One named document of a space, for persistence and transports. */
export interface SpaceDocument {
  /** `<space>` for the main document, `<space>#ai-only` and `<space>#human-only` for restricted channels. */
  name: string
  doc: Y.Doc
}

/** A JSON picture of everything a replica derives, for comparing replicas. */
export interface SpaceSnapshot {
  meta: Record<string, Json>
  participants: Participant[]
  state: Record<string, Json>
  messages: Message[]
  tasks: Task[]
  proposals: Proposal[]
  resources: Resource[]
  events: ChorusEvent[]
}

/**
 * A replica of one space: a Y.Doc (plus one per restricted channel) behind a typed API. Writes apply locally at
 * once and work offline; attach a Store to keep them and a Transport (through a Replicator) to share them.
 */
export class Space {
  readonly id: string
  readonly doc: Y.Doc
  readonly participants: Participants
  readonly presence: Presence
  readonly state: SharedState
  readonly messages: Messages
  readonly tasks: Tasks
  readonly proposals: Proposals
  readonly resources: Resources
  readonly events: EventStream
  private readonly core: SpaceCore

  constructor(options: SpaceOptions) {
    const id = checkId(options.id, 'space id')
    const doc = options.doc ?? new Y.Doc({ guid: id })
    const stored = doc.getMap('meta').get('schema')
    if (typeof stored === 'number' && stored > SCHEMA_VERSION) {
      throw new ChorusError('corrupt', `space ${id} uses schema ${stored}; this replica understands up to ${SCHEMA_VERSION}`)
    }
    const core = new SpaceCore({
      id,
      doc,
      clock: options.clock ?? systemClock,
      leases: options.leases,
      verifyGrant: options.verifyGrant,
      random: options.random,
      restricted: options.restricted,
    })
    this.core = core
    this.id = id
    this.doc = doc
    this.participants = new Participants(core)
    this.presence = new Presence(core, { awareness: options.awareness, idleAfterMs: options.idleAfterMs })
    this.state = new SharedState(core)
    this.messages = new Messages(core)
    this.tasks = new Tasks(core)
    this.proposals = new Proposals(core)
    this.resources = new Resources(core)
    this.events = new EventStream(core, () => this.resources.list(), options.leases)
  }

  /** The main document and the restricted-channel documents, each to be persisted and synced on its own. */
  get documents(): SpaceDocument[] {
    return [{ name: this.id, doc: this.doc }, ...[...this.core.restricted].map(([channel, doc]) => ({ name: `${this.id}#${channel}`, doc }))]
  }

  /** Schema version and the arbiter's public key. */
  get meta(): { schema: number; relayKey?: string } {
    const key = this.core.meta.get('relayKey')
    const schema = this.core.meta.get('schema')
    return { schema: typeof schema === 'number' ? schema : SCHEMA_VERSION, ...(typeof key === 'string' ? { relayKey: key } : {}) }
  }

  /** Writes the schema version into `meta` if it is not there yet (done by whoever first writes the space). */
  initialize(): void {
    if (this.core.meta.get('schema') === undefined) {
      this.core.transact(() => {
        this.core.meta.set('schema', SCHEMA_VERSION)
        this.core.meta.set('space', this.id)
      })
    }
  }

  /** Joins as a participant and announces presence; returns a handle that acts as that participant. */
  join(options: JoinOptions): Member {
    this.initialize()
    const p = this.participants.join(options)
    this.presence.touch(p.id)
    return new Member(this, p.id)
  }

  /** A handle for a participant that already joined. */
  member(id: string): Member {
    this.core.requireParticipant(id)
    return new Member(this, id)
  }

  snapshot(): SpaceSnapshot {
    const meta: Record<string, Json> = {}
    for (const k of [...this.core.meta.keys()].sort()) meta[k] = this.core.meta.get(k) as Json
    return {
      meta,
      participants: this.participants.list(),
      state: this.state.all(),
      messages: this.messages.all(),
      tasks: this.tasks.list(),
      proposals: this.proposals.list(),
      resources: this.resources.list(),
      events: this.events.history(),
    }
  }

  /** Stops timers and listeners; the documents are left as they are. */
  destroy(): void {
    this.core.destroy()
    this.resources.destroy()
    this.events.destroy()
    this.presence.destroy()
  }
}

/** A participant's view of a space: every call acts as that participant and counts as activity for presence. */
export class Member {
  readonly space: Space
  readonly id: string

  constructor(space: Space, id: string) {
    this.space = space
    this.id = id
  }

  private active<T>(result: T): T {
    this.space.presence.touch(this.id)
    return result
  }

  send(content: string, options: { channel?: string; to?: string; priority?: Priority; replyTo?: string } = {}): Message {
    return this.active(this.space.messages.send({ ...options, from: this.id, content }))
  }

  /** Unread messages meant for this participant; they stay unread until `ack`. */
  inbox(options: { limit?: number } = {}): Message[] {
    return this.active(this.space.messages.inbox(this.id, options))
  }

  ack(messages?: ReadonlyArray<Pick<Message, 'id'>>): number {
    return this.active(this.space.messages.ack(this.id, messages))
  }

  set(key: string, value: Json, mode: StateMode = 'replace'): void {
    this.active(this.space.state.set(key, value, { by: this.id, mode }))
  }

  createTask(options: Omit<CreateTaskOptions, 'createdBy'>): Task {
    return this.active(this.space.tasks.create({ ...options, createdBy: this.id }))
  }

  async claim(taskId: string, options: { duration?: number } = {}): Promise<Task> {
    return this.active(await this.space.tasks.claim(taskId, this.id, options))
  }

  async complete(taskId: string, result?: Json): Promise<Task> {
    return this.active(await this.space.tasks.complete(taskId, this.id, result))
  }

  propose(options: Omit<CreateProposalOptions, 'proposer'>): Proposal {
    return this.active(this.space.proposals.create({ ...options, proposer: this.id }))
  }

  vote(proposalId: string, vote: Vote): void {
    this.active(this.space.proposals.vote(proposalId, this.id, vote))
  }

  createResource(name: string, data: Json): Resource {
    return this.active(this.space.resources.create({ name, owner: this.id, data }))
  }

  async lock(resourceId: string, options: { timeout?: number } = {}): Promise<Resource> {
    return this.active(await this.space.resources.lock(resourceId, this.id, options))
  }

  edit(resourceId: string, data: Json, options: { expectedVersion?: number } = {}): Resource {
    return this.active(this.space.resources.edit(resourceId, this.id, data, options))
  }

  async unlock(resourceId: string): Promise<Resource> {
    return this.active(await this.space.resources.unlock(resourceId, this.id))
  }

  on<T extends EventType>(type: T | '*', handler: (event: ChorusEvent<T>) => void): () => void {
    return this.space.events.on(type, handler)
  }

  status(): PresenceInfo {
    return this.space.presence.status(this.id)
  }

  leave(): void {
    this.space.participants.leave(this.id)
    this.space.presence.remove(this.id)
  }
}
