import type * as Y from 'yjs'
import type { SpaceCore } from '../space/core.ts'
import { ChorusError } from '../errors.ts'
import { EVENT_TYPES, type ActivityRecord, type ChorusEvent, type EventType, type HistoryQuery } from './events.ts'
import type { LeaseClient } from '../leases/lease-client.ts'
import { compareEntries, newestFirst, readEntry, type LogEntry } from '../space/log.ts'
import type { Message, Resource, Vote } from '../schema.ts'
import { conflictEvents, stateEvent, stateEvents, voteEvent, voteEvents } from './derived-events.ts'
import { STORE_ORIGIN } from '../store/store.ts'

type Handler = (event: ChorusEvent) => void

const messageEvent = (e: LogEntry): ChorusEvent => {
  const m: Message = { id: e.id, at: e.at, ...readEntry<Omit<Message, 'id' | 'at'>>(e) }
  return { id: e.id, type: 'message', at: e.at, participant: m.from, ref: m.id, data: m }
}

const activityEvent = (e: LogEntry): ChorusEvent => {
  const r = readEntry<ActivityRecord>(e)
  const ev = { id: e.id, type: r.type, at: e.at, participant: r.by, data: r.data ?? {} } as ChorusEvent
  if (r.ref !== undefined) ev.ref = r.ref
  return ev
}

/**
 * The typed event stream. Nothing is stored twice: message events come from the message logs, state updates
 * and votes from their entries, conflicts from resource revisions, everything else from the activity log. History is in the agreed order (time, then id),
 * identical on every replica; live events fire as changes arrive, local or remote, but not for history loaded
 * from a store.
 */
export class EventStream {
  private readonly core: SpaceCore
  private readonly resources: () => Resource[]
  private readonly handlers = new Map<EventType | '*', Set<Handler>>()
  private readonly seenConflicts = new Set<string>()
  private readonly unsubscribe: Array<() => void> = []
  /** Events derived during the current transaction, emitted together in agreed order when it ends. */
  private pending: ChorusEvent[] = []
  private watching = false
  private readonly announced = new Map<string, string>()

  constructor(core: SpaceCore, resources: () => Resource[], leases?: LeaseClient) {
    this.core = core
    this.resources = resources
    if (leases !== undefined) {
      this.unsubscribe.push(
        leases.onLost((grant, reason) =>
          grant.space === core.id && this.emit({
            id: `lease_lost:${grant.key}:${grant.token}`,
            type: 'lease_lost',
            at: core.now(),
            participant: grant.holder,
            ref: grant.key,
            data: { key: grant.key, token: grant.token, reason },
          }),
        ),
      )
    }
  }

  /** Calls `handler` for each live event of `type` (or every type with '*'); returns an unsubscribe function. */
  on<T extends EventType>(type: T | '*', handler: (event: ChorusEvent<T>) => void): () => void {
    if (type !== '*' && !EVENT_TYPES.includes(type)) throw new ChorusError('invalid_input', `unknown event type "${String(type)}"`)
    this.watch()
    let set = this.handlers.get(type)
    if (set === undefined) this.handlers.set(type, (set = new Set()))
    set.add(handler as Handler)
    return () => set.delete(handler as Handler)
  }

  /** Starts deriving live events; done on the first subscription, since nobody else needs them. */
  private watch(): void {
    if (this.watching) return
    this.watching = true
    const core = this.core
    for (const log of core.messageLogs.values()) {
      this.unsubscribe.push(log.onAppend((entries, txn) => this.live(txn, entries.map(messageEvent))))
    }
    this.unsubscribe.push(core.activity.onAppend((entries, txn) => this.live(txn, entries.map(activityEvent))))
    for (const e of conflictEvents(this.resources())) this.seenConflicts.add(e.id)
    const onResources = (_: unknown, txn: Y.Transaction): void => {
      const fresh = conflictEvents(this.resources()).filter((e) => !this.seenConflicts.has(e.id))
      for (const e of fresh) this.seenConflicts.add(e.id)
      this.live(txn, fresh)
    }
    core.resources.observeDeep(onResources)
    this.unsubscribe.push(() => core.resources.unobserveDeep(onResources))
    const onState = (event: Y.YMapEvent<unknown>, txn: Y.Transaction): void => {
      const fresh: ChorusEvent[] = []
      for (const k of event.keysChanged as Set<string>) {
        const e = stateEvent(core.state, k)
        if (e !== undefined && this.isNew(k, e)) fresh.push(e)
      }
      this.live(txn, fresh)
    }
    core.state.observe(onState)
    this.unsubscribe.push(() => core.state.unobserve(onState))
    const onProposals = (events: Array<Y.YEvent<Y.Map<unknown>>>, txn: Y.Transaction): void => {
      const fresh: ChorusEvent[] = []
      for (const e of events) {
        const [proposal, field] = e.path
        if (field !== 'votes' || typeof proposal !== 'string') continue
        for (const voter of (e as Y.YMapEvent<unknown>).keysChanged as Set<string>) {
          const ev = voteEvent(e.target as Y.Map<{ vote: Vote; at: number }>, proposal, voter)
          if (ev !== undefined && this.isNew(`${proposal}\u0000${voter}`, ev)) fresh.push(ev)
        }
      }
      this.live(txn, fresh)
    }
    core.proposals.observeDeep(onProposals)
    this.unsubscribe.push(() => core.proposals.unobserveDeep(onProposals))
    const flush = (): void => this.flush()
    for (const doc of [core.doc, ...core.restricted.values()]) {
      doc.on('afterTransaction', flush)
      this.unsubscribe.push(() => doc.off('afterTransaction', flush))
    }
  }

  /** Past events, oldest first, filtered; `limit` keeps the newest ones. */
  history(query: HistoryQuery = {}): ChorusEvent[] {
    const types = query.type === undefined ? undefined : new Set(Array.isArray(query.type) ? query.type : [query.type])
    for (const t of types ?? []) if (!EVENT_TYPES.includes(t)) throw new ChorusError('invalid_input', `unknown event type "${t}"`)
    const wants = (t: EventType): boolean => types === undefined || types.has(t)
    const out: ChorusEvent[] = []
    const limit = query.limit ?? Infinity
    const after = typeof query.after === 'string' ? this.positionOf(query.after) : query.after
    type Kind = 'message' | 'activity' | 'derived'
    const sources: Array<readonly { at: number; id: string }[]> = []
    const kinds: Kind[] = []
    const add = (list: readonly { at: number; id: string }[], kind: Kind): void => {
      sources.push(list)
      kinds.push(kind)
    }
    if (wants('message')) for (const log of this.core.messageLogs.values()) add(log.entries(), 'message')
    if (types === undefined || [...types].some((t) => !['message', 'conflict', 'state_update', 'vote'].includes(t))) add(this.core.activity.entries(), 'activity')
    if (wants('conflict')) add(conflictEvents(this.resources()), 'derived')
    if (wants('state_update')) add(stateEvents(this.core.state), 'derived')
    if (wants('vote')) add(voteEvents(this.core.proposals), 'derived')
    for (const [item, source] of newestFirst(sources)) {
      if (after !== undefined && compareEntries(item, after) <= 0) break
      if (query.since !== undefined && item.at < query.since) break
      const kind = kinds[source]
      const ev = kind === 'message' ? messageEvent(item as LogEntry) : kind === 'activity' ? activityEvent(item as LogEntry) : (item as ChorusEvent)
      if (!wants(ev.type)) continue
      if (query.participant !== undefined && ev.participant !== query.participant) continue
      out.push(ev)
      if (out.length >= limit && after === undefined) break
    }
    out.reverse()
    if (after !== undefined) return out.length > limit ? out.slice(0, limit) : out
    return out.length > limit ? out.slice(out.length - limit) : out
  }

  /** Where an event id stands in the agreed order. */
  private positionOf(id: string): { at: number; id: string } {
    const event = this.history().find((e) => e.id === id)
    if (event === undefined) throw new ChorusError('not_found', `no event with id "${id}" to replay from; pass the event itself (its at and id) instead`)
    return { at: event.at, id: event.id }
  }

  /** Feeds past events matching `query` to `handler` in order, e.g. to rebuild a view from a point. */
  replay(query: HistoryQuery, handler: (event: ChorusEvent) => void): number {
    const events = this.history(query)
    for (const e of events) handler(e)
    return events.length
  }

  /** Total number of events in the history. */
  count(): number {
    let n = this.core.activity.size + conflictEvents(this.resources()).length + stateEvents(this.core.state).length + voteEvents(this.core.proposals).length
    for (const log of this.core.messageLogs.values()) n += log.size
    return n
  }

  destroy(): void {
    for (const u of this.unsubscribe) u()
    this.handlers.clear()
  }

  /**
   * A map key reports a change also when a concurrent write to it lost; the entry (and so the event) is then
   * the one already announced. Remember what was announced per key to say each only once.
   */
  private isNew(key: string, event: ChorusEvent): boolean {
    if (this.announced.get(key) === event.id) return false
    this.announced.set(key, event.id)
    return true
  }

  private live(txn: Y.Transaction, events: ChorusEvent[]): void {
    if (txn.origin === STORE_ORIGIN || events.length === 0) return
    this.pending.push(...events)
  }

  private flush(): void {
    if (this.pending.length === 0) return
    const events = this.pending.sort(compareEntries)
    this.pending = []
    for (const e of events) this.emit(e)
  }

  private emit(event: ChorusEvent): void {
    for (const key of [event.type, '*'] as const) {
      for (const h of this.handlers.get(key) ?? []) {
        try {
          h(event)
        } catch (err) {
          // One failing handler must not stop the others or the document transaction that triggered it.
          queueMicrotask(() => {
            throw err
          })
        }
      }
    }
  }
}
