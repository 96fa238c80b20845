import * as Y from 'yjs'
import { z } from 'zod'
import { resolveGrant, writtenUnderGrant } from '../leases/claims.ts'
import { checkLeaseDuration, DEFAULT_CLAIM_MS } from '../leases/lease-client.ts'
import type { SpaceCore } from './core.ts'
import { ChorusError } from '../errors.ts'
import { readEntry } from './log.ts'
import type { ActivityRecord } from '../events/events.ts'
import { LIMITS, TASK_STATUSES, type Json, type LeaseGrant, type Priority, type RecordedGrant, type Task, type TaskStatus, type TaskTransition } from '../schema.ts'
import { assertJson, copyJson } from '../json.ts'
import { checkId, checkJsonSize, checkSize, idSchema, parse, prioritySchema } from '../validate.ts'

export interface CreateTaskOptions {
  title: string
  description?: string
  priority?: Priority
  requiresHuman?: boolean
  createdBy: string
}

const createSchema = z.object({
  title: z.string({ error: 'title must be a string' }).trim().min(1, 'title must not be empty').max(LIMITS.titleLength),
  description: z.string().optional(),
  priority: prioritySchema.optional(),
  requiresHuman: z.boolean({ error: 'requiresHuman must be a boolean' }).optional(),
  createdBy: idSchema,
})


interface Completion {
  by: string
  at: number
  token: number
  result?: Json
}

/**
 * The task list. A claim is a lease on `task:<id>` granted by the arbiter and recorded in the task (L8);
 * completion is accepted only from the holder of the claim in force, and only that completion counts in views.
 */
export class Tasks {
  private readonly core: SpaceCore

  constructor(core: SpaceCore) {
    this.core = core
  }

  create(options: CreateTaskOptions): Task {
    const o = parse(createSchema, options, 'task')
    checkSize('task description', o.description ?? '', LIMITS.description)
    this.core.requireParticipant(o.createdBy)
    const id = this.core.newId('t')
    const now = this.core.now()
    this.core.transact(() => {
      const m = new Y.Map<unknown>()
      m.set('title', o.title)
      m.set('description', o.description ?? '')
      m.set('priority', o.priority ?? 'normal')
      m.set('requiresHuman', o.requiresHuman ?? false)
      m.set('createdBy', o.createdBy)
      m.set('createdAt', now)
      m.set('claims', new Y.Map())
      m.set('released', new Y.Map())
      m.set('completions', new Y.Map())
      this.core.tasks.set(id, m)
      this.core.record(
        { type: 'task_created', by: o.createdBy, ref: id, data: { title: o.title, priority: o.priority ?? 'normal', requiresHuman: o.requiresHuman ?? false } },
        now,
      )
    })
    return this.require(id)
  }

  get(id: string): Task | undefined {
    const m = this.core.tasks.get(id)
    return m === undefined ? undefined : this.read(id, m)
  }

  require(id: string): Task {
    const t = this.get(checkId(id, 'task id'))
    if (t === undefined) throw new ChorusError('not_found', `unknown task "${id}"`, { task: id })
    return t
  }

  /** Tasks in creation order, optionally of one status. */
  list(filter: { status?: TaskStatus } = {}): Task[] {
    if (filter.status !== undefined && !TASK_STATUSES.includes(filter.status)) {
      throw new ChorusError('invalid_input', `status must be one of ${TASK_STATUSES.join(', ')}`)
    }
    const out: Task[] = []
    for (const [id, m] of this.core.tasks) {
      const t = this.read(id, m)
      if (filter.status === undefined || t.status === filter.status) out.push(t)
    }
    return out.sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : 1))
  }

  /**
   * Asks the arbiter for the lease on this task and records the grant. Throws `conflict` when held by another.
   * The claim is renewed automatically (each renewal recorded) until completed or released, unless `renew` is
   * false; if a renewal is refused the claim is lost (`lease_lost` event) and completing under it throws `fenced`.
   */
  async claim(id: string, by: string, options: { duration?: number; renew?: boolean } = {}): Promise<Task> {
    const task = this.require(id)
    this.checkClaimant(task, by)
    const duration = checkLeaseDuration(options.duration ?? DEFAULT_CLAIM_MS, 'claim duration')
    const leases = await this.core.leaseClient()
    let grant: LeaseGrant
    // L3: the holder counts the grant from when it asked, so delays only shorten what it believes it holds.
    const sentAt = this.core.now()
    try {
      grant = await leases.acquire({ space: this.core.id, key: `task:${id}`, holder: by, duration })
    } catch (e) {
      if (e instanceof ChorusError && e.code === 'locked') throw new ChorusError('conflict', `task ${id} is already claimed`, e.details)
      throw e
    }
    this.recordClaim(id, grant, sentAt)
    if (options.renew !== false) this.keep(id, grant, sentAt)
    return this.require(id)
  }

  private keep(id: string, grant: LeaseGrant, sentAt: number): void {
    this.core.keeper?.keep(grant, sentAt, {
      onRenewed: (renewed, at) => {
        // The task may have been completed or removed meanwhile; a failed record must not stop the timer chain.
        try {
          this.recordClaim(id, renewed, at)
        } catch {
          this.core.keeper?.stop(renewed.key)
        }
      },
    })
  }

  /**
   * Records a grant for `task:<id>` (from this replica's claim, or written by the relay). `at` is when the
   * request was sent (L3); it defaults to now.
   */
  recordClaim(id: string, grant: LeaseGrant, at = this.core.now()): void {
    const task = this.require(id)
    if (grant.key !== `task:${id}`) throw new ChorusError('invalid_input', `grant is for ${grant.key}, not task:${id}`)
    if (!this.core.verifyGrant(grant)) throw new ChorusError('invalid_input', 'grant signature does not verify against the relay key')
    this.checkClaimant(task, grant.holder)
    const m = this.core.tasks.get(id) as Y.Map<unknown>
    this.core.transact(() => {
      const claims = m.get('claims') as Y.Map<RecordedGrant>
      const isNew = !claims.has(String(grant.token))
      claims.set(String(grant.token), { ...grant, at })
      if (isNew) this.core.record({ type: 'task_claimed', by: grant.holder, ref: id, data: { token: grant.token } }, at)
    })
  }

  /** Renews the holder's claim (same token) so it does not run out. */
  async renew(id: string, by: string, options: { duration?: number } = {}): Promise<Task> {
    const claim = this.holderClaim(id, by)
    const duration = checkLeaseDuration(options.duration ?? claim.duration, 'claim duration')
    const leases = await this.core.leaseClient()
    const sentAt = this.core.now()
    const renewed = await leases.renew(claim, duration)
    this.recordClaim(id, renewed, sentAt)
    if (this.core.keeper?.keeps(claim.key, claim.token) === true) this.keep(id, renewed, sentAt)
    return this.require(id)
  }

  /** Gives the task back: the lease is released and the task is open again. */
  async release(id: string, by: string): Promise<Task> {
    const claim = this.holderClaim(id, by)
    const leases = await this.core.leaseClient()
    this.core.keeper?.stop(claim.key)
    await leases.release(claim)
    this.core.transact(() => {
      ;((this.core.tasks.get(id) as Y.Map<unknown>).get('released') as Y.Map<unknown>).set(String(claim.token), this.core.now())
      this.core.record({ type: 'task_released', by, ref: id, data: { token: claim.token } })
    })
    return this.require(id)
  }

  /** Completes the task; only the holder of the claim in force may. The lease is released afterwards. */
  async complete(id: string, by: string, result?: Json): Promise<Task> {
    const claim = this.holderClaim(id, by)
    // L9: a claim this replica was told it lost cannot complete the task, even if views still show it.
    this.core.checkFence(claim)
    if (result !== undefined) {
      assertJson(result, 'task result')
      checkJsonSize('task result', result, LIMITS.taskResult)
    }
    const at = this.core.now()
    this.core.transact(() => {
      const c: Completion = { by, at, token: claim.token }
      if (result !== undefined) c.result = copyJson(result)
      ;((this.core.tasks.get(id) as Y.Map<unknown>).get('completions') as Y.Map<Completion>).set(String(claim.token), c)
      const data: Record<string, Json> = { token: claim.token }
      if (result !== undefined) data.result = copyJson(result)
      this.core.record({ type: 'task_completed', by, ref: id, data }, at)
    })
    this.core.keeper?.stop(claim.key)
    await this.core.releaseQuietly(claim)
    return this.require(id)
  }

  private holderClaim(id: string, by: string): RecordedGrant {
    const task = this.require(id)
    if (task.status === 'completed') throw new ChorusError('conflict', `task ${id} is already completed`, { task: id })
    if (task.claim === undefined || task.claim.holder !== by) {
      throw new ChorusError('forbidden', `${by} does not hold the claim on task ${id}`, { task: id, holder: task.claim?.holder ?? null })
    }
    return task.claim
  }

  private checkClaimant(task: Task, by: string): void {
    const p = this.core.requireParticipant(by)
    if (task.status === 'completed') throw new ChorusError('conflict', `task ${task.id} is already completed`, { task: task.id })
    if (task.requiresHuman && p.kind !== 'human') {
      throw new ChorusError('forbidden', `task ${task.id} requires a human; ${by} is ${p.kind}`, { task: task.id })
    }
  }

  private read(id: string, m: Y.Map<unknown>): Task {
    const claims = m.get('claims') as Y.Map<RecordedGrant>
    const released = m.get('released') as Y.Map<unknown>
    const completions = m.get('completions') as Y.Map<Completion>
    const verify = (g: LeaseGrant): boolean => this.core.verifyGrant(g)
    // Only a completion made under a valid claim counts; of those, the highest token's (L8).
    let done: Completion | undefined
    for (const c of completions.values()) {
      if ((done === undefined || c.token > done.token) && writtenUnderGrant(claims, released, c.token, c.by, c.at, verify, `task:${id}`)) done = c
    }
    const claim = done === undefined ? resolveGrant(claims, released, verify, this.core.now(), `task:${id}`) : undefined
    const status: TaskStatus = done !== undefined ? 'completed' : claim !== undefined ? 'claimed' : 'open'
    const task: Task = {
      id,
      title: m.get('title') as string,
      description: m.get('description') as string,
      priority: m.get('priority') as Priority,
      requiresHuman: m.get('requiresHuman') as boolean,
      status,
      createdBy: m.get('createdBy') as string,
      createdAt: m.get('createdAt') as number,
      history: this.history(id),
    }
    if (claim !== undefined) task.claim = claim
    if (done !== undefined) {
      task.completedBy = done.by
      task.completedAt = done.at
      if (done.result !== undefined) task.result = copyJson(done.result)
    }
    return task
  }

  /** Transitions of one task, from the activity log, in agreed order. */
  private history(id: string): TaskTransition[] {
    const out: TaskTransition[] = []
    for (const e of this.core.activityFor(id)) {
      const r = readEntry<ActivityRecord>(e)
      const status: TaskStatus | undefined =
        r.type === 'task_created' || r.type === 'task_released' ? 'open' : r.type === 'task_claimed' ? 'claimed' : r.type === 'task_completed' ? 'completed' : undefined
      if (status === undefined) continue
      const t: TaskTransition = { status, by: r.by, at: e.at }
      const token = r.data?.token
      if (typeof token === 'number') t.token = token
      out.push(t)
    }
    return out
  }
}
