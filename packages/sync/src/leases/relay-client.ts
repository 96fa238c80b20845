/**
 * The lease client that talks to a relay over its `/leases` WebSocket (leases/wire.ts), or over any other channel
 * carrying the same JSON messages (`RelayLeaseClientOptions.channel`: libp2p's `/chorus/lease/1.0.0`). It connects on first use
 * and again on the next request after a drop; while the relay is unreachable every request fails at once with
 * `lease_unavailable` (L10), never waiting for a retry loop. It tells `onLost` listeners when the relay pushes
 * `lease_lost`, when a renewal is refused, and when a grant runs out by the holder's own count (L3, L6), so a
 * holder cut off from the relay still learns that it holds nothing.
 */
import { systemClock, type Clock } from '../clock.ts'
import { ChorusError, isChorusError } from '../errors.ts'
import type { LeaseClient, LeaseLossReason, LeaseRequest } from './lease-client.ts'
import type { LeaseGrant } from '../schema.ts'
import { LEASE_PATH, MAX_LEASE_FRAME_BYTES, type LeaseLostPush, type LeaseWireReply } from './wire.ts'

/** One open channel to the relay's lease service: JSON text messages, in order, both ways. */
export interface LeaseChannel {
  send(text: string): void
  close(): void
}

/** How a channel tells the client what arrives: each message, and its end (after which it is not used again). */
export interface LeaseChannelEvents {
  message(text: string): void
  closed(why: string): void
}

/** A way to reach the relay's lease service other than its WebSocket. */
export interface LeaseChannelFactory {
  /** Names the relay in error messages. */
  readonly name: string
  /** Opens a channel; rejects (any error) when the relay cannot be reached. */
  open(events: LeaseChannelEvents, timeoutMs: number): Promise<LeaseChannel>
  /** The relay's public key (base64url). */
  publicKey(): Promise<string>
}

export interface RelayLeaseClientOptions {
  /** The relay: `http://host:port`, `https://…`, `ws://…` or `wss://…`. Either this or `channel`. */
  relay?: string
  /** Reach the relay some other way (e.g. a libp2p stream) instead of its `/leases` WebSocket. */
  channel?: LeaseChannelFactory
  /** Bearer token, when the relay requires one (sent as the `token` query parameter). */
  token?: string
  /** How long to wait for the socket to open before failing with `lease_unavailable` (default 3 s). */
  connectTimeoutMs?: number
  /** How long to wait for a reply before failing with `lease_unavailable` (default 5 s). */
  requestTimeoutMs?: number
  /** Defaults to the global `WebSocket` (browsers, Node 22+). */
  WebSocket?: new (url: string) => WebSocket
  clock?: Clock
}

interface Pending {
  resolve(reply: LeaseWireReply): void
  reject(error: Error): void
  timer: ReturnType<typeof setTimeout>
}

interface Held {
  grant: LeaseGrant
  timer: ReturnType<typeof setTimeout>
}

/** The `/leases` endpoint of a relay given by its base URL. */
export const leaseUrl = (relay: string, token?: string): string => {
  let url: URL
  try {
    url = new URL(relay)
  } catch {
    throw new ChorusError('invalid_input', `not a URL: ${relay}`)
  }
  if (url.protocol === 'http:') url.protocol = 'ws:'
  else if (url.protocol === 'https:') url.protocol = 'wss:'
  else if (url.protocol !== 'ws:' && url.protocol !== 'wss:') throw new ChorusError('invalid_input', `a relay URL starts with http(s): or ws(s):, not ${url.protocol}`)
  url.pathname = `${url.pathname.replace(/\/+$/, '')}${LEASE_PATH}`
  url.search = ''
  if (token !== undefined) url.searchParams.set('token', token)
  return url.href
}

export class RelayLeaseClient implements LeaseClient {
  /** The relay's lease endpoint, or the channel's name. */
  readonly url: string
  private readonly connectTimeoutMs: number
  private readonly requestTimeoutMs: number
  private readonly channelFactory: LeaseChannelFactory
  private readonly clock: Clock
  private readonly pending = new Map<number, Pending>()
  private readonly held = new Map<string, Held>()
  private readonly listeners = new Set<(grant: LeaseGrant, reason: LeaseLossReason) => void>()
  private socket: Promise<LeaseChannel> | undefined
  /** Counts channels opened, so a late close of an old one does not drop a newer one. */
  private generation = 0
  private nextId = 1
  private key: string | undefined
  private closed = false

  constructor(options: RelayLeaseClientOptions) {
    if ((options.relay === undefined) === (options.channel === undefined)) {
      throw new ChorusError('invalid_input', 'give the relay URL or a lease channel, not both or neither')
    }
    this.connectTimeoutMs = options.connectTimeoutMs ?? 3_000
    this.requestTimeoutMs = options.requestTimeoutMs ?? 5_000
    this.clock = options.clock ?? systemClock
    if (options.channel !== undefined) {
      this.channelFactory = options.channel
      this.url = options.channel.name
      return
    }
    this.url = leaseUrl(options.relay as string, options.token)
    const WS = options.WebSocket ?? (globalThis as { WebSocket?: new (url: string) => WebSocket }).WebSocket
    if (WS === undefined) throw new ChorusError('invalid_input', 'no global WebSocket here (Node 22+ has one); pass options.WebSocket')
    this.channelFactory = webSocketChannel(this.url, WS, this.connectTimeoutMs)
  }

  async acquire(request: LeaseRequest): Promise<LeaseGrant> {
    const sentAt = this.clock.now()
    const reply = await this.request({ op: 'acquire', space: request.space, key: request.key, holder: request.holder, duration: request.duration })
    const grant = grantOf(reply)
    this.hold(grant, sentAt)
    return grant
  }

  async renew(grant: LeaseGrant, duration?: number): Promise<LeaseGrant> {
    const sentAt = this.clock.now()
    let reply: LeaseWireReply
    try {
      reply = await this.request({ op: 'renew', grant, duration })
      const renewed = grantOf(reply)
      this.hold(renewed, sentAt)
      return renewed
    } catch (e) {
      if (e instanceof ChorusError && e.code === 'lease_lost') this.lose(grant, 'expired')
      throw e
    }
  }

  async release(grant: LeaseGrant): Promise<void> {
    this.forget(grant)
    await this.request({ op: 'release', grant })
  }

  async publicKey(): Promise<string> {
    this.key ??= await this.channelFactory.publicKey()
    return this.key
  }

  /** Closes the channel and stops the expiry timers; later requests fail with `closed`. */
  close(): void {
    this.closed = true
    for (const h of this.held.values()) clearTimeout(h.timer)
    this.held.clear()
    this.failAll(new ChorusError('closed', 'the lease client was closed'))
    void this.socket?.then((channel) => channel.close(), () => undefined)
    this.socket = undefined
  }

  onLost(listener: (grant: LeaseGrant, reason: LeaseLossReason) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /** Grants this client believes it holds (by its own count, L3). */
  heldGrants(): LeaseGrant[] {
    return [...this.held.values()].map((h) => h.grant)
  }

  private async request(body: Record<string, unknown>): Promise<LeaseWireReply> {
    if (this.closed) throw new ChorusError('closed', 'the lease client was closed')
    const channel = await this.connect()
    const id = this.nextId++
    const text = JSON.stringify({ id, ...body })
    if (text.length > MAX_LEASE_FRAME_BYTES) throw new ChorusError('too_large', `lease request is over ${MAX_LEASE_FRAME_BYTES} bytes`)
    const reply = await new Promise<LeaseWireReply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id)
        reject(new ChorusError('lease_unavailable', `the relay did not answer within ${this.requestTimeoutMs} ms`))
      }, this.requestTimeoutMs)
      this.pending.set(id, { resolve, reject, timer })
      try {
        channel.send(text)
      } catch (e) {
        clearTimeout(timer)
        this.pending.delete(id)
        reject(new ChorusError('lease_unavailable', `could not send to the relay: ${e instanceof Error ? e.message : String(e)}`))
      }
    })
    if (!reply.ok) throw errorOf(reply)
    return reply
  }

  private connect(): Promise<LeaseChannel> {
    this.socket ??= this.open()
    return this.socket
  }

  private async open(): Promise<LeaseChannel> {
    const generation = ++this.generation
    const forget = (): void => {
      // Only if no newer channel has been opened since.
      if (this.generation === generation) this.socket = undefined
    }
    try {
      return await this.channelFactory.open(
        {
          message: (text) => this.onMessage(text),
          closed: (why) => {
            // The next request opens a new channel; whatever was in flight is unanswered.
            forget()
            this.failAll(new ChorusError('lease_unavailable', `the relay closed the lease connection (${why})`))
          },
        },
        this.connectTimeoutMs,
      )
    } catch (e) {
      forget()
      throw isChorusError(e, 'lease_unavailable')
        ? e
        : new ChorusError('lease_unavailable', `the relay's lease endpoint ${this.url} is unreachable: ${e instanceof Error ? e.message : String(e)}`)
    }
  }

  private onMessage(data: string): void {
    let msg: unknown
    try {
      msg = JSON.parse(data)
    } catch {
      return
    }
    if (typeof msg !== 'object' || msg === null) return
    if ('type' in msg && msg.type === 'lease_lost' && 'grant' in msg) {
      const push = msg as LeaseLostPush
      this.lose(push.grant, push.reason)
      return
    }
    if ('id' in msg && typeof msg.id === 'number') {
      const p = this.pending.get(msg.id)
      if (p === undefined) return
      this.pending.delete(msg.id)
      clearTimeout(p.timer)
      p.resolve(msg as LeaseWireReply)
    }
  }

  private failAll(error: Error): void {
    for (const p of this.pending.values()) {
      clearTimeout(p.timer)
      p.reject(error)
    }
    this.pending.clear()
  }

  /** Counts the grant from when its request was sent (L3) and reports it lost when that time is up. */
  private hold(grant: LeaseGrant, sentAt: number): void {
    const k = heldKey(grant)
    const previous = this.held.get(k)
    if (previous !== undefined) clearTimeout(previous.timer)
    const left = Math.max(0, sentAt + grant.duration - this.clock.now())
    const timer = setTimeout(() => {
      if (this.held.get(k)?.grant.token === grant.token) this.lose(grant, 'expired')
    }, left)
    ;(timer as { unref?: () => void }).unref?.()
    this.held.set(k, { grant, timer })
  }

  private forget(grant: LeaseGrant): boolean {
    const k = heldKey(grant)
    const h = this.held.get(k)
    if (h === undefined || h.grant.token !== grant.token || h.grant.holder !== grant.holder) return false
    clearTimeout(h.timer)
    this.held.delete(k)
    return true
  }

  /** Tells listeners once per grant. */
  private lose(grant: LeaseGrant, reason: LeaseLossReason): void {
    if (!this.forget(grant)) return
    for (const l of this.listeners) l(grant, reason)
  }
}

const heldKey = (g: LeaseGrant): string => `${g.space}\u0000${g.key}`

function grantOf(reply: LeaseWireReply): LeaseGrant {
  if (reply.ok && 'grant' in reply) return reply.grant
  throw new ChorusError('corrupt', 'the relay answered a lease request without a grant')
}

function errorOf(reply: LeaseWireReply & { ok: false }): ChorusError {
  return new ChorusError(reply.error.code, reply.error.message, reply.error.details ?? {})
}

/** The relay's `/leases` WebSocket at `url`, and its key from `/capabilities`. */
function webSocketChannel(url: string, WS: new (url: string) => WebSocket, connectTimeoutMs: number): LeaseChannelFactory {
  return {
    name: url,
    open: (events, timeoutMs) =>
      new Promise<LeaseChannel>((resolve, reject) => {
        const fail = (why: string): void => {
          clearTimeout(timer)
          reject(new ChorusError('lease_unavailable', `the relay's lease endpoint ${url} is unreachable: ${why}`))
        }
        let ws: WebSocket
        try {
          ws = new WS(url)
        } catch (e) {
          reject(new ChorusError('lease_unavailable', `could not open ${url}: ${e instanceof Error ? e.message : String(e)}`))
          return
        }
        let opened = false
        const timer = setTimeout(() => {
          ws.close()
          fail(`no answer within ${timeoutMs} ms`)
        }, timeoutMs)
        ws.addEventListener('open', () => {
          opened = true
          clearTimeout(timer)
          resolve({ send: (text) => ws.send(text), close: () => ws.close(1000, 'client closed') })
        })
        ws.addEventListener('error', () => {
          if (!opened) fail('connection failed')
        })
        ws.addEventListener('close', (event) => {
          if (!opened) fail(`closed with ${event.code}${event.reason === '' ? '' : ` (${event.reason})`}`)
          else events.closed(String(event.code))
        })
        ws.addEventListener('message', (event) => {
          if (typeof event.data === 'string') events.message(event.data)
        })
      }),
    publicKey: async () => {
      const base = new URL(url)
      base.protocol = base.protocol === 'wss:' ? 'https:' : 'http:'
      base.pathname = base.pathname.slice(0, -LEASE_PATH.length) + '/capabilities'
      base.search = ''
      let body: unknown
      try {
        const res = await fetch(base, { signal: AbortSignal.timeout(connectTimeoutMs) })
        body = await res.json()
      } catch (e) {
        throw new ChorusError('lease_unavailable', `could not reach the relay at ${base.origin}: ${e instanceof Error ? e.message : String(e)}`)
      }
      const key = typeof body === 'object' && body !== null && 'relayKey' in body ? body.relayKey : undefined
      if (typeof key !== 'string') throw new ChorusError('lease_unavailable', `the relay at ${base.origin} published no relayKey at /capabilities`)
      return key
    },
  }
}
