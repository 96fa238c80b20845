/**
 * Operations performed on a space replica as one participant: the relay runs these on its hosted spaces for the
 * HTTP agent API and /mcp. Every write goes through the typed API (validation, leases, events) like any other.
 */
import {
  activityReport,
  ChorusError,
  DEFAULT_LOCK_MS,
  mayReadMessage,
  type ChorusEvent,
  type Member,
  type Message,
  type ParticipantKind,
  type Space,
  type Task,
} from '@chorus/sync'
import type { Agent, Held, Results, WaitResult } from './agent.ts'
import type { Input, OperationName } from './operations.ts'

export interface SpaceAgentOptions {
  /** The participant the operations act as. */
  participant: string
  /**
   * Its kind when it is not a participant yet (it joins on its first operation), and the only kind it may have
   * when `fixedKind` (a token's kind).
   */
  kind?: ParticipantKind
  fixedKind?: boolean
}

type Handlers = { [N in OperationName]: (input: Input<N>, signal: AbortSignal | undefined) => Results[N] | Promise<Results[N]> }

const held = (grant: { token: number; at: number; duration: number }, until = grant.at + grant.duration): Held => ({
  token: grant.token,
  expires_at: until,
  duration_ms: grant.duration,
})

export class SpaceAgent implements Agent {
  readonly participant: string
  private readonly space: Space
  private readonly kind: ParticipantKind
  private readonly fixedKind: boolean
  private readonly handlers: Handlers

  constructor(space: Space, options: SpaceAgentOptions) {
    this.space = space
    this.participant = options.participant
    this.kind = options.kind ?? 'ai'
    this.fixedKind = options.fixedKind === true
    this.handlers = {
      join: (i) => this.join(i),
      // The typed API takes an absent option and an undefined one alike.
      send_message: (i) => this.me().send(i.content, { channel: i.channel, to: i.to, priority: i.priority, replyTo: i.reply_to }),
      read_inbox: (i) => {
        const me = this.me()
        const messages = me.inbox({ limit: i.limit })
        return { messages, acked: i.ack === true && messages.length > 0 ? me.ack(messages) : 0 }
      },
      wait_for: (i, signal) => this.waitFor(i, signal),
      create_task: (i) => this.me().createTask({ title: i.title, description: i.description, priority: i.priority, requiresHuman: i.requires_human }),
      list_tasks: (i) => this.space.tasks.list({ status: i.status }),
      // Not renewed by the relay: the holder renews (renew_claim) or lets the claim run out, as over REST.
      claim_task: async (i) => this.claimed(await this.space.tasks.claim(i.task_id, this.me().id, { renew: false, duration: i.duration_ms })),
      renew_claim: async (i) => this.claimed(await this.space.tasks.renew(i.task_id, this.me().id, { duration: i.duration_ms })),
      release_claim: (i) => this.space.tasks.release(i.task_id, this.me().id),
      complete_task: (i) => this.me().complete(i.task_id, i.result),
      create_proposal: (i) => this.me().propose({ title: i.title, description: i.description, threshold: i.threshold, quorum: i.quorum, deadline: i.deadline_ms }),
      vote: (i) => {
        this.me().vote(i.proposal_id, i.vote)
        return this.space.proposals.require(i.proposal_id)
      },
      list_proposals: (i) => this.space.proposals.list().filter((p) => i.status === undefined || p.status === i.status),
      get_state: (i) => {
        this.me()
        if (i.key === undefined) return { state: this.space.state.all() }
        const value = this.space.state.get(i.key)
        if (value === undefined) throw new ChorusError('not_found', `no state key "${i.key}"`, { key: i.key })
        return { key: i.key, value, ...this.space.state.author(i.key) }
      },
      set_state: (i) => {
        this.me().set(i.key, i.value, i.mode ?? 'replace')
        return { key: i.key, value: this.space.state.get(i.key) ?? null }
      },
      list_participants: () => {
        this.me()
        return this.space.participants.list().map((p) => {
          const presence = this.space.presence.status(p.id)
          return { ...p, presence: presence.status, lastSeen: presence.lastSeen, working_on: presence.task }
        })
      },
      lock_resource: async (i) => {
        const me = this.me()
        const existing = this.space.resources.get(i.resource) ?? this.space.resources.byName(i.resource)
        const target = existing ?? me.createResource(i.resource, '')
        const timeout = i.timeout_ms ?? DEFAULT_LOCK_MS
        const resource = await me.lock(target.id, { timeout })
        const lock = resource.lock
        if (lock === undefined) throw new ChorusError('conflict', `resource ${resource.name} could not be locked`, { resource: resource.id })
        return { resource, ...held(lock, lock.at + timeout) }
      },
      unlock_resource: (i) => {
        const r = this.space.resources.get(i.resource) ?? this.space.resources.byName(i.resource)
        if (r === undefined) throw new ChorusError('not_found', `no resource "${i.resource}"`, { resource: i.resource })
        return this.me().unlock(r.id)
      },
      report: () => ({ text: activityReport(this.space, { visible: (e) => this.mayRead(e) }) }),
    }
  }

  async call<N extends OperationName>(name: N, input: Input<N>, options: { signal?: AbortSignal } = {}): Promise<Results[N]> {
    const handler = this.handlers[name] as (input: Input<N>, signal: AbortSignal | undefined) => Results[N] | Promise<Results[N]>
    return await handler(input, options.signal)
  }

  /** The member acting, joining first (as `kind`, named by its id) if it never joined. */
  private me(): Member {
    const p = this.space.participants.get(this.participant)
    if (p === undefined || p.leftAt !== undefined) {
      return this.space.join({ id: this.participant, name: p?.name ?? this.participant, kind: p?.kind ?? this.kind })
    }
    if (this.fixedKind && p.kind !== this.kind) {
      throw new ChorusError('forbidden', `${this.participant} is registered as ${p.kind}, but this token is for a ${this.kind}`)
    }
    return this.space.member(this.participant)
  }

  private join(i: Input<'join'>): Results['join'] {
    const existing = this.space.participants.get(this.participant)
    const kind = i.kind ?? existing?.kind ?? this.kind
    if (this.fixedKind && kind !== this.kind) throw new ChorusError('forbidden', `this token is for a ${this.kind}, not a ${kind}`)
    this.space.join({
      id: this.participant,
      name: i.name ?? existing?.name ?? this.participant,
      kind,
      capabilities: i.capabilities ?? existing?.capabilities,
    })
    return this.space.participants.get(this.participant) as Results['join']
  }

  /**
   * A replica may hold what this participant may not read (the relay's holds every channel): message events of
   * restricted channels of another kind, and others' direct messages, are not shown to it.
   */
  private mayRead(e: ChorusEvent): boolean {
    if (e.type !== 'message') return true
    const p = this.space.participants.get(this.participant)
    return p !== undefined && mayReadMessage(p, (e as ChorusEvent<'message'>).data)
  }

  private claimed(task: Task): Results['claim_task'] {
    const claim = task.claim
    if (claim === undefined || claim.holder !== this.participant) throw new ChorusError('lease_lost', `the claim on task ${task.id} is no longer live`, { task: task.id })
    return { task, ...held(claim) }
  }

  /**
   * Messages and tasks: what is there now counts (an unread message, an open task), so nothing that arrived just
   * before the call is missed. Events: only those after `after`, or after the call.
   */
  private waitFor(i: Input<'wait_for'>, signal: AbortSignal | undefined): Promise<WaitResult> {
    const me = this.me()
    const mayClaimHumanTasks = this.space.participants.get(me.id)?.kind === 'human'
    const current = (): WaitResult | undefined => {
      if (i.for === 'message') {
        const message = me.inbox().find((m) => messageMatches(m, i))
        return message === undefined ? undefined : { matched: true, message }
      }
      if (i.for === 'task') {
        const wantsHuman = i.requires_human ?? (mayClaimHumanTasks ? undefined : false)
        const task = this.space.tasks
          .list({ status: 'open' })
          .find((t) => (wantsHuman === undefined || t.requiresHuman === wantsHuman) && (i.priority === undefined || t.priority === i.priority) && (i.from === undefined || t.createdBy === i.from))
        return task === undefined ? undefined : { matched: true, task }
      }
      if (i.after === undefined) return undefined
      const event = this.space.events.history({ after: i.after }).find((e) => eventMatches(e, i) && this.mayRead(e))
      return event === undefined ? undefined : { matched: true, event }
    }
    const now = current()
    if (now !== undefined) return Promise.resolve(now)
    let cursor = i.for === 'event' ? (i.after ?? this.space.events.history({ limit: 1 })[0]?.id) : undefined
    return new Promise<WaitResult>((resolve) => {
      const finish = (result: WaitResult): void => {
        clearTimeout(timer)
        off()
        signal?.removeEventListener('abort', aborted)
        resolve(result)
      }
      const timer = setTimeout(() => finish(cursor === undefined ? { matched: false } : { matched: false, cursor }), i.timeout_ms)
      const aborted = (): void => finish({ matched: false })

      signal?.addEventListener('abort', aborted)
      const off = this.space.events.on('*', (event) => {
        if (i.for === 'event') {
          cursor = event.id
          if (eventMatches(event, i) && this.mayRead(event)) finish({ matched: true, event })
          return
        }
        // Only what can change the answer is worth a look: reading an inbox walks the whole message log.
        if (!(i.for === 'message' ? event.type === 'message' : TASK_OPENING.has(event.type))) return
        const found = current()
        if (found !== undefined) finish(found)
      })
    })
  }
}

/**
 * Events after which an open task may be there that was not before. A claim that runs out is one: the relay's
 * arbiter expires it and its replica hears `lease_lost`.
 */
const TASK_OPENING = new Set<string>(['task_created', 'task_released', 'lease_lost'])

const messageMatches = (m: Message, i: Input<'wait_for'>): boolean =>
  (i.from === undefined || m.from === i.from) && (i.channel === undefined || m.channel === i.channel) && (i.priority === undefined || m.priority === i.priority)

const eventMatches = (e: ChorusEvent, i: Input<'wait_for'>): boolean => (i.type === undefined || e.type === i.type) && (i.from === undefined || e.participant === i.from)
