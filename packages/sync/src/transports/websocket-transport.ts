/**
 * A client Transport to a y-websocket-compatible server (the Chorus relay, or the stock `@y/websocket-server`),
 * which it sees as one peer. Works in browsers and Node 22+ alike: it uses the WHATWG `WebSocket` and no
 * `node:*` module.
 *
 * Each WebSocket frame carries one y-protocols message. When the connection opens the transport reports
 * `peerJoined`, so the Replicator sends sync step 1 on every (re)connect and the two sides resync; when it
 * drops it reports `peerLeft` and reconnects after an exponential backoff with full jitter, until `stop()`.
 *
 * ```ts
 * const transport = new WebSocketTransport({ url: syncUrl('wss://relay.example', space.id) })
 * const connection = await connectSpace(space, (d) => (d.doc === space.doc ? transport : undefined))
 * ```
 */
import { systemClock, type Clock } from '../clock.ts'
import { ChorusError } from '../errors.ts'
import type { PeerId, Transport, TransportListener, TransportStatus } from './transport.ts'

export const defaultMaxMessageBytes = 16 * 1024 * 1024
export const defaultBackoffBaseMs = 250
export const defaultBackoffCapMs = 10_000
export const defaultConnectTimeoutMs = 10_000

/**
 * The WebSocket endpoint of `space` on a relay at `base` (`ws://`, `wss://`, `http://` or `https://`, any path).
 * `token` is the bearer token of a relay that requires one; `participant` names who this replica acts for, which
 * an open relay checks before it serves a restricted-channel document (`team#ai-only`) to it.
 */
export const syncUrl = (base: string, space: string, options: { token?: string; participant?: string } = {}): string => {
  const url = new URL(base)
  if (url.protocol === 'http:') url.protocol = 'ws:'
  else if (url.protocol === 'https:') url.protocol = 'wss:'
  // Encoded as one path segment: restricted channels are named `<space>#<channel>`, and `#` would start a fragment.
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/sync/${encodeURIComponent(space)}`
  if (options.token !== undefined) url.searchParams.set('token', options.token)
  if (options.participant !== undefined) url.searchParams.set('participant', options.participant)
  return url.href
}

/**
 * Milliseconds to wait before retry number `attempt` (0-based): full jitter, uniform in
 * [0, min(cap, base·2^attempt)), so clients cut off together do not come back together.
 */
export const backoffDelay = (
  attempt: number,
  random: () => number = Math.random,
  baseMs: number = defaultBackoffBaseMs,
  capMs: number = defaultBackoffCapMs,
): number => random() * Math.min(capMs, baseMs * 2 ** attempt)

/** The timer functions the transport uses; injected in tests. */
export interface Timers {
  setTimeout(callback: () => void, ms: number): unknown
  clearTimeout(handle: unknown): void
}

const globalTimers: Timers = {
  setTimeout: (callback, ms) => globalThis.setTimeout(callback, ms),
  clearTimeout: (handle) => globalThis.clearTimeout(handle as Parameters<typeof globalThis.clearTimeout>[0]),
}

export type WebSocketConstructor = new (url: string) => WebSocket

/**
 * - `idle`: not started. `connecting`: a socket is opening. `connected`: open, messages flow.
 * - `waiting`: disconnected, a retry is scheduled. `closed`: `stop()` was called, or the server refused for good.
 */
export type WebSocketTransportState = 'idle' | 'connecting' | 'connected' | 'waiting' | 'closed'

export interface WebSocketTransportOptions {
  /** The endpoint, e.g. `ws://127.0.0.1:8550/sync/<space>`; see `syncUrl`. */
  url: string
  /** The PeerId the server is reported as (default `relay`). */
  peer?: PeerId
  /** Largest message sent or accepted, in bytes (default 16 MiB). */
  maxMessageBytes?: number
  /** First retry waits up to this long (default 250 ms); each failure in a row doubles it. */
  backoffBaseMs?: number
  /** Longest wait between retries (default 10 s). */
  backoffCapMs?: number
  /** A connection that stays open this long resets the backoff (default: `backoffCapMs`). */
  stableAfterMs?: number
  /** An opening socket is given up after this long and retried (default 10 s). */
  connectTimeoutMs?: number
  /**
   * Whether to reconnect after the server closed with `code`. By default every close is retried except
   * 4400–4499, which y-websocket servers use for "reconnecting cannot fix this" (e.g. access revoked).
   */
  shouldReconnect?: (close: { code: number; reason: string }) => boolean
  /** Told every status change, also when the transport is used through a Replicator (which keeps its own listener). */
  onStatus?: (status: TransportStatus) => void
  /** Told about incoming frames that were refused and why a connection attempt failed; never throws into the socket. */
  onError?: (error: Error) => void
  /**
   * Asked before every connection attempt; while it says false the transport makes none and waits for
   * `retryNow()` (a browser passes `() => navigator.onLine` and calls `retryNow()` on its `online` event).
   */
  isOnline?: () => boolean
  /** Defaults to the global `WebSocket` (browsers, Node 22+). */
  WebSocket?: WebSocketConstructor
  random?: () => number
  timers?: Timers
  clock?: Clock
}

const defaultShouldReconnect = ({ code }: { code: number }): boolean => !(code >= 4400 && code < 4500)

export class WebSocketTransport implements Transport {
  readonly url: string
  readonly peer: PeerId
  readonly maxMessageBytes: number
  private readonly backoffBaseMs: number
  private readonly backoffCapMs: number
  private readonly stableAfterMs: number
  private readonly connectTimeoutMs: number
  private readonly shouldReconnect: (close: { code: number; reason: string }) => boolean
  private readonly onStatus: ((status: TransportStatus) => void) | undefined
  private readonly onError: ((error: Error) => void) | undefined
  private readonly isOnline: () => boolean
  private readonly WS: WebSocketConstructor
  private readonly random: () => number
  private readonly timers: Timers
  private readonly clock: Clock
  private readonly peerSet = new Set<PeerId>()
  private listener: TransportListener | null = null
  private phase: WebSocketTransportState = 'idle'
  private socket: WebSocket | null = null
  private openedAt = 0
  private failures = 0
  private connectTimer: unknown = null
  private retryTimer: unknown = null
  /** Sockets given up on but not yet closed; stop() waits for them. */
  private readonly closing = new Set<Promise<void>>()
  private closeInfo: { code: number; reason: string } | null = null

  constructor(options: WebSocketTransportOptions) {
    let parsed: URL
    try {
      parsed = new URL(options.url)
    } catch {
      throw new ChorusError('invalid_input', `not a URL: ${options.url}`)
    }
    if (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:') {
      throw new ChorusError('invalid_input', `a WebSocket URL starts with ws: or wss:, not ${parsed.protocol}`)
    }
    // Typed loosely: the DOM types promise a global WebSocket, but Node before 22 has none.
    const WS = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket
    if (WS === undefined) throw new ChorusError('invalid_input', 'no global WebSocket here (Node 22+ has one); pass options.WebSocket')
    this.url = options.url
    this.peer = options.peer ?? 'relay'
    this.maxMessageBytes = options.maxMessageBytes ?? defaultMaxMessageBytes
    this.backoffBaseMs = options.backoffBaseMs ?? defaultBackoffBaseMs
    this.backoffCapMs = options.backoffCapMs ?? defaultBackoffCapMs
    this.stableAfterMs = options.stableAfterMs ?? this.backoffCapMs
    this.connectTimeoutMs = options.connectTimeoutMs ?? defaultConnectTimeoutMs
    this.shouldReconnect = options.shouldReconnect ?? defaultShouldReconnect
    this.onStatus = options.onStatus
    this.onError = options.onError
    this.isOnline = options.isOnline ?? (() => true)
    this.WS = WS
    this.random = options.random ?? Math.random
    this.timers = options.timers ?? globalTimers
    this.clock = options.clock ?? systemClock
  }

  get peers(): ReadonlySet<PeerId> {
    return this.peerSet
  }

  get state(): WebSocketTransportState {
    return this.phase
  }

  /**
   * Connection attempts in a row that failed or closed before staying up `stableAfterMs`: the next retry
   * waits up to base·2^attempts. 0 again once a connection has stayed up that long.
   */
  get attempts(): number {
    if (this.phase === 'connected' && this.clock.now() - this.openedAt >= this.stableAfterMs) return 0
    return this.failures
  }

  /** How the server last closed the connection (code and reason), if it has. */
  get lastClose(): { code: number; reason: string } | null {
    return this.closeInfo
  }

  /** Whether a retry or connect-timeout timer is pending (none after stop()). */
  get hasTimers(): boolean {
    return this.retryTimer !== null || this.connectTimer !== null
  }

  /** Starts connecting and resolves at once: the transport works offline and catches up when the link opens. */
  start(listener: TransportListener): Promise<void> {
    if (this.phase !== 'idle') return Promise.reject(new ChorusError('closed', 'a WebSocketTransport starts only once'))
    this.listener = listener
    this.connect()
    return Promise.resolve()
  }

  /**
   * Throws `too_large` for a message over `maxMessageBytes`, connected or not. While disconnected a message
   * is dropped: the Replicator sends sync step 1 when the link reopens, and that resync carries whatever was
   * dropped.
   */
  send(peer: PeerId, message: Uint8Array): void {
    if (message.length > this.maxMessageBytes) {
      throw new ChorusError('too_large', `message of ${message.length} bytes is over ${this.maxMessageBytes}`, {
        bytes: message.length,
        max: this.maxMessageBytes,
      })
    }
    if (peer !== this.peer || this.phase !== 'connected' || this.socket === null) return
    // No backpressure: y-protocols has no flow control, so the socket buffers (see bufferedAmount).
    // WebSocket.send refuses views of a SharedArrayBuffer; lib0 never makes those, but a caller might.
    this.socket.send(message.buffer instanceof ArrayBuffer ? (message as Uint8Array<ArrayBuffer>) : new Uint8Array(message))
  }

  broadcast(message: Uint8Array): void {
    this.send(this.peer, message)
  }

  /**
   * Connects now if the transport is waiting to retry (e.g. the browser says it is back online); the backoff
   * keeps counting, so a server that is still down is not hammered.
   */
  retryNow(): void {
    if (this.phase !== 'waiting') return
    if (this.retryTimer !== null) this.timers.clearTimeout(this.retryTimer)
    this.retryTimer = null
    this.connect()
  }

  /**
   * Closes the current connection as if the network had dropped it, and retries as usual. For when the platform
   * knows the link is dead before the socket does (a browser going offline leaves open sockets open).
   */
  dropConnection(): void {
    if (this.phase !== 'connected' && this.phase !== 'connecting') return
    const socket = this.socket
    if (socket !== null) this.retire(socket)
    this.lost(null)
  }

  /** Closes the socket and cancels retries; resolves once the socket has closed. */
  async stop(): Promise<void> {
    if (this.phase !== 'closed') {
      // Like every transport, stop() reports nothing to its own listener (the Replicator has already let go).
      this.listener = null
      const wasDisconnected = this.phase === 'waiting' || this.phase === 'idle'
      this.phase = 'closed'
      this.clearTimers()
      this.peerSet.clear()
      if (this.socket !== null) this.retire(this.socket)
      this.socket = null
      if (!wasDisconnected) this.report('disconnected')
    }
    await Promise.all(this.closing)
  }

  private connect(): void {
    if (!this.isOnline()) {
      // No attempt that is bound to fail (and that a browser would log): wait for retryNow().
      this.phase = 'waiting'
      return
    }
    this.phase = 'connecting'
    let socket: WebSocket
    try {
      socket = new this.WS(this.url)
    } catch (error) {
      this.fail(error)
      this.report('connecting')
      this.lost(null)
      return
    }
    socket.binaryType = 'arraybuffer'
    this.socket = socket
    socket.onopen = () => {
      if (this.socket !== socket) return
      this.clearConnectTimer()
      this.phase = 'connected'
      this.openedAt = this.clock.now()
      this.peerSet.add(this.peer)
      this.report('connected')
      this.listener?.peerJoined(this.peer)
    }
    socket.onmessage = (event: MessageEvent<unknown>) => {
      if (this.socket !== socket) return
      const data = event.data
      if (!(data instanceof ArrayBuffer)) {
        // y-websocket servers send binary frames only; a text frame is not a y-protocols message.
        this.fail(new ChorusError('corrupt', 'received a text frame; y-protocols messages are binary'))
        return
      }
      if (data.byteLength > this.maxMessageBytes) {
        // Dropping it would leave the document missing an update, so close; the reconnect resyncs.
        const details = { bytes: data.byteLength, max: this.maxMessageBytes }
        this.fail(new ChorusError('too_large', `incoming message is over ${this.maxMessageBytes} bytes`, details))
        this.retire(socket)
        this.lost(null)
        return
      }
      this.listener?.message(this.peer, new Uint8Array(data))
    }
    // Browsers say nothing useful in an error event, and a close event always follows it.
    socket.onerror = () => {}
    socket.onclose = (event: CloseEvent) => {
      if (this.socket !== socket) return
      this.detach(socket)
      this.lost({ code: event.code, reason: event.reason })
    }
    this.connectTimer = this.timers.setTimeout(() => {
      this.connectTimer = null
      if (this.socket !== socket || this.phase !== 'connecting') return
      this.fail(new Error(`no connection to ${this.url} within ${this.connectTimeoutMs} ms`))
      this.retire(socket)
      this.lost(null)
    }, this.connectTimeoutMs)
    this.report('connecting')
  }

  /** The current socket is gone (`close` is null when we dropped it ourselves): tell the listener, then retry. */
  private lost(close: { code: number; reason: string } | null): void {
    if (this.phase === 'closed') return
    const wasOpen = this.phase === 'connected'
    this.socket = null
    this.clearConnectTimer()
    if (close !== null) this.closeInfo = close
    if (wasOpen && this.clock.now() - this.openedAt >= this.stableAfterMs) this.failures = 0
    const retry = close === null || this.shouldReconnect(close)
    let delay = 0
    if (retry) {
      delay = backoffDelay(this.failures, this.random, this.backoffBaseMs, this.backoffCapMs)
      this.failures++
    }
    this.phase = retry ? 'waiting' : 'closed'
    const listener = this.listener
    if (!retry) this.listener = null
    if (this.peerSet.delete(this.peer)) listener?.peerLeft(this.peer)
    this.report('disconnected', listener)
    // The listener may have stopped the transport from inside peerLeft or status.
    if (this.phase !== 'waiting') return
    this.retryTimer = this.timers.setTimeout(() => {
      this.retryTimer = null
      if (this.phase === 'waiting') this.connect()
    }, delay)
  }

  /** Closes a socket that is no longer current; stop() waits until it has closed. */
  private retire(socket: WebSocket): void {
    if (this.socket === socket) this.socket = null
    this.detach(socket)
    if (socket.readyState === socket.CLOSED) return
    const closed = new Promise<void>((resolve) => {
      // A socket that never reports its close (a dead network) must not hold stop() forever.
      const fallback = this.timers.setTimeout(resolve, this.connectTimeoutMs)
      socket.onclose = () => {
        this.timers.clearTimeout(fallback)
        resolve()
      }
    })
    const tracked = closed.then(() => {
      this.closing.delete(tracked)
    })
    this.closing.add(tracked)
    try {
      socket.close()
    } catch {
      // close() only throws for bad codes, which are never passed; the socket is being dropped regardless.
    }
  }

  private detach(socket: WebSocket): void {
    socket.onopen = null
    socket.onmessage = null
    socket.onclose = null
    // Kept, not removed: closing a socket that is still connecting reports an error, and a Node `ws` socket
    // throws an error that has no listener.
    socket.onerror = () => {}
  }

  private report(status: TransportStatus, listener: TransportListener | null = this.listener): void {
    // A throwing observer must not stop the other one hearing, nor break the connection logic.
    for (const tell of [listener?.status?.bind(listener), this.onStatus]) {
      try {
        tell?.(status)
      } catch (error) {
        this.fail(error)
      }
    }
  }

  private fail(error: unknown): void {
    try {
      this.onError?.(error instanceof Error ? error : new Error(String(error)))
    } catch {
      // The report is best effort; the connection logic must go on.
    }
  }

  private clearConnectTimer(): void {
    if (this.connectTimer === null) return
    this.timers.clearTimeout(this.connectTimer)
    this.connectTimer = null
  }

  private clearTimers(): void {
    this.clearConnectTimer()
    if (this.retryTimer !== null) this.timers.clearTimeout(this.retryTimer)
    this.retryTimer = null
  }
}
