import type { ChorusEvent, EventType } from '../events/events.ts'
import type { PresenceInfo } from './presence.ts'
import type { Json, Message, Priority, Proposal, Resource, Task, Vote } from '../schema.ts'
import type { Space } from './space.ts'
import type { StateMode } from './state.ts'
import type { CreateProposalOptions } from './proposals.ts'
import type { CreateTaskOptions } from './tasks.ts'

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
