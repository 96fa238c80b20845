import * as Y from 'yjs'
import { z } from 'zod'
import { resolveGrant, writtenUnderGrant } from '../leases/claims.ts'
import { checkLeaseDuration, DEFAULT_LOCK_MS } from '../leases/lease-client.ts'
import type { SpaceCore } from './core.ts'
import { ChorusError } from '../errors.ts'
import { assertJson, copyJson } from '../json.ts'
import { LIMITS, type Json, type LeaseGrant, type RecordedGrant, type Resource, type ResourceConflict, type ResourceKind, type Revision } from '../schema.ts'
import { checkId, checkJsonSize, idSchema, nameSchema, parse } from '../validate.ts'

export interface CreateResourceOptions {
  name: string
  owner: string
  /** Text or any JSON value. */
  data: Json
}

const createSchema = z.object({ name: nameSchema, owner: idSchema, data: z.unknown() })

export interface EditOptions {
  /** Refuse with `version_conflict` unless the resource is at this version (optimistic locking). */
  expectedVersion?: number
}

/**
 * A lock is held as a lease of at most this long, renewed until its timeout: if the holder's process dies, the
 * lock frees within this time rather than at the end of a long timeout.
 */
export const LOCK_LEASE_MS = 30_000

/**
 * Shared resources. Every edit is a revision naming the version it was made on (`base`); the version is the
 * length of that chain. Two replicas editing the same version concurrently produce two revisions with the same
 * base: both are kept, the later (by time, then id) is current, and the pair is reported as a conflict.
 * A lock is a lease on `resource:<id>` recorded in the resource; edits under it carry its token (L9).
 */
export class Resources {
  private readonly core: SpaceCore
  private readonly timers = new Map<string, ReturnType<typeof setTimeout>>()

  constructor(core: SpaceCore) {
    this.core = core
  }

  create(options: CreateResourceOptions): Resource {
    const o = parse(createSchema, options, 'resource')
    this.core.requireParticipant(o.owner)
    const data = o.data as Json
    assertJson(data, 'resource data')
    checkJsonSize('resource data', data, LIMITS.resourceData)
    const id = this.core.newId('r')
    const now = this.core.now()
    this.core.transact(() => {
      const m = new Y.Map<unknown>()
      m.set('name', o.name)
      m.set('owner', o.owner)
      m.set('kind', typeof data === 'string' ? 'text' : 'json')
      m.set('createdAt', now)
      const revisions = new Y.Array<Revision>()
      revisions.push([{ id: `${id}.0`, base: 0, data: copyJson(data), by: o.owner, at: now }])
      m.set('revisions', revisions)
      m.set('locks', new Y.Map())
      m.set('released', new Y.Map())
      this.core.resources.set(id, m)
      this.core.record({ type: 'resource_created', by: o.owner, ref: id, data: { name: o.name } }, now)
    })
    return this.require(id)
  }

  get(id: string): Resource | undefined {
    const m = this.core.resources.get(id)
    return m === undefined ? undefined : this.read(id, m)
  }

  require(id: string): Resource {
    const r = this.get(checkId(id, 'resource id'))
    if (r === undefined) throw new ChorusError('not_found', `unknown resource "${id}"`, { resource: id })
    return r
  }

  /** First resource with this name, if any. */
  byName(name: string): Resource | undefined {
    return this.list().find((r) => r.name === name)
  }

  list(): Resource[] {
    const out: Resource[] = []
    for (const [id, m] of this.core.resources) out.push(this.read(id, m))
    return out.sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : 1))
  }

  /** Writes a new revision. Refused when another participant holds the lock, or the version moved. */
  edit(id: string, by: string, data: Json, options: EditOptions = {}): Resource {
    const r = this.require(id)
    this.core.requireParticipant(by)
    assertJson(data, 'resource data')
    checkJsonSize('resource data', data, LIMITS.resourceData)
    if (r.lock !== undefined && r.lock.holder !== by) {
      throw new ChorusError('locked', `resource ${r.name} is locked by ${r.lock.holder}`, { resource: id, holder: r.lock.holder })
    }
    // L9: an edit under a lock carries its token; a lock this replica was told it lost writes nothing.
    if (r.lock !== undefined) this.core.checkFence(r.lock)
    if (options.expectedVersion !== undefined && options.expectedVersion !== r.version) {
      throw new ChorusError('version_conflict', `resource ${r.name} is at version ${r.version}, not ${options.expectedVersion}`, {
        resource: id,
        version: r.version,
        expected: options.expectedVersion,
      })
    }
    const now = this.core.now()
    this.core.transact(() => {
      const rev: Revision = { id: this.core.newId(id), base: r.version, data: copyJson(data), by, at: now }
      if (r.lock !== undefined) rev.token = r.lock.token
      ;((this.core.resources.get(id) as Y.Map<unknown>).get('revisions') as Y.Array<Revision>).push([rev])
      this.core.record({ type: 'edit', by, ref: id, data: { version: r.version + 1 } }, now)
    })
    return this.require(id)
  }

  /**
   * Locks the resource for `by` through the lease arbiter; the lock ends by itself after `timeout` ms
   * (auto-unlock) unless unlocked before. Throws `locked` when another holds it. The lease behind it is at most
   * `LOCK_LEASE_MS` long and renewed automatically until the timeout.
   */
  async lock(id: string, by: string, options: { timeout?: number } = {}): Promise<Resource> {
    const r = this.require(id)
    this.core.requireParticipant(by)
    if (r.lock !== undefined && r.lock.holder !== by) {
      throw new ChorusError('locked', `resource ${r.name} is locked by ${r.lock.holder}`, { resource: id, holder: r.lock.holder })
    }
    const timeout = checkLeaseDuration(options.timeout ?? DEFAULT_LOCK_MS, 'lock timeout')
    const leases = await this.core.leaseClient()
    const sentAt = this.core.now()
    const grant = await leases.acquire({ space: this.core.id, key: `resource:${id}`, holder: by, duration: Math.min(timeout, LOCK_LEASE_MS) })
    this.recordLock(id, grant, sentAt)
    this.scheduleUnlock(id, grant, timeout)
    if (timeout > grant.duration) {
      this.core.keeper?.keep(grant, sentAt, {
        until: sentAt + timeout,
        onRenewed: (renewed, at) => {
          try {
            this.recordLock(id, renewed, at)
          } catch {
            this.core.keeper?.stop(renewed.key)
          }
        },
      })
    }
    return this.require(id)
  }

  /** Records a lock grant for `resource:<id>` (from this replica, or written by the relay). */
  recordLock(id: string, grant: LeaseGrant, at = this.core.now()): void {
    this.require(id)
    if (grant.key !== `resource:${id}`) throw new ChorusError('invalid_input', `grant is for ${grant.key}, not resource:${id}`)
    if (!this.core.verifyGrant(grant)) throw new ChorusError('invalid_input', 'grant signature does not verify against the relay key')
    this.core.transact(() => {
      const locks = (this.core.resources.get(id) as Y.Map<unknown>).get('locks') as Y.Map<RecordedGrant>
      const isNew = !locks.has(String(grant.token))
      locks.set(String(grant.token), { ...grant, at })
      if (isNew) this.core.record({ type: 'lock', by: grant.holder, ref: id, data: { token: grant.token, duration: grant.duration } }, at)
    })
  }

  async unlock(id: string, by: string): Promise<Resource> {
    const r = this.require(id)
    if (r.lock === undefined) throw new ChorusError('conflict', `resource ${r.name} is not locked`, { resource: id })
    if (r.lock.holder !== by) throw new ChorusError('forbidden', `resource ${r.name} is locked by ${r.lock.holder}, not ${by}`, { resource: id })
    const lock = r.lock
    this.cancelTimer(id)
    this.core.keeper?.stop(lock.key)
    this.markReleased(id, lock, by)
    await this.core.releaseQuietly(lock)
    return this.require(id)
  }

  /** Clears auto-unlock timers. */
  destroy(): void {
    for (const t of this.timers.values()) clearTimeout(t)
    this.timers.clear()
  }

  private markReleased(id: string, lock: LeaseGrant, by: string): void {
    this.core.transact(() => {
      ;((this.core.resources.get(id) as Y.Map<unknown>).get('released') as Y.Map<unknown>).set(String(lock.token), this.core.now())
      this.core.record({ type: 'unlock', by, ref: id, data: { token: lock.token } })
    })
  }

  private scheduleUnlock(id: string, grant: LeaseGrant, timeout: number): void {
    this.cancelTimer(id)
    const t = setTimeout(() => {
      this.timers.delete(id)
      this.core.keeper?.stop(grant.key)
      const current = this.get(id)?.lock
      // Views already treat the lock as gone once it ran out; writing the unlock records it in the history.
      if (current === undefined || current.token === grant.token) {
        this.markReleased(id, grant, grant.holder)
        void this.core.releaseQuietly(grant).catch(() => undefined)
      }
    }, timeout)
    t.unref?.()
    this.timers.set(id, t)
  }

  private cancelTimer(id: string): void {
    const t = this.timers.get(id)
    if (t !== undefined) clearTimeout(t)
    this.timers.delete(id)
  }

  private read(id: string, m: Y.Map<unknown>): Resource {
    const locks = m.get('locks') as Y.Map<RecordedGrant>
    const verify = (g: LeaseGrant): boolean => this.core.verifyGrant(g)
    const released = m.get('released') as Y.Map<unknown>
    const lock = resolveGrant(locks, released, verify, this.core.now(), `resource:${id}`)
    // Fenced revisions (L9) count only when their token is a verified grant held by the editor.
    const revisions = (m.get('revisions') as Y.Array<Revision>)
      .toArray()
      .map((rev) => ({ ...rev, data: copyJson(rev.data) }))
      .filter((rev) => rev.token === undefined || writtenUnderGrant(locks, released, rev.token, rev.by, rev.at, verify, `resource:${id}`))
    const byBase = new Map<number, Revision[]>()
    for (const rev of revisions) {
      const list = byBase.get(rev.base)
      if (list === undefined) byBase.set(rev.base, [rev])
      else list.push(rev)
    }
    const conflicts: ResourceConflict[] = []
    let top = -1
    let current: Revision | undefined
    for (const [base, list] of [...byBase].sort((a, b) => a[0] - b[0])) {
      list.sort((a, b) => a.at - b.at || (a.id < b.id ? -1 : 1))
      const kept = list[list.length - 1] as Revision
      for (const other of list.slice(0, -1)) conflicts.push({ version: base + 1, kept, other })
      if (base > top) {
        top = base
        current = kept
      }
    }
    const r: Resource = {
      id,
      name: m.get('name') as string,
      owner: m.get('owner') as string,
      kind: m.get('kind') as ResourceKind,
      createdAt: m.get('createdAt') as number,
      version: top + 1,
      data: current?.data ?? null,
      conflicts,
    }
    if (lock !== undefined) r.lock = lock
    return r
  }
}
