/**
 * The relay's open connections of its three WebSocket endpoints (sync, leases, events) and of libp2p lease
 * streams: each made with the relay's limits, pinged by one heartbeat, and closed together when the relay stops.
 */
import type { WebSocket } from 'ws'
import { MAX_LEASE_FRAME_BYTES, type Clock } from '@chorus/sync'
import type { Caller } from './access.ts'
import { EventSocket } from './event-socket.ts'
import type { HostedSpace } from './hosted-spaces.ts'
import { attachWebSocket, LeaseConnection, type LeaseConnectionOptions, type LeaseWire } from './lease-connection.ts'
import type { LeaseService } from './lease-service.ts'
import type { Logger } from './logger.ts'
import { RateLimiter, type RateLimit } from './rate-limit.ts'
import type { SpaceEntry } from './space-entry.ts'
import type { SpaceRegistry } from './spaces.ts'
import { CloseCode, DEFAULT_MAX_MALFORMED, SyncConnection } from './sync-connection.ts'

export interface ConnectionLimits {
  logger: Logger
  /** Frames per second (and burst) allowed per connection. */
  rateLimit: RateLimit
  clock: Clock
  maxMalformed?: number
  maxBufferedBytes?: number
}

/** What the heartbeat and the shutdown need of any connection. */
interface Connection {
  heartbeat(): void
  close(code: number, reason: string): void
}

export class Connections {
  private readonly limits: ConnectionLimits
  private readonly syncs = new Set<SyncConnection>()
  private readonly leases = new Set<LeaseConnection>()
  private readonly events = new Set<EventSocket>()

  constructor(limits: ConnectionLimits) {
    this.limits = limits
  }

  /** Open sync connections. */
  get syncCount(): number {
    return this.syncs.size
  }

  /** A `/sync/<space>` socket on the loaded space `entry`, which it holds in `registry` until it closes. */
  sync(ws: WebSocket, entry: SpaceEntry, registry: SpaceRegistry): void {
    const connection = new SyncConnection(ws, entry, {
      logger: this.limits.logger,
      limiter: this.limiter(),
      maxMalformed: this.limits.maxMalformed,
      maxBufferedBytes: this.limits.maxBufferedBytes,
      onClose: (c) => {
        this.syncs.delete(c)
        registry.release(entry)
      },
    })
    if (!connection.closed) this.syncs.add(connection)
  }

  /** A `/leases` socket of `caller`. */
  leaseSocket(ws: WebSocket, caller: Caller, leases: LeaseService): void {
    const connection = attachWebSocket(ws, this.leaseOptions(caller, leases))
    if (!connection.closed) this.leases.add(connection)
  }

  /** A lease session of `caller` over another wire (a libp2p stream). */
  leaseSession(wire: LeaseWire, caller: Caller, leases: LeaseService): LeaseConnection {
    const connection = new LeaseConnection(wire, this.leaseOptions(caller, leases))
    this.leases.add(connection)
    return connection
  }

  /** A `/ws/<entity>` socket on the hosted space `hosted`, which it gives back when it closes. */
  eventSocket(ws: WebSocket, hosted: HostedSpace, entity: string, caller: Caller): void {
    const events = new EventSocket(ws, {
      hosted,
      entity,
      caller,
      logger: this.limits.logger,
      limiter: this.limiter(),
      onClose: (s) => this.events.delete(s),
    })
    if (!events.closed) this.events.add(events)
  }

  /** Pings every connection, dropping those that did not answer the previous ping. */
  heartbeat(): void {
    for (const connection of this.all()) connection.heartbeat()
  }

  /** Closing handshake with every client of `sockets`, then drop whoever has not answered within `graceMs`. */
  async close(sockets: WebSocket[], graceMs: number): Promise<void> {
    if (sockets.length === 0) return
    // Not events.once: it rejects on an 'error' event, and ws emits 'close' after one anyway.
    const closed = sockets.map((ws) =>
      ws.readyState === ws.CLOSED ? Promise.resolve() : new Promise<void>((resolve) => ws.once('close', () => resolve())),
    )
    for (const connection of this.all()) connection.close(CloseCode.goingAway, 'relay shutting down')
    for (const ws of sockets) if (ws.readyState === ws.OPEN) ws.close(CloseCode.goingAway, 'relay shutting down')
    const grace = setTimeout(() => {
      for (const ws of sockets) ws.terminate()
    }, graceMs)
    try {
      await Promise.all(closed)
    } finally {
      clearTimeout(grace)
    }
  }

  /** Every open connection, as a copy (closing one removes it from its set). */
  private all(): Connection[] {
    return [...this.syncs, ...this.leases, ...this.events]
  }

  private limiter(): RateLimiter {
    return new RateLimiter(this.limits.rateLimit, this.limits.clock)
  }

  private leaseOptions(caller: Caller, leases: LeaseService): LeaseConnectionOptions {
    return {
      caller,
      leases,
      logger: this.limits.logger,
      maxMalformed: this.limits.maxMalformed ?? DEFAULT_MAX_MALFORMED,
      limiter: this.limiter(),
      maxFrameBytes: MAX_LEASE_FRAME_BYTES,
      onClose: (c) => this.leases.delete(c),
    }
  }
}
