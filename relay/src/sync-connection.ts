/**
 * The y-websocket protocol for one WebSocket on one space, as the stock `WebsocketProvider` expects it: one
 * y-protocols message per frame (types 0 sync, 1 awareness, 2 auth, 3 query-awareness).
 *
 * On open the relay sends sync step 1 and every awareness state it knows. Sync messages are applied to the
 * space's doc with this connection as origin, so the space fans the update out to every other connection; an
 * awareness update goes to every connection, this one included. Everything this connection sends on its own
 * (greeting, sync replies, awareness answers) goes through `SpaceEntry.sendTo`, in order behind what the space
 * holds until its store has committed (persist before fan-out: see space-entry.ts). Malformed frames are counted
 * and ignored; the `maxMalformed`-th closes the connection with 1003. Oversized frames are refused by the ws server
 * (`maxPayload`), which closes with 1009.
 */
import type { RawData, WebSocket } from 'ws'
import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import { applyAwarenessUpdate } from 'y-protocols/awareness'
import {
  ChorusError,
  encodeAwarenessMessage,
  encodeSyncStep1,
  messageAuth,
  messageAwareness,
  messageQueryAwareness,
  messageSync,
  readAwarenessUpdate,
  answerSyncMessage,
  type AwarenessEntry,
} from '@chorus/sync'
import { silentLogger, type Logger } from './logger.ts'
import type { RateLimiter } from './rate-limit.ts'
import type { SpaceEntry, SpacePeer } from './space-entry.ts'
import { frameBytes, Liveness, OPEN } from './socket-liveness.ts'

export const DEFAULT_MAX_MALFORMED = 10
/** Outgoing bytes a connection may have queued before it is closed as too slow (it resyncs on reconnect). */
export const DEFAULT_MAX_BUFFERED_BYTES = 64 * 1024 * 1024

/** Close codes the relay uses (RFC 6455, plus the 4400-4499 range the stock client takes as "do not retry"). */
export const CloseCode = {
  goingAway: 1001,
  unsupportedData: 1003,
  policyViolation: 1008,
  tooLarge: 1009,
  internalError: 1011,
  tryAgainLater: 1013,
  badRequest: 4400,
  forbidden: 4403,
} as const

export interface SyncConnectionOptions {
  maxMalformed?: number
  /**
   * A connection sending faster than this is closed with 1013 (try again later). Nothing is lost: the client
   * keeps its updates and resyncs them when it reconnects after its backoff.
   */
  limiter?: RateLimiter
  maxBufferedBytes?: number
  logger?: Logger
  /** Called once when the connection is gone (closed by either side); the space has already forgotten it. */
  onClose?: (connection: SyncConnection) => void
}

/** An awareness message saying that `client` is gone as of `clock`. */
function encodeRemoval(client: number, clock: number): Uint8Array {
  return encoding.encode((e) => {
    encoding.writeVarUint(e, messageAwareness)
    encoding.writeVarUint8Array(
      e,
      encoding.encode((u) => {
        encoding.writeVarUint(u, 1)
        encoding.writeVarUint(u, client)
        encoding.writeVarUint(u, clock)
        encoding.writeVarString(u, 'null')
      }),
    )
  })
}

/**
 * Throws unless every state in an awareness update can be serialized again. JSON.parse takes nesting of any depth
 * but JSON.stringify recurses: a state nested ~10,000 deep would be stored, then fail every encoding of the
 * space's awareness (each new connection's greeting among them), so it is refused before it is applied.
 */
function checkReencodable(update: Uint8Array): void {
  const decoder = decoding.createDecoder(update)
  const count = decoding.readVarUint(decoder)
  for (let i = 0; i < count; i++) {
    decoding.readVarUint(decoder)
    decoding.readVarUint(decoder)
    try {
      JSON.stringify(JSON.parse(decoding.readVarString(decoder)))
    } catch {
      throw new ChorusError('corrupt', 'an awareness state that cannot be serialized again (nested too deep)')
    }
  }
}

export class SyncConnection implements SpacePeer {
  readonly socket: WebSocket
  readonly space: SpaceEntry
  private readonly maxMalformed: number
  private readonly maxBufferedBytes: number
  private readonly logger: Logger
  private readonly onClosed: ((connection: SyncConnection) => void) | undefined
  private readonly limiter: RateLimiter | undefined
  private malformedCount = 0
  private readonly liveness: Liveness
  private gone = false

  constructor(socket: WebSocket, space: SpaceEntry, options: SyncConnectionOptions = {}) {
    this.socket = socket
    this.space = space
    this.maxMalformed = options.maxMalformed ?? DEFAULT_MAX_MALFORMED
    this.maxBufferedBytes = options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES
    this.logger = options.logger ?? silentLogger
    this.onClosed = options.onClose
    this.limiter = options.limiter
    socket.on('message', this.onMessage)
    this.liveness = new Liveness(socket)
    socket.on('close', this.onSocketClose)
    socket.on('error', this.onSocketError)
    space.join(this)
    space.sendTo(this, encodeSyncStep1(space.doc))
    const known = [...space.awareness.getStates().keys()]
    if (known.length > 0) space.sendTo(this, encodeAwarenessMessage(space.awareness, known))
  }

  /** Frames received from this connection that could not be decoded or applied. */
  get malformed(): number {
    return this.malformedCount
  }

  get closed(): boolean {
    return this.gone
  }

  /** Queue `message` on the socket now (the space decides when: use `space.sendTo` to keep its order). */
  send(message: Uint8Array): void {
    if (this.gone || this.socket.readyState !== OPEN) return
    if (this.socket.bufferedAmount > this.maxBufferedBytes) {
      this.close(CloseCode.tryAgainLater, 'too far behind; reconnect to resync')
      return
    }
    this.socket.send(message, { binary: true }, (error) => {
      if (error !== undefined && error !== null) this.logger.warn('send failed', { space: this.space.name, error })
    })
  }

  /**
   * Close with `code`. The space forgets this connection at once (its awareness states go now, not when the
   * peer completes the closing handshake).
   */
  close(code: number, reason: string): void {
    this.forget()
    if (this.socket.readyState === OPEN) this.socket.close(code, reason)
  }

  /** Drop the socket without a closing handshake. */
  terminate(): void {
    this.forget()
    this.socket.terminate()
  }

  /** Called on an interval: a connection that did not answer the previous ping is dead. */
  heartbeat(): void {
    if (this.gone || this.liveness.check()) return
    this.logger.info('closing a connection that stopped answering pings', { space: this.space.name })
    this.terminate()
  }

  private readonly onMessage = (data: RawData, isBinary: boolean): void => {
    if (this.gone) return
    this.liveness.seen()
    if (this.limiter !== undefined && !this.limiter.take()) {
      this.logger.warn('closing a connection over the rate limit', { space: this.space.name })
      this.close(CloseCode.tryAgainLater, 'rate limit exceeded; reconnect later')
      return
    }
    try {
      if (!isBinary) throw new ChorusError('corrupt', 'text frame: y-protocols messages are binary')
      this.receive(frameBytes(data))
    } catch (error) {
      this.malformedCount++
      // The first one says what is wrong; the rest only count.
      if (this.malformedCount === 1) this.logger.warn('ignored a malformed frame', { space: this.space.name, error })
      if (this.malformedCount >= this.maxMalformed) {
        this.logger.warn('closing a connection that sent too many malformed frames', { space: this.space.name })
        this.close(CloseCode.unsupportedData, 'too many malformed messages')
      }
    }
  }

  private receive(message: Uint8Array): void {
    const { doc, awareness } = this.space
    const decoder = decoding.createDecoder(message)
    const type = decoding.readVarUint(decoder)
    switch (type) {
      case messageSync: {
        const { reply } = answerSyncMessage(decoder, doc, this)
        // Sync step 2 is the doc's state: it may hold updates whose commit is still pending.
        if (reply !== null) this.space.sendTo(this, reply)
        break
      }
      case messageAwareness: {
        const update = decoding.readVarUint8Array(decoder)
        const entries = readAwarenessUpdate(update)
        checkReencodable(update)
        applyAwarenessUpdate(awareness, update, this)
        this.renewIgnored(entries)
        break
      }
      case messageQueryAwareness:
        this.space.sendTo(this, encodeAwarenessMessage(awareness, [...awareness.getStates().keys()]))
        break
      case messageAuth:
        // Only the server sends auth messages (permission denied); nothing to do with one from a client.
        break
      default:
        throw new ChorusError('corrupt', `unknown message type ${type}`)
    }
  }

  /**
   * A client that comes back after the relay removed it (its socket dropped, or it said goodbye) announces itself
   * at the clock of the removal, which y-protocols ignores everywhere: it would stay invisible until its next
   * renewal, up to 15 s later. Telling it that it is gone at that clock makes it re-announce itself with a
   * higher one (y-protocols never lets a peer remove a live local state), which every replica accepts.
   */
  private renewIgnored(entries: readonly AwarenessEntry[]): void {
    const { awareness } = this.space
    for (const { client, clock, present } of entries) {
      const known = awareness.meta.get(client)
      if (present && !awareness.states.has(client) && known !== undefined && known.clock >= clock) {
        this.space.sendTo(this, encodeRemoval(client, known.clock))
      }
    }
  }

  private readonly onSocketClose = (): void => {
    this.forget()
  }

  private readonly onSocketError = (error: Error): void => {
    // ws closes the socket after an error (e.g. 1009 for a frame over maxPayload); 'close' follows.
    this.logger.warn('connection error', { space: this.space.name, error })
  }

  private forget(): void {
    if (this.gone) return
    this.gone = true
    this.space.leave(this)
    this.onClosed?.(this)
  }
}
