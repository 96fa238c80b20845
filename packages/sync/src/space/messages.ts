import type * as Y from 'yjs'
import { z } from 'zod'
import type { SpaceCore } from './core.ts'
import { LOCAL_ORIGIN } from './core.ts'
import { ChorusError } from '../errors.ts'
import { compareEntries, newestFirst, parseEntryId, readEntry, type JsonLog, type LogEntry } from './log.ts'
import { LIMITS, RESTRICTED_CHANNELS, type Message, type Participant, type Priority, type RestrictedChannel } from '../schema.ts'
import { channelSchema, checkId, checkSize, idSchema, parse, prioritySchema } from '../validate.ts'

export interface SendOptions {
  from: string
  content: string
  /** Default `general`. */
  channel?: string
  /** A participant id: a direct message. */
  to?: string
  /** Default `normal`. */
  priority?: Priority
  replyTo?: string
}

const sendSchema = z.object({
  from: idSchema,
  content: z.string({ error: 'content must be a string' }).refine((s) => s.trim().length > 0, 'content must not be empty'),
  channel: channelSchema.optional(),
  to: idSchema.optional(),
  priority: prioritySchema.optional(),
  replyTo: idSchema.optional(),
})

/** The stored shape of a message; the id is not stored, it is the log entry's id. */
type StoredMessage = Omit<Message, 'id' | 'at'>

/** Separates the parts of a cursor entry's key: `<participant>\u0000<writer>\u0000<replica>`. */
const SEP = '\u0000'

const isRestricted = (channel: string): channel is RestrictedChannel => Object.hasOwn(RESTRICTED_CHANNELS, channel)

/** Whether a participant of this kind may read (and write) a channel at all. */
export const mayUseChannel = (p: Pick<Participant, 'kind'>, channel: string): boolean =>
  !isRestricted(channel) || RESTRICTED_CHANNELS[channel] === p.kind

/**
 * Whether `p` may read `m`: a restricted channel only for its kind, a direct message only for its two ends.
 * Without a reader (`undefined`: an anonymous public feed), only broadcasts on open channels.
 */
export const mayReadMessage = (p: Pick<Participant, 'id' | 'kind'> | undefined, m: Pick<Message, 'channel' | 'from' | 'to'>): boolean =>
  p === undefined
    ? !isRestricted(m.channel) && m.to === undefined
    : mayUseChannel(p, m.channel) && (m.to === undefined || m.to === p.id || m.from === p.id)

const toMessage = (e: LogEntry): Message => ({ id: e.id, at: e.at, ...readEntry<StoredMessage>(e) })

/**
 * The message log: broadcasts on channels and direct messages, with a durable read cursor per participant.
 * Messages on `ai-only` and `human-only` live in their own documents (see `Space.documents`).
 */
export class Messages {
  private readonly core: SpaceCore

  constructor(core: SpaceCore) {
    this.core = core
  }

  send(options: SendOptions): Message {
    const o = parse(sendSchema, options, 'message')
    checkSize('message content', o.content, LIMITS.messageContent)
    const sender = { kind: this.core.requireKind(o.from) }
    const channel = o.channel ?? 'general'
    if (!mayUseChannel(sender, channel)) {
      throw new ChorusError('forbidden', `${sender.kind} participants may not use the ${channel} channel`, { channel })
    }
    if (o.replyTo !== undefined && this.get(o.replyTo) === undefined) {
      throw new ChorusError('not_found', `cannot reply to unknown message "${o.replyTo}"`, { message: o.replyTo })
    }
    if (o.to !== undefined && !mayUseChannel({ kind: this.core.requireKind(o.to) }, channel)) {
      throw new ChorusError('forbidden', `${o.to} may not read the ${channel} channel`, { channel })
    }
    const record: StoredMessage = { channel, from: o.from, priority: o.priority ?? 'normal', content: o.content }
    if (o.to !== undefined) record.to = o.to
    if (o.replyTo !== undefined) record.replyTo = o.replyTo
    const at = this.core.now()
    const log = this.logFor(channel)
    let id = ''
    const write = (): void => {
      id = log.append(at, record)
    }
    if (log.text.doc === this.core.doc) this.core.transact(write)
    else (log.text.doc as Y.Doc).transact(write, LOCAL_ORIGIN)
    return { id, at, ...record }
  }

  /** The newest `limit` messages (oldest first), optionally of one channel. */
  recent(options: { limit?: number; channel?: string } = {}): Message[] {
    const limit = options.limit ?? 50
    const out: Message[] = []
    for (const e of this.newestFirst(options.channel === undefined ? undefined : [options.channel])) {
      const m = toMessage(e)
      if (options.channel !== undefined && m.channel !== options.channel) continue
      out.push(m)
      if (out.length >= limit) break
    }
    return out.reverse()
  }

  get(id: string): Message | undefined {
    const key = parseEntryId(id)
    if (key === undefined) return undefined
    for (const log of this.core.messageLogs.values()) {
      const e = log.entries().find((x) => x.clock === key.clock && x.client === key.client)
      if (e !== undefined) return toMessage(e)
    }
    return undefined
  }

  /** Every message in agreed order (all logs this replica holds). */
  all(): Message[] {
    return this.merged([...this.core.messageLogs.values()]).map(toMessage)
  }

  /**
   * Messages meant for `participant`, oldest first: direct messages to it, and broadcasts on channels it reads
   * (not its own). `unread` (default true) leaves out what it has acknowledged.
   */
  inbox(participant: string, options: { unread?: boolean; limit?: number } = {}): Message[] {
    const p = this.core.requireParticipant(checkId(participant, 'participant id'))
    const cursor = options.unread === false ? undefined : this.cursor(participant)
    const out: Message[] = []
    for (const e of this.merged(this.readableLogs(p))) {
      if (cursor !== undefined && (cursor.get(e.client) ?? -1) >= e.clock) continue
      const m = toMessage(e)
      if (this.isFor(p, m)) out.push(m)
      if (options.limit !== undefined && out.length >= options.limit) break
    }
    return out
  }

  /**
   * Acknowledges messages so `inbox` no longer returns them, across restarts (the cursor is in the document).
   * Without `messages`, acknowledges everything currently unread. Per writer, the cursor advances in that
   * writer's own order (its Yjs clock) only over an unbroken run of acknowledged messages, so a message that was
   * never acknowledged is never skipped, even when the writer's wall clock stepped back.
   */
  ack(participant: string, messages?: ReadonlyArray<Pick<Message, 'id'>>): number {
    const unread = this.inbox(participant)
    const wanted = messages === undefined ? undefined : new Set(messages.map((m) => m.id))
    const byWriter = new Map<number, Array<{ clock: number; id: string }>>()
    for (const m of unread) {
      const key = parseEntryId(m.id) as { client: number; clock: number }
      let list = byWriter.get(key.client)
      if (list === undefined) byWriter.set(key.client, (list = []))
      list.push({ clock: key.clock, id: m.id })
    }
    const advance = new Map<number, number>()
    let count = 0
    for (const [client, list] of byWriter) {
      list.sort((x, y) => x.clock - y.clock)
      for (const m of list) {
        if (wanted !== undefined && !wanted.has(m.id)) break
        advance.set(client, m.clock)
        count++
      }
    }
    if (advance.size === 0) return 0
    const cursors = this.core.cursors
    const replica = String(this.core.doc.clientID)
    this.core.transact(() => {
      for (const [client, clock] of advance) {
        // One entry per (participant, writer, replica): concurrent acks on two replicas of one participant
        // each write their own entry, and the cursor is the highest. Entries this one dominates are dropped.
        const prefix = `${participant}${SEP}${client}${SEP}`
        let top = clock
        const dominated: string[] = []
        for (const [k, v] of cursors) {
          if (!k.startsWith(prefix)) continue
          top = Math.max(top, v)
          if (k !== prefix + replica) dominated.push(k)
        }
        cursors.set(prefix + replica, top)
        for (const k of dominated) cursors.delete(k)
      }
    })
    return count
  }

  /** Per writer (Yjs client), the highest clock `participant` acknowledged. */
  private cursor(participant: string): Map<number, number> {
    const prefix = `${participant}${SEP}`
    const out = new Map<number, number>()
    for (const [k, v] of this.core.cursors) {
      if (!k.startsWith(prefix)) continue
      const client = Number(k.slice(prefix.length, k.indexOf(SEP, prefix.length)))
      out.set(client, Math.max(out.get(client) ?? -1, v))
    }
    return out
  }

  private isFor(p: Participant, m: Message): boolean {
    if (m.to !== undefined) return m.to === p.id
    if (m.from === p.id) return false
    return p.channels === undefined || p.channels.includes(m.channel)
  }

  private readableLogs(p: Participant): JsonLog[] {
    const out: JsonLog[] = []
    for (const [name, log] of this.core.messageLogs) {
      if (name === 'main' || mayUseChannel(p, name)) out.push(log)
    }
    return out
  }

  private logFor(channel: string): JsonLog {
    return this.core.messageLogs.get(isRestricted(channel) ? channel : 'main') as JsonLog
  }

  /** Entries of several logs in agreed order. */
  private merged(logs: JsonLog[]): LogEntry[] {
    const lists = logs.map((l) => l.entries()).filter((l) => l.length > 0)
    if (lists.length === 1) return lists[0] as LogEntry[]
    return lists.flat().sort(compareEntries)
  }

  private *newestFirst(channels?: string[]): Generator<LogEntry> {
    const logs = channels === undefined ? [...this.core.messageLogs.values()] : [...new Set(channels.map((c) => this.logFor(c)))]
    for (const [e] of newestFirst(logs.map((l) => l.entries()))) yield e
  }
}
