/**
 * What the relay's three kinds of WebSocket (`/sync`, `/leases`, `/ws`) share: ping-based liveness and reading a
 * frame's bytes whatever shape `ws` delivered them in.
 */
import type { RawData, WebSocket } from 'ws'

/** `WebSocket.OPEN`, without needing the class at run time. */
export const OPEN = 1

/**
 * A socket is alive if it sent anything (a frame or a pong) since the previous check. Each relay heartbeat calls
 * `check()`: it pings a live socket and returns false for one that ignored the previous ping, to be dropped.
 */
export class Liveness {
  private readonly socket: WebSocket
  private alive = true

  constructor(socket: WebSocket) {
    this.socket = socket
    socket.on('pong', () => this.seen())
  }

  seen(): void {
    this.alive = true
  }

  check(): boolean {
    if (!this.alive) return false
    this.alive = false
    if (this.socket.readyState === OPEN) this.socket.ping()
    return true
  }
}

/** One frame's bytes, without copying when `ws` handed over a single Buffer. */
export function frameBytes(data: RawData): Buffer {
  if (Array.isArray(data)) return Buffer.concat(data)
  return Buffer.isBuffer(data) ? data : Buffer.from(data)
}
