/**
 * The relay's WebSocket endpoints, and the routing of upgrade requests to them:
 *
 * - `/sync/<doc>`: y-websocket on a space or one of its restricted-channel documents, the name URL-encoded as one
 *   path segment (`team#ai-only` is `/sync/team%23ai-only`).
 * - `/leases`: the lease protocol.
 * - `/ws/<entity>` (default space) or `/spaces/<space>/ws/<entity>`: the hub's JSON events for one entity.
 *
 * `endpointOf` reads a path once for both ways in, so a path means the same over HTTP and upgrade: an endpoint
 * (HTTP: 426, upgrade required), a malformed endpoint path (HTTP: 400; upgrade: accepted, then closed with 4400,
 * which the stock client takes as final), or no endpoint (upgrade: 404; HTTP goes on to the REST routes).
 */
import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import type { WebSocket, WebSocketServer } from 'ws'
import { isChorusError, LEASE_PATH } from '@chorus/sync'
import { checkSpaceAccess, type Access, type Caller } from './access.ts'
import type { Connections } from './connections.ts'
import type { HostedSpace, HostedSpaces } from './hosted-spaces.ts'
import type { LeaseService } from './lease-service.ts'
import type { Logger } from './logger.ts'
import { checkSpaceName, type SpaceRegistry } from './spaces.ts'
import { CloseCode } from './sync-connection.ts'

const SYNC_PREFIX = '/sync/'
const EVENTS_PREFIX = '/ws/'
/** `/spaces/<space>/ws/`: the events of a space other than the default one. */
const SPACE_EVENTS = /^\/spaces\/([^/]*)\/ws\//

export type Endpoint =
  | { kind: 'sync'; doc: string }
  | { kind: 'leases' }
  | { kind: 'events'; space: string; entity: string }
  /** A path of an endpoint that names nothing valid (a bad space name, no entity...): `error` says why. */
  | { kind: 'malformed'; error: string }

/** The WebSocket endpoint `path` (a URL's decoded-later pathname) names, or undefined when it names none. */
export function endpointOf(path: string, defaultSpace: string): Endpoint | undefined {
  if (path === LEASE_PATH) return { kind: 'leases' }
  if (path.startsWith(SYNC_PREFIX)) {
    const doc = decodeSegment(path.slice(SYNC_PREFIX.length))
    if (doc === undefined) return { kind: 'malformed', error: 'invalid space name: bad percent-encoding' }
    const invalid = checkSpaceName(doc)
    return invalid === null ? { kind: 'sync', doc } : { kind: 'malformed', error: invalid }
  }
  let space: string | undefined
  let rest: string
  const spaced = SPACE_EVENTS.exec(path)
  if (path.startsWith(EVENTS_PREFIX)) {
    space = defaultSpace
    rest = path.slice(EVENTS_PREFIX.length)
  } else if (spaced !== null) {
    space = decodeSegment(spaced[1] as string)
    if (space === undefined) return { kind: 'malformed', error: 'invalid space name: bad percent-encoding' }
    rest = path.slice(spaced[0].length)
  } else return undefined
  const invalid = checkSpaceName(space)
  if (invalid !== null || space.includes('#')) return { kind: 'malformed', error: invalid ?? 'events are streamed per space, not per restricted document' }
  if (rest.includes('/')) return { kind: 'malformed', error: 'name one entity: /ws/<entity_id>, with any / in it percent-encoded' }
  const entity = decodeSegment(rest)
  if (entity === undefined) return { kind: 'malformed', error: 'invalid entity id: bad percent-encoding' }
  if (entity === '') return { kind: 'malformed', error: 'name the entity: /ws/<entity_id>' }
  return { kind: 'events', space, entity }
}

function decodeSegment(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment)
  } catch {
    return undefined
  }
}

/** The path of a request URL, or undefined for a URL that cannot be read. */
export function pathOf(req: IncomingMessage): string | undefined {
  try {
    return new URL(req.url ?? '/', 'http://relay').pathname
  } catch {
    return undefined
  }
}

export interface UpgradeParts {
  wss: WebSocketServer
  access: Access
  registry: SpaceRegistry
  hosted: HostedSpaces
  leases: LeaseService
  connections: Connections
  defaultSpace: string
  logger: Logger
  /** True while the relay takes no new socket (not started yet, or stopping). */
  closed: () => boolean
}

/** One upgrade request: what every step of its handling needs. */
interface Upgrade {
  req: IncomingMessage
  socket: Duplex
  head: Buffer
  caller: Caller
  onError: () => void
}

export class Upgrades {
  private readonly parts: UpgradeParts
  /** Upgrade requests waiting for their space to load. */
  private readonly pending = new Set<Duplex>()

  constructor(parts: UpgradeParts) {
    this.parts = parts
  }

  /** The server's `upgrade` listener. */
  readonly handle = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    // Whatever goes wrong with one upgrade must cost that socket only, never the process.
    this.upgrade(req, socket, head).catch((error: unknown) => {
      this.parts.logger.error('a WebSocket upgrade failed', { path: req.url, error })
      socket.destroy()
    })
  }

  /** Drop the upgrades still waiting for their space (the relay is stopping). */
  dropPending(): void {
    for (const socket of this.pending) socket.destroy()
    this.pending.clear()
  }

  private async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    // Until ws takes the socket over, a reset by the client must not become an uncaught 'error'.
    const onError = (): void => void socket.destroy()
    socket.on('error', onError)
    if (this.parts.closed()) {
      rejectUpgrade(socket, 503, { error: 'unavailable', message: 'the relay is stopping' })
      return
    }
    let caller: Caller
    try {
      caller = this.parts.access.caller(req)
    } catch (e) {
      rejectUpgrade(socket, 401, { error: 'unauthorized', message: e instanceof Error ? e.message : 'unauthorized' })
      return
    }
    const path = pathOf(req)
    const endpoint = path === undefined ? undefined : endpointOf(path, this.parts.defaultSpace)
    const upgrade: Upgrade = { req, socket, head, caller, onError }
    switch (endpoint?.kind) {
      case undefined:
        rejectUpgrade(socket, 404, { error: 'not_found', message: `no WebSocket endpoint at ${path ?? req.url ?? ''}; use /sync/<space>, ${LEASE_PATH} or /ws/<entity>` })
        return
      case 'malformed':
        return this.refuse(upgrade, CloseCode.badRequest, endpoint.error)
      case 'leases':
        this.accept(upgrade, (ws) => this.parts.connections.leaseSocket(ws, caller, this.parts.leases))
        return
      case 'events':
        return this.events(upgrade, endpoint.space, endpoint.entity)
      case 'sync':
        return this.sync(upgrade, endpoint.doc)
    }
  }

  /** Hands the socket to ws. Synchronous (no verifyClient): false when ws refused the handshake. */
  private accept({ req, socket, head, onError }: Upgrade, attach: (ws: WebSocket) => void): boolean {
    socket.off('error', onError)
    let attached = false
    this.parts.wss.handleUpgrade(req, socket, head, (ws) => {
      attached = true
      attach(ws)
    })
    return attached
  }

  /** Accept, then close with a 44xx code: the stock client takes 4400-4499 as final and stops reconnecting. */
  private refuse(upgrade: Upgrade, code: number, reason: string): void {
    this.accept(upgrade, (ws) => {
      ws.on('error', () => undefined)
      ws.close(code, reason)
    })
  }

  private async sync(upgrade: Upgrade, doc: string): Promise<void> {
    const participant = new URL(upgrade.req.url ?? '/', 'http://relay').searchParams.get('participant') ?? undefined
    try {
      await this.parts.access.checkDocument(upgrade.caller, doc, participant)
    } catch (e) {
      // Unknown participant: maybe its join has not reached the relay yet, so the client may retry (1008).
      if (isChorusError(e, 'not_found')) return this.refuse(upgrade, CloseCode.policyViolation, e.message)
      return this.refuse(upgrade, CloseCode.forbidden, e instanceof Error ? e.message : 'forbidden')
    }
    const { registry } = this.parts
    const entry = await this.whileLoading(upgrade.socket, () => registry.acquire(doc)).catch((e: unknown) => {
      if (!isChorusError(e, 'closed')) this.parts.logger.error('could not load a space', { space: doc, error: e })
      rejectUpgrade(upgrade.socket, 503, { error: 'unavailable', message: `space ${doc} could not be loaded` })
      return undefined
    })
    if (entry === undefined) return
    if (!this.stillWanted(upgrade.socket, () => registry.release(entry))) return
    if (!this.accept(upgrade, (ws) => this.parts.connections.sync(ws, entry, registry))) registry.release(entry)
  }

  private async events(upgrade: Upgrade, space: string, entity: string): Promise<void> {
    let hosted: HostedSpace
    try {
      hosted = await this.whileLoading(upgrade.socket, () => {
        checkSpaceAccess(upgrade.caller, space)
        return this.parts.hosted.use(space)
      })
    } catch (e) {
      const status = isChorusError(e, 'forbidden') ? 403 : isChorusError(e, 'invalid_input') ? 400 : 503
      rejectUpgrade(upgrade.socket, status, { error: isChorusError(e) ? e.code : 'unavailable', message: e instanceof Error ? e.message : 'unavailable' })
      return
    }
    if (!this.stillWanted(upgrade.socket, () => hosted.release())) return
    if (!this.accept(upgrade, (ws) => this.parts.connections.eventSocket(ws, hosted, entity, upgrade.caller))) hosted.release()
  }

  /** Runs `load` with `socket` counted as pending, so that a stop meanwhile drops it. */
  private async whileLoading<T>(socket: Duplex, load: () => Promise<T>): Promise<T> {
    this.pending.add(socket)
    try {
      return await load()
    } finally {
      this.pending.delete(socket)
    }
  }

  /** False (after `giveBack` and dropping the socket) when the relay began to stop or the client left meanwhile. */
  private stillWanted(socket: Duplex, giveBack: () => void): boolean {
    if (!this.parts.closed() && !socket.destroyed) return true
    giveBack()
    socket.destroy()
    return false
  }
}

/** Answer an upgrade request with a plain HTTP error and drop the socket. */
function rejectUpgrade(socket: Duplex, status: number, body: { error: string; message: string }): void {
  if (!socket.writable) {
    socket.destroy()
    return
  }
  const text = JSON.stringify(body)
  const reason = { 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 503: 'Service Unavailable' }[status] ?? 'Error'
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nconnection: close\r\ncontent-type: application/json; charset=utf-8\r\n` +
      `content-length: ${Buffer.byteLength(text)}\r\n\r\n${text}`,
  )
}
