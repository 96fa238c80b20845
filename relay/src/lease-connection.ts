/**
 * One WebSocket on `/leases`: JSON requests in, replies and `lease_lost` pushes out (leases/wire.ts in
 * @chorus/sync, docs/PROTOCOL.md). A bad frame gets an error reply and counts toward `maxMalformed`, after which
 * the connection is closed with 1003; nothing a client sends can take the relay down or touch another's lease.
 */
import type { RawData, WebSocket } from 'ws'
import { ChorusError, leaseRequestSchema, type LeaseGrant, type LeaseLossReason, type LeaseLostPush, type LeaseWireReply } from '@chorus/sync'
import { checkActingAs, checkSpaceAccess, type Caller } from './auth.ts'
import type { Logger } from './logger.ts'
import type { LeaseService, LeaseSession } from './lease-service.ts'
import type { RateLimiter } from './rate-limit.ts'
import { CloseCode } from './sync-connection.ts'
import { frameBytes, Liveness, OPEN } from './socket-liveness.ts'

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
  readonly socket: WebSocket
  private readonly options: LeaseConnectionOptions
  private malformed = 0
  private gone = false
  private readonly liveness: Liveness

  constructor(socket: WebSocket, options: LeaseConnectionOptions) {
    this.socket = socket
    this.options = options
    socket.on('message', this.onMessage)
    this.liveness = new Liveness(socket)
    socket.on('close', () => this.forget())
    socket.on('error', (error) => options.logger.warn('lease connection error', { error }))
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
    if (this.socket.readyState === OPEN) this.socket.close(code, reason)
  }

  heartbeat(): void {
    if (this.gone || this.liveness.check()) return
    this.forget()
    this.socket.terminate()
  }

  private readonly onMessage = (data: RawData, isBinary: boolean): void => {
    if (this.gone) return
    this.liveness.seen()
    if (!this.options.limiter.take()) {
      this.reply({ id: null, ok: false, error: { code: 'rate_limited', message: 'too many requests; slow down' } })
      return
    }
    let id: number | null = null
    try {
      if (isBinary) throw new ChorusError('invalid_input', 'lease requests are JSON text frames')
      const bytes = frameBytes(data)
      if (bytes.length > this.options.maxFrameBytes) {
        throw new ChorusError('too_large', `a lease request is at most ${this.options.maxFrameBytes} bytes`, { limit: this.options.maxFrameBytes })
      }
      const text = bytes.toString('utf8')
      let body: unknown
      try {
        body = JSON.parse(text)
      } catch {
        throw new ChorusError('invalid_input', 'a lease request must be JSON')
      }
      if (typeof body === 'object' && body !== null && 'id' in body && typeof body.id === 'number' && Number.isSafeInteger(body.id)) id = body.id
      const parsed = leaseRequestSchema.safeParse(body)
      if (!parsed.success) {
        const issue = parsed.error.issues[0]
        throw new ChorusError('invalid_input', `${issue?.path.join('.') ?? ''}${issue?.path.length === 0 ? '' : ': '}${issue?.message ?? 'invalid request'}`)
      }
      const reply = this.answer(parsed.data)
      // L2: a grant leaves the relay only once its token is on disk.
      this.options.leases.durable().then(
        () => this.send(reply),
        (e: unknown) => {
          this.options.logger.error('could not commit the lease ledger', { error: e })
          this.send({ id: reply.id, ok: false, error: { code: 'lease_unavailable', message: 'the relay could not store the lease; try again' } })
        },
      )
    } catch (e) {
      const error = e instanceof ChorusError ? e : new ChorusError('invalid_input', 'could not handle the request')
      if (error.code === 'invalid_input' || error.code === 'too_large') this.countMalformed()
      this.reply({ id, ok: false, error: { code: error.code, message: error.message, details: { ...error.details } } })
    }
  }

  private answer(req: ReturnType<typeof leaseRequestSchema.parse>): LeaseWireReply {
    const { caller, leases } = this.options
    const target = req.op === 'acquire' ? req : req.grant
    checkSpaceAccess(caller, target.space)
    checkActingAs(caller, target.holder)
    switch (req.op) {
      case 'acquire':
        return { id: req.id, ok: true, grant: leases.acquire({ space: req.space, key: req.key, holder: req.holder, duration: req.duration }, this) }
      case 'renew':
        return { id: req.id, ok: true, grant: leases.renew(req.grant, req.duration, this) }
      case 'release':
        return { id: req.id, ok: true, released: leases.release(req.grant) }
    }
  }

  private countMalformed(): void {
    this.malformed++
    if (this.malformed >= this.options.maxMalformed) {
      this.options.logger.warn('closing a lease connection that sent too many malformed requests')
      this.close(CloseCode.unsupportedData, 'too many malformed requests')
    }
  }

  /** After the ledger commit that precedes it, so replies leave in the order their requests came. */
  private reply(reply: LeaseWireReply): void {
    this.options.leases.durable().then(
      () => this.send(reply),
      () => this.send(reply),
    )
  }

  private send(body: LeaseWireReply | LeaseLostPush): void {
    if (this.gone || this.socket.readyState !== OPEN) return
    this.socket.send(JSON.stringify(body), (error) => {
      if (error !== undefined && error !== null) this.options.logger.warn('lease send failed', { error })
    })
  }

  private forget(): void {
    if (this.gone) return
    this.gone = true
    this.options.leases.detach(this)
    this.options.onClose(this)
  }
}
