/**
 * One lease session: JSON requests in, replies and `lease_lost` pushes out (leases/wire.ts in @chorus/sync,
 * docs/PROTOCOL.md), over a WebSocket on `/leases` (`webSocketLeaseWire`) or a libp2p `/chorus/lease/1.0.0` stream. A bad frame gets an error reply and counts toward `maxMalformed`, after which
 * the connection is closed with 1003; nothing a client sends can take the relay down or touch another's lease.
 */
import type { RawData, WebSocket } from 'ws'
import { ChorusError, leaseRequestSchema, type LeaseGrant, type LeaseLossReason, type LeaseLostPush, type LeaseWireReply } from '@chorus/sync'
import { checkActingAs, checkSpaceAccess, type Caller } from './access.ts'
import type { Logger } from './logger.ts'
import type { LeaseService, LeaseSession } from './lease-service.ts'
import type { RateLimiter } from './rate-limit.ts'
import { CloseCode } from './sync-connection.ts'
import { frameBytes, Liveness, OPEN } from './socket-liveness.ts'

/** What a lease session is carried over. */
export interface LeaseWire {
  send(text: string): void
  close(code: number, reason: string): void
  /** For the relay's heartbeat: false once the other end stopped answering. */
  alive(): boolean
  terminate(): void
}

/** A `/leases` WebSocket as a lease wire; its frames and close go to `connection`. */
export function attachWebSocket(socket: WebSocket, options: LeaseConnectionOptions): LeaseConnection {
  const liveness = new Liveness(socket)
  const connection = new LeaseConnection(
    {
      send: (text) => {
        if (socket.readyState !== OPEN) return
        socket.send(text, (error) => {
          if (error !== undefined && error !== null) options.logger.warn('lease send failed', { error })
        })
      },
      close: (code, reason) => {
        if (socket.readyState === OPEN) socket.close(code, reason)
      },
      alive: () => liveness.check(),
      terminate: () => socket.terminate(),
    },
    options,
  )
  socket.on('message', (data: RawData, isBinary: boolean) => {
    liveness.seen()
    connection.receive(frameBytes(data), !isBinary)
  })
  socket.on('close', () => connection.ended())
  socket.on('error', (error) => options.logger.warn('lease connection error', { error }))
  return connection
}

export interface LeaseConnectionOptions {
  caller: Caller
  leases: LeaseService
  logger: Logger
  maxMalformed: number
  limiter: RateLimiter
  maxFrameBytes: number
  onClose: (connection: LeaseConnection) => void
}

export class LeaseConnection implements LeaseSession {
  private readonly wire: LeaseWire
  private readonly options: LeaseConnectionOptions
  private malformed = 0
  private gone = false
  /** The last reply queued (see `reply`). */
  private replies: Promise<void> = Promise.resolve()

  constructor(wire: LeaseWire, options: LeaseConnectionOptions) {
    this.wire = wire
    this.options = options
  }

  get closed(): boolean {
    return this.gone
  }

  leaseLost(grant: LeaseGrant, reason: LeaseLossReason): void {
    const push: LeaseLostPush = { type: 'lease_lost', grant, reason }
    this.send(push)
  }

  close(code: number, reason: string): void {
    this.forget()
    this.wire.close(code, reason)
  }

  heartbeat(): void {
    if (this.gone || this.wire.alive()) return
    this.forget()
    this.wire.terminate()
  }

  /** The wire is gone. */
  ended(): void {
    this.forget()
  }

  /** One frame from the client: `text` false for a binary frame (refused). */
  receive(bytes: Uint8Array, text: boolean): void {
    if (this.gone) return
    if (!this.options.limiter.take()) {
      this.reply({ id: null, ok: false, error: { code: 'rate_limited', message: 'too many requests; slow down' } })
      return
    }
    let id: number | null = null
    let answer: LeaseWireReply | Promise<LeaseWireReply>
    try {
      if (!text) throw new ChorusError('invalid_input', 'lease requests are JSON text frames')
      if (bytes.length > this.options.maxFrameBytes) {
        throw new ChorusError('too_large', `a lease request is at most ${this.options.maxFrameBytes} bytes`, { limit: this.options.maxFrameBytes })
      }
      let body: unknown
      try {
        body = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'))
      } catch {
        throw new ChorusError('invalid_input', 'a lease request must be JSON')
      }
      if (typeof body === 'object' && body !== null && 'id' in body && typeof body.id === 'number' && Number.isSafeInteger(body.id)) id = body.id
      const parsed = leaseRequestSchema.safeParse(body)
      if (!parsed.success) {
        const issue = parsed.error.issues[0]
        throw new ChorusError('invalid_input', `${issue?.path.join('.') ?? ''}${issue?.path.length === 0 ? '' : ': '}${issue?.message ?? 'invalid request'}`)
      }
      // Decided now, in arrival order; answered once the ledger has stored it (L2: a grant leaves only then).
      answer = this.answer(parsed.data)
    } catch (e) {
      answer = this.refusal(id, e)
    }
    this.reply(answer)
  }

  /** The reply to a well-formed request: a refusal the access checks throw at once, the service's later. */
  private answer(req: ReturnType<typeof leaseRequestSchema.parse>): Promise<LeaseWireReply> {
    const { caller, leases } = this.options
    const target = req.op === 'acquire' ? req : req.grant
    checkSpaceAccess(caller, target.space)
    checkActingAs(caller, target.holder)
    const refused = (e: unknown): LeaseWireReply => this.refusal(req.id, e)
    switch (req.op) {
      case 'acquire':
        return leases.acquire({ space: req.space, key: req.key, holder: req.holder, duration: req.duration }, this).then((grant) => ({ id: req.id, ok: true, grant }), refused)
      case 'renew':
        return leases.renew(req.grant, req.duration, this).then((grant) => ({ id: req.id, ok: true, grant }), refused)
      case 'release':
        return leases.release(req.grant).then((released) => ({ id: req.id, ok: true, released }), refused)
    }
  }

  private refusal(id: number | null, e: unknown): LeaseWireReply {
    const error = e instanceof ChorusError ? e : new ChorusError('invalid_input', 'could not handle the request')
    if (error.code === 'invalid_input' || error.code === 'too_large') this.countMalformed()
    return { id, ok: false, error: { code: error.code, message: error.message, details: { ...error.details } } }
  }

  private countMalformed(): void {
    this.malformed++
    if (this.malformed >= this.options.maxMalformed) {
      this.options.logger.warn('closing a lease connection that sent too many malformed requests')
      this.close(CloseCode.unsupportedData, 'too many malformed requests')
    }
  }

  /** Once every earlier reply is sent, so replies leave in the order their requests came. */
  private reply(reply: LeaseWireReply | Promise<LeaseWireReply>): void {
    this.replies = Promise.all([this.replies, reply]).then(([, r]) => {
      try {
        this.send(r)
      } catch (error) {
        this.options.logger.warn('lease reply failed', { error })
      }
    })
  }

  private send(body: LeaseWireReply | LeaseLostPush): void {
    if (this.gone) return
    this.wire.send(JSON.stringify(body))
  }

  private forget(): void {
    if (this.gone) return
    this.gone = true
    this.options.leases.detach(this)
    this.options.onClose(this)
  }
}
