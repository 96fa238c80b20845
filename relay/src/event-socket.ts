import type { WebSocket } from 'ws'
import type { Caller } from './auth.ts'
import type { HostedSpace } from './hosted-spaces.ts'
import type { Logger } from './logger.ts'
import type { RateLimiter } from './rate-limit.ts'

export interface EventSocketOptions {
  hosted: HostedSpace
  entity: string
  caller: Caller
  logger: Logger
  limiter: RateLimiter
  onClose: (socket: EventSocket) => void
}

export class EventSocket {
  readonly socket: WebSocket
  private readonly options: EventSocketOptions
  private gone = false

  constructor(socket: WebSocket, options: EventSocketOptions) {
    this.socket = socket
    this.options = options
    socket.on('close', () => this.forget())
  }

  get closed(): boolean {
    return this.gone
  }

  heartbeat(): void {}

  close(code: number, reason: string): void {
    this.forget()
    this.socket.close(code, reason)
  }

  private forget(): void {
    if (this.gone) return
    this.gone = true
    this.options.hosted.release()
    this.options.onClose(this)
  }
}
