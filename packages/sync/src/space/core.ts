import * as Y from 'yjs'
import type { Clock } from '../clock.ts'
import { ChorusError } from '../errors.ts'
import type { ActivityRecord } from '../events/events.ts'
import { createGrantVerifier } from '../leases/grants.ts'
import type { LeaseClient } from '../leases/lease-client.ts'
import { LeaseKeeper } from '../leases/keeper.ts'
import { compareEntries, JsonLog, readEntry, type LogEntry } from './log.ts'
import { copyJson } from '../json.ts'
import { ROOT, RESTRICTED_CHANNELS, type LeaseGrant, type Participant, type RestrictedChannel } from '../schema.ts'

/** Marks transactions made through this replica's API (as opposed to remote or stored updates). */
export const LOCAL_ORIGIN: unique symbol = Symbol.for('chorus.local')

/**
 * What every part of the typed API shares: the documents, the logs, the clock and the lease client.
 * Internal to the package; users see `Space`.
 */
export class SpaceCore {
  readonly id: string
  readonly doc: Y.Doc
  /** Documents of the restricted channels, keyed by channel; each holds its own `messages` log. */
  readonly restricted: ReadonlyMap<RestrictedChannel, Y.Doc>
  readonly clock: Clock
  readonly leases: LeaseClient | undefined
  readonly activity: JsonLog
  readonly messageLogs: ReadonlyMap<string, JsonLog>
  readonly meta: Y.Map<unknown>
  readonly participants: Y.Map<Y.Map<unknown>>
  readonly state: Y.Map<unknown>
  readonly tasks: Y.Map<Y.Map<unknown>>
  readonly proposals: Y.Map<Y.Map<unknown>>
  readonly resources: Y.Map<Y.Map<unknown>>
  /** Read cursors: `<participant>\u0000<writer>\u0000<replica>` → highest acknowledged clock of that writer. */
  readonly cursors: Y.Map<number>
  private readonly customVerify: ((grant: LeaseGrant) => boolean) | undefined
  private verifier: { key: string; verify: (grant: LeaseGrant) => boolean } | undefined
  private byRef: Map<string, LogEntry[]> | undefined
  private readonly random: () => number
  /** Grants this replica was told it lost (`<key>\u0000<token>`): writes under them are refused (L9). */
  private readonly lost = new Set<string>()
  private readonly stopLost: (() => void) | undefined
  /** Renews the claims and locks this replica holds. */
  readonly keeper: LeaseKeeper | undefined

  constructor(options: {
    id: string
    doc: Y.Doc
    clock: Clock
    leases?: LeaseClient
    verifyGrant?: (grant: LeaseGrant) => boolean
    random?: () => number
    restricted?: Partial<Record<RestrictedChannel, Y.Doc>>
  }) {
    this.random = options.random ?? Math.random
    this.id = options.id
    this.doc = options.doc
    this.clock = options.clock
    this.leases = options.leases
    this.customVerify = options.verifyGrant
    const d = this.doc
    this.meta = d.getMap(ROOT.meta)
    this.participants = d.getMap(ROOT.participants)
    this.state = d.getMap(ROOT.state)
    this.tasks = d.getMap(ROOT.tasks)
    this.proposals = d.getMap(ROOT.proposals)
    this.resources = d.getMap(ROOT.resources)
    this.cursors = d.getMap(ROOT.cursors)
    this.activity = new JsonLog(d.getText(ROOT.activity))
    const restricted = new Map<RestrictedChannel, Y.Doc>()
    const logs = new Map<string, JsonLog>([['main', new JsonLog(d.getText(ROOT.messages))]])
    for (const channel of Object.keys(RESTRICTED_CHANNELS) as RestrictedChannel[]) {
      const sub = options.restricted?.[channel] ?? new Y.Doc({ guid: `${this.id}#${channel}` })
      restricted.set(channel, sub)
      logs.set(channel, new JsonLog(sub.getText(ROOT.messages)))
    }
    this.restricted = restricted
    this.messageLogs = logs
    if (options.leases !== undefined) {
      this.keeper = new LeaseKeeper(options.leases, options.clock)
      this.stopLost = options.leases.onLost((grant) => {
        if (grant.space !== this.id) return
        this.lost.add(`${grant.key}\u0000${grant.token}`)
        if (this.keeper?.keeps(grant.key, grant.token) === true) this.keeper.stop(grant.key)
      })
    }
  }

  /** Throws `fenced` when the lease client reported `grant` lost (expired, revoked): L6, L9. */
  checkFence(grant: { key: string; token: number }): void {
    if (this.lost.has(`${grant.key}\u0000${grant.token}`)) {
      throw new ChorusError('fenced', `the lease on ${grant.key} with token ${grant.token} was lost; writes under it are refused`, { key: grant.key, token: grant.token })
    }
  }

  /**
   * Frees a lease after the work under it is written down. An arbiter that cannot be reached is no reason to fail
   * the write that already happened: the grant runs out by itself.
   */
  async releaseQuietly(grant: LeaseGrant): Promise<void> {
    if (this.leases === undefined) return
    try {
      await this.leases.release(grant)
    } catch (e) {
      if (!(e instanceof ChorusError && (e.code === 'lease_unavailable' || e.code === 'closed'))) throw e
    }
  }

  destroy(): void {
    this.keeper?.destroy()
    this.stopLost?.()
  }

  /** A fresh id for a task, proposal, resource or revision. */
  newId(prefix: string): string {
    return `${prefix}-${Math.floor(this.random() * 2 ** 48).toString(36).padStart(10, '0')}`
  }

  now(): number {
    return this.clock.now()
  }

  /** Runs `fn` in one transaction of the main document, so views and peers see its writes together. */
  transact<T>(fn: () => T): T {
    let out: T | undefined
    this.doc.transact(() => {
      out = fn()
    }, LOCAL_ORIGIN)
    return out as T
  }

  /** Appends an activity record; call inside `transact`. */
  record(rec: ActivityRecord, at = this.now()): string {
    return this.activity.append(at, rec)
  }

  /** Activity entries about one entity (task, proposal, resource), in agreed order; indexed on first use. */
  activityFor(ref: string): readonly LogEntry[] {
    if (this.byRef === undefined) {
      const index = new Map<string, LogEntry[]>()
      const add = (e: LogEntry): void => {
        const r = readEntry<ActivityRecord>(e).ref
        if (r === undefined) return
        const list = index.get(r)
        if (list === undefined) index.set(r, [e])
        else {
          let i = list.length
          while (i > 0 && compareEntries(list[i - 1] as LogEntry, e) > 0) i--
          list.splice(i, 0, e)
        }
      }
      for (const e of this.activity.entries()) add(e)
      this.activity.onAppend((entries) => entries.forEach(add))
      this.byRef = index
    }
    return this.byRef.get(ref) ?? []
  }

  participant(id: string): Participant | undefined {
    const m = this.participants.get(id)
    return m === undefined ? undefined : readParticipant(id, m)
  }

  /** The kind of a participant, without reading the rest of its record (hot path of every write). */
  requireKind(id: string): Participant['kind'] {
    const m = this.participants.get(id)
    if (m === undefined) throw new ChorusError('not_found', `unknown participant "${id}"; join first`, { participant: id })
    return m.get('kind') as Participant['kind']
  }

  requireParticipant(id: string): Participant {
    const p = this.participant(id)
    if (p === undefined) throw new ChorusError('not_found', `unknown participant "${id}"; join first`, { participant: id })
    return p
  }

  /** Whether a grant read from the document is signed by the arbiter whose key is in `meta` (L7). */
  verifyGrant(grant: LeaseGrant): boolean {
    if (grant.space !== this.id) return false
    if (this.customVerify !== undefined) return this.customVerify(grant)
    const key = this.meta.get('relayKey')
    if (typeof key !== 'string') return false
    if (this.verifier?.key !== key) this.verifier = { key, verify: createGrantVerifier(key) }
    return this.verifier.verify(grant)
  }

  /** Makes sure `meta.relayKey` names the lease client's key before a grant from it is written down. */
  async leaseClient(): Promise<LeaseClient> {
    if (this.leases === undefined) {
      throw new ChorusError('lease_unavailable', 'this replica has no lease arbiter (connect to a relay or pass `leases`)')
    }
    const key = await this.leases.publicKey()
    const known = this.meta.get('relayKey')
    if (known === undefined) this.transact(() => this.meta.set('relayKey', key))
    else if (known !== key) {
      // Replacing the key would void every grant already recorded, silently undoing claims and locked edits.
      throw new ChorusError('lease_unavailable', 'this space\'s leases are granted by another arbiter (its key is in meta.relayKey); use that arbiter', {
        relayKey: known,
      })
    }
    return this.leases
  }
}

export const readParticipant = (id: string, m: Y.Map<unknown>): Participant => {
  const p: Participant = {
    id,
    name: m.get('name') as string,
    kind: m.get('kind') as Participant['kind'],
    capabilities: [...((m.get('capabilities') as string[] | undefined) ?? [])],
    metadata: copyJson((m.get('metadata') as Participant['metadata'] | undefined) ?? {}),
    joinedAt: m.get('joinedAt') as number,
    lastSeen: m.get('lastSeen') as number,
  }
  const channels = m.get('channels')
  if (Array.isArray(channels)) p.channels = [...(channels as string[])]
  const left = m.get('leftAt')
  if (typeof left === 'number') p.leftAt = left
  return p
}
