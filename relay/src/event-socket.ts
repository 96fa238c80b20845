/**
 * One WebSocket on `/ws/<entity>` (or `/spaces/<space>/ws/<entity>`): the coordination hub's real-time feed, as
 * JSON text frames. It streams the live events of the space that the entity may see; it does not replay history
 * (read that over REST first, then follow here).
 *
 * Frames sent:
 * - `{"type":"hello","entity_id","space"}` once, first.
 * - One per event: `{"type":<event type>,"id","at","participant","ref"?,"data"}`, where `id` is the event's
 *   stable id, `at` its time in ms since 1970, `participant` who caused it and `ref` the task, proposal,
 *   resource, state key or message it concerns; `data` is the event's data (@chorus/sync `EventData`), except
 *   for `message`, whose `data` is the REST message shape
 *   `{id, sender_id, content, channel, recipient_id, priority, timestamp, reply_to}`.
 *   Messages come only when the entity may read them: direct messages to their sender and recipient,
 *   `ai-only` to AIs, `human-only` to humans. `lease_lost` comes only to the entity that lost the lease.
 *   Everything else (join, leave, state_update, task_*, proposal_*, vote, resource events) comes to everyone.
 * - `{"type":"pong"}` in answer to `{"type":"ping"}`, the one frame a client may send.
 * - `{"type":"error","error","message"}` for anything else (or too many frames); the socket stays open.
 *
 * Close codes: 4404 unknown entity (register it first), 4403 an entity other than the token's participant,
 * 1013 a client too slow to take its events.
 */
import type { RawData, WebSocket } from 'ws'
import { isChorusError, mayReadMessage, type ChorusEvent, type Message } from '@chorus/sync'
import { checkActingAs, viewerOf, type Caller, type Viewer } from './access.ts'
import type { HostedSpace } from './hosted-spaces.ts'
import type { Logger } from './logger.ts'
import type { RateLimiter } from './rate-limit.ts'
import { messageView } from './rest/hub-mapping.ts'
import { CloseCode } from './sync-connection.ts'
import { frameBytes, Liveness, OPEN } from './socket-liveness.ts'

export const EventCloseCode = {
  forbidden: 4403,
  unknownEntity: 4404,
} as const

/** Outgoing bytes queued for one stream before it is closed as too slow. */
export const MAX_EVENT_BUFFERED_BYTES = 8 * 1024 * 1024

export interface EventSocketOptions {
  hosted: HostedSpace
  entity: string
  caller: Caller
  logger: Logger
  limiter: RateLimiter
  onClose: (socket: EventSocket) => void
}

/** A close reason is at most 123 bytes of UTF-8. */
function reasonOf(text: string): string {
  let out = text
  while (Buffer.byteLength(out) > 123) out = out.slice(0, -1)
  return out
}

export class EventSocket {
  readonly socket: WebSocket
  private readonly options: EventSocketOptions
  private gone = false
  private readonly liveness: Liveness
  private unsubscribe: (() => void) | undefined

  constructor(socket: WebSocket, options: EventSocketOptions) {
    this.socket = socket
    this.options = options
    socket.on('close', () => this.forget())
    socket.on('error', (error) => options.logger.warn('event socket error', { error }))
    this.liveness = new Liveness(socket)
    socket.on('message', this.onMessage)
    const { caller, entity, hosted } = options
    try {
      checkActingAs(caller, entity, 'follow')
    } catch (e) {
      if (!isChorusError(e, 'forbidden')) throw e
      this.close(EventCloseCode.forbidden, reasonOf(e.message))
      return
    }
    if (hosted.space.participants.get(entity) === undefined) {
      this.close(EventCloseCode.unknownEntity, reasonOf(`unknown entity ${entity}; register it first`))
      return
    }
    this.send({ type: 'hello', entity_id: entity, space: hosted.space.id })
    this.unsubscribe = hosted.space.events.on('*', this.onEvent)
    hosted.space.presence.touch(entity)
  }

  get closed(): boolean {
    return this.gone
  }

  /** Called by the relay every ping interval: drops a client that did not answer the previous ping. */
  heartbeat(): void {
    if (this.gone || this.liveness.check()) return
    this.forget()
    this.socket.terminate()
  }

  close(code: number, reason: string): void {
    this.forget()
    if (this.socket.readyState === OPEN) this.socket.close(code, reason)
  }

  /** Who reads: the entity, with the token's kind under tokens, else the kind it registered with (now). */
  private viewer(): Viewer | undefined {
    const { caller, entity, hosted } = this.options
    return viewerOf(caller, entity, hosted.space.participants.get(entity)?.kind)
  }

  private readonly onEvent = (event: ChorusEvent): void => {
    if (this.gone) return
    let data: unknown = event.data
    if (event.type === 'message') {
      const message = event.data as Message
      if (!mayReadMessage(this.viewer(), message)) return
      data = messageView(message)
    } else if (event.type === 'lease_lost' && event.participant !== this.options.entity) return
    this.send({ type: event.type, id: event.id, at: event.at, participant: event.participant, ref: event.ref, data })
  }

  private readonly onMessage = (data: RawData, isBinary: boolean): void => {
    if (this.gone) return
    this.liveness.seen()
    if (!this.options.limiter.take()) {
      this.send({ type: 'error', error: 'rate_limited', message: 'too many frames; slow down' })
      return
    }
    if (isBinary) {
      this.send({ type: 'error', error: 'invalid_input', message: 'send JSON text frames' })
      return
    }
    let frame: unknown
    try {
      frame = JSON.parse(frameBytes(data).toString('utf8'))
    } catch {
      this.send({ type: 'error', error: 'invalid_input', message: 'a frame must be JSON' })
      return
    }
    if (typeof frame === 'object' && frame !== null && 'type' in frame && frame.type === 'ping') {
      this.options.hosted.space.presence.touch(this.options.entity)
      this.send({ type: 'pong' })
      return
    }
    this.send({ type: 'error', error: 'invalid_input', message: 'the only frame a client sends is {"type":"ping"}; act through the REST API' })
  }

  private send(frame: Record<string, unknown>): void {
    if (this.gone || this.socket.readyState !== OPEN) return
    if (this.socket.bufferedAmount > MAX_EVENT_BUFFERED_BYTES) {
      this.options.logger.warn('closing an event stream whose client does not keep up', { entity: this.options.entity })
      this.close(CloseCode.tryAgainLater, 'too far behind; reconnect and catch up over REST')
      return
    }
    this.socket.send(JSON.stringify(frame), (error) => {
      if (error !== undefined && error !== null) this.options.logger.warn('event send failed', { error })
    })
  }

  private forget(): void {
    if (this.gone) return
    this.gone = true
    this.unsubscribe?.()
    this.options.hosted.release()
    this.options.onClose(this)
  }
}
