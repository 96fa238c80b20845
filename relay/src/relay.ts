/**
 * The relay server. `start()` opens the store, the space registry and the HTTP server (which upgrades
 * `/sync/<space>` to the y-websocket protocol); `stop()` undoes them in reverse order and leaves no handle open.
 *
 * Routes: `GET /health`, `GET /capabilities`, WebSocket upgrades on `/sync/<space>` (the space name URL-encoded as one path segment,
 * so `team#ai-only` is `/sync/team%23ai-only`). Everything else is a 404 with a JSON body.
 */
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import type { Duplex } from 'node:stream'
import { WebSocketServer, type WebSocket } from 'ws'
import { ChorusError, createGrantSigner, isChorusError, LeaseArbiter, systemClock, type Clock, type Store } from '@chorus/sync'
import { SqliteStore } from '@chorus/sync/sqlite'
import { DEFAULT_DATA_DIR, DEFAULT_HOST, DEFAULT_PORT, isLoopbackHost } from './config.ts'
import { silentLogger, type Logger } from './logger.ts'
import { loadOrCreateRelayKey } from './relay-key.ts'
import { checkSpaceName, SpaceRegistry, type SpaceEntry } from './spaces.ts'
import { CloseCode, SyncConnection, DEFAULT_MAX_BUFFERED_BYTES, DEFAULT_MAX_MALFORMED } from './sync-connection.ts'
import { SqliteTokenCounter, TOKEN_COUNTER_FILE } from './token-counter.ts'

/** Largest WebSocket frame (one y-protocols message) the relay accepts; bigger ones close the socket with 1009. */
export const DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024
export const DEFAULT_PING_INTERVAL_MS = 30_000
/** How long `stop()` waits for clients to complete the closing handshake before dropping them. */
export const DEFAULT_CLOSE_GRACE_MS = 1_000
export const STORE_FILE = 'chorus.sqlite'

const SYNC_PREFIX = '/sync/'

/** The relay package's version, as reported by `/capabilities`. */
export const RELAY_VERSION = readVersion()

function readVersion(): string {
  const pkg: unknown = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'))
  return typeof pkg === 'object' && pkg !== null && 'version' in pkg && typeof pkg.version === 'string' ? pkg.version : '0.0.0'
}

/** Transaction origin of the relay's own writes to a document (`meta.relayKey`). */
const RELAY_ORIGIN = Symbol('chorus-relay')

/** What `GET /capabilities` returns: enough for a client to pick a protocol and verify grants (L7). */
export interface RelayCapabilities {
  name: 'chorus-relay'
  version: string
  protocols: string[]
  /** The relay's Ed25519 public key (base64url), the one grants are signed with. */
  relayKey: string
  limits: { maxFrameBytes: number }
}

export interface RelayOptions {
  host?: string
  /** 0 picks a free port; `start()` returns the URL with the real one. */
  port?: number
  /**
   * Folder holding `chorus.sqlite` (unless `store` is given), the relay's key `relay-key.json` and the lease
   * token counters `leases.sqlite`.
   */
  dataDir?: string
  /** Use this store instead of opening one in `dataDir`; the relay does not close it. */
  store?: Store
  /** Required to listen on a non-loopback host: there is no authentication yet. */
  insecure?: boolean
  /** Unload a space this long after its last connection left (default 30 s). */
  idleMs?: number
  /** Largest accepted frame in bytes (default 16 MiB). */
  maxFrameBytes?: number
  /** Outgoing bytes queued for one connection before it is closed as too slow (default 64 MiB). */
  maxBufferedBytes?: number
  /** Malformed frames after which a connection is closed with 1003 (default 10). */
  maxMalformed?: number
  /** Ping every connection this often and drop those that did not answer the previous ping (default 30 s). */
  pingIntervalMs?: number
  closeGraceMs?: number
  logger?: Logger
  /** The lease arbiter's clock (default the system clock). */
  clock?: Clock
}

export interface RelayHealth {
  status: 'ok'
  /** Spaces loaded in memory. */
  spaces: number
  /** Open sync connections. */
  connections: number
}

interface Running {
  server: Server
  wss: WebSocketServer
  registry: SpaceRegistry
  store: Store
  ownsStore: boolean
  heartbeat: ReturnType<typeof setInterval>
  url: string
  tokens: SqliteTokenCounter
  arbiter: LeaseArbiter
}

const positiveInteger = (name: string, value: number): number => {
  if (!(Number.isSafeInteger(value) && value > 0)) {
    throw new ChorusError('invalid_input', `${name} must be a positive integer, got ${value}`)
  }
  return value
}

export class Relay {
  private readonly options: RelayOptions
  private readonly logger: Logger
  private readonly host: string
  private readonly port: number
  private readonly maxFrameBytes: number
  private readonly pingIntervalMs: number
  private readonly connections = new Set<SyncConnection>()
  /** Upgrade requests waiting for their space to load. */
  private readonly pending = new Set<Duplex>()
  private running: Running | undefined
  private starting: Promise<{ url: string }> | undefined
  private stopping: Promise<void> | undefined

  constructor(options: RelayOptions = {}) {
    this.options = options
    this.logger = options.logger ?? silentLogger
    this.host = options.host ?? DEFAULT_HOST
    this.port = options.port ?? DEFAULT_PORT
    if (!(Number.isInteger(this.port) && this.port >= 0 && this.port <= 65535)) {
      throw new ChorusError('invalid_input', `port must be an integer from 0 to 65535, got ${this.port}`)
    }
    if (!isLoopbackHost(this.host) && options.insecure !== true) {
      throw new ChorusError('forbidden', `refusing to listen on non-loopback host ${this.host} without insecure: true`)
    }
    this.maxFrameBytes = positiveInteger('maxFrameBytes', options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES)
    positiveInteger('maxBufferedBytes', options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES)
    positiveInteger('maxMalformed', options.maxMalformed ?? DEFAULT_MAX_MALFORMED)
    this.pingIntervalMs = positiveInteger('pingIntervalMs', options.pingIntervalMs ?? DEFAULT_PING_INTERVAL_MS)
  }

  /** `http://HOST:PORT` once started. */
  get url(): string | undefined {
    return this.running?.url
  }

  /**
   * The lease arbiter, signing with the relay's key and drawing tokens from the durable counter. Only in-process
   * for now: no network protocol reaches it yet. Throws `closed` when the relay is not running.
   */
  get arbiter(): LeaseArbiter {
    if (this.running === undefined) throw new ChorusError('closed', 'the relay is not running')
    return this.running.arbiter
  }

  /** The relay's Ed25519 public key (base64url) once started. */
  get publicKey(): string | undefined {
    return this.running?.arbiter.publicKey
  }

  private capabilities(publicKey: string): RelayCapabilities {
    return { name: 'chorus-relay', version: RELAY_VERSION, protocols: ['y-websocket'], relayKey: publicKey, limits: { maxFrameBytes: this.maxFrameBytes } }
  }

  health(): RelayHealth {
    return { status: 'ok', spaces: this.running?.registry.loadedCount ?? 0, connections: this.connections.size }
  }

  start(): Promise<{ url: string }> {
    if (this.stopping !== undefined) return Promise.reject(new ChorusError('closed', 'the relay was stopped'))
    this.starting ??= this.open()
    return this.starting
  }

  /** Close every connection, unload (flush) every space, close the store and the server. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= this.close()
    return this.stopping
  }

  private async open(): Promise<{ url: string }> {
    const dataDir = this.options.dataDir ?? DEFAULT_DATA_DIR
    // Key first: a corrupt key file fails the start before anything is opened.
    const key = loadOrCreateRelayKey(dataDir)
    const tokens = new SqliteTokenCounter(join(dataDir, TOKEN_COUNTER_FILE))
    const arbiter = new LeaseArbiter({ signer: createGrantSigner(key.secretKey), clock: this.options.clock ?? systemClock, tokens })
    const ownsStore = this.options.store === undefined
    let store: Store
    try {
      store = this.options.store ?? new SqliteStore(join(dataDir, STORE_FILE))
    } catch (e) {
      tokens.close()
      throw e
    }
    const registry = new SpaceRegistry({
      store,
      logger: this.logger,
      ...(this.options.idleMs === undefined ? {} : { idleMs: this.options.idleMs }),
      onLoad: (entry) => this.claimSpace(entry, key.publicKey),
    })
    const wss = new WebSocketServer({ noServer: true, maxPayload: this.maxFrameBytes, perMessageDeflate: false })
    const server = createServer(this.onRequest)
    server.on('upgrade', this.onUpgrade)
    try {
      server.listen(this.port, this.host)
      await once(server, 'listening')
    } catch (e) {
      await registry.close()
      if (ownsStore) await store.close()
      tokens.close()
      throw e
    }
    const { port } = server.address() as AddressInfo
    const host = this.host.includes(':') ? `[${this.host}]` : this.host
    const heartbeat = setInterval(() => {
      for (const connection of this.connections) connection.heartbeat()
    }, this.pingIntervalMs)
    heartbeat.unref()
    const url = `http://${host}:${port}`
    this.running = { server, wss, registry, store, ownsStore, heartbeat, url, tokens, arbiter }
    this.logger.info('listening', { url })
    return { url }
  }

  private async close(): Promise<void> {
    await this.starting?.catch(() => undefined)
    const running = this.running
    if (running === undefined) return
    const { server, wss, registry, store, ownsStore, heartbeat, tokens } = running
    clearInterval(heartbeat)
    const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()))
    server.closeAllConnections()
    for (const socket of this.pending) socket.destroy()
    this.pending.clear()
    await this.closeSockets([...wss.clients])
    await new Promise<void>((resolve) => wss.close(() => resolve()))
    await registry.close()
    if (ownsStore) await store.close()
    tokens.close()
    await serverClosed
    this.running = undefined
    this.logger.info('stopped')
  }

  /**
   * Writes the relay's key to a space's `meta.relayKey` so replicas can verify its grants (L7). A space that
   * already names another key keeps it: replacing it would void every grant recorded under the old key.
   */
  private claimSpace(entry: SpaceEntry, publicKey: string): void {
    // Restricted-channel documents (`team#ai-only`) hold only messages; grants are checked against the main one.
    if (entry.name.includes('#')) return
    const meta = entry.doc.getMap('meta')
    const known = meta.get('relayKey')
    if (known === undefined) {
      entry.doc.transact(() => meta.set('relayKey', publicKey), RELAY_ORIGIN)
    } else if (known !== publicKey) {
      this.logger.warn('space names another arbiter key in meta.relayKey; leaving it, so its grants will not verify', {
        space: entry.name,
        relayKey: known,
      })
    }
  }

  /** Closing handshake with every client, then drop whoever has not answered within the grace period. */
  private async closeSockets(sockets: WebSocket[]): Promise<void> {
    if (sockets.length === 0) return
    // Not events.once: it rejects on an 'error' event, and ws emits 'close' after one anyway.
    const closed = sockets.map((ws) =>
      ws.readyState === ws.CLOSED ? Promise.resolve() : new Promise<void>((resolve) => ws.once('close', () => resolve())),
    )
    for (const connection of [...this.connections]) connection.close(CloseCode.goingAway, 'relay shutting down')
    for (const ws of sockets) if (ws.readyState === ws.OPEN) ws.close(CloseCode.goingAway, 'relay shutting down')
    const grace = setTimeout(() => {
      for (const ws of sockets) ws.terminate()
    }, this.options.closeGraceMs ?? DEFAULT_CLOSE_GRACE_MS)
    try {
      await Promise.all(closed)
    } finally {
      clearTimeout(grace)
    }
  }

  private readonly onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    // No route reads a body yet: discard it rather than buffer it.
    req.resume()
    const path = pathOf(req)
    if (path === '/health') {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        sendJson(res, 405, { error: 'method_not_allowed', message: `${req.method} is not allowed on /health` }, { allow: 'GET, HEAD' })
        return
      }
      sendJson(res, 200, this.health())
      return
    }
    if (path === '/capabilities') {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        sendJson(res, 405, { error: 'method_not_allowed', message: `${req.method} is not allowed on /capabilities` }, { allow: 'GET, HEAD' })
        return
      }
      const publicKey = this.publicKey
      if (publicKey === undefined) {
        sendJson(res, 503, { error: 'unavailable', message: 'the relay is stopping' })
        return
      }
      sendJson(res, 200, this.capabilities(publicKey))
      return
    }
    if (path?.startsWith(SYNC_PREFIX) === true) {
      const space = spaceOf(path)
      if (space.error !== undefined) {
        sendJson(res, 400, { error: 'invalid_input', message: space.error })
        return
      }
      sendJson(res, 426, { error: 'upgrade_required', message: 'connect with a WebSocket (y-websocket protocol)' }, { upgrade: 'websocket' })
      return
    }
    sendJson(res, 404, { error: 'not_found', message: `no route for ${req.method ?? 'GET'} ${path ?? req.url ?? ''}` })
  }

  private readonly onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    void this.upgrade(req, socket, head)
  }

  private async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const running = this.running
    // Until ws takes the socket over, a reset by the client must not become an uncaught 'error'.
    const onError = (): void => void socket.destroy()
    socket.on('error', onError)
    if (running === undefined || this.stopping !== undefined) {
      rejectUpgrade(socket, 503, { error: 'unavailable', message: 'the relay is stopping' })
      return
    }
    const path = pathOf(req)
    if (path?.startsWith(SYNC_PREFIX) !== true) {
      rejectUpgrade(socket, 404, { error: 'not_found', message: `no WebSocket endpoint at ${path ?? req.url ?? ''}; use /sync/<space>` })
      return
    }
    const space = spaceOf(path)
    if (space.error !== undefined) {
      // Accept, then close with 4400: the stock client takes 4400-4499 as final and stops reconnecting.
      const reason = space.error
      socket.off('error', onError)
      running.wss.handleUpgrade(req, socket, head, (ws) => {
        ws.on('error', () => undefined)
        ws.close(CloseCode.badRequest, reason)
      })
      return
    }

    this.pending.add(socket)
    let entry: SpaceEntry
    try {
      entry = await running.registry.acquire(space.name)
    } catch (e) {
      this.pending.delete(socket)
      if (!isChorusError(e, 'closed')) this.logger.error('could not load a space', { space: space.name, error: e })
      rejectUpgrade(socket, 503, { error: 'unavailable', message: `space ${space.name} could not be loaded` })
      return
    }
    this.pending.delete(socket)
    if (this.stopping !== undefined || socket.destroyed) {
      running.registry.release(entry)
      socket.destroy()
      return
    }
    socket.off('error', onError)
    let attached = false
    // Synchronous here (no verifyClient): when it returns without calling back, ws refused the handshake.
    running.wss.handleUpgrade(req, socket, head, (ws) => {
      attached = true
      this.attach(ws, entry, running.registry)
    })
    if (!attached) running.registry.release(entry)
  }

  private attach(ws: WebSocket, entry: SpaceEntry, registry: SpaceRegistry): void {
    const connection = new SyncConnection(ws, entry, {
      logger: this.logger,
      ...(this.options.maxMalformed === undefined ? {} : { maxMalformed: this.options.maxMalformed }),
      ...(this.options.maxBufferedBytes === undefined ? {} : { maxBufferedBytes: this.options.maxBufferedBytes }),
      onClose: (c) => {
        this.connections.delete(c)
        registry.release(entry)
      },
    })
    if (!connection.closed) this.connections.add(connection)
  }
}

function pathOf(req: IncomingMessage): string | undefined {
  try {
    return new URL(req.url ?? '/', 'http://relay').pathname
  } catch {
    return undefined
  }
}

/** The space named by `/sync/<segment>`: one URL-encoded path segment. Query parameters are ignored. */
function spaceOf(path: string): { name: string; error?: undefined } | { name?: undefined; error: string } {
  let name: string
  try {
    name = decodeURIComponent(path.slice(SYNC_PREFIX.length))
  } catch {
    return { error: 'invalid space name: bad percent-encoding' }
  }
  const error = checkSpaceName(name)
  return error === null ? { name } : { error }
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body)
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    ...headers,
  })
  res.end(text)
}

/** Answer an upgrade request with a plain HTTP error and drop the socket. */
function rejectUpgrade(socket: Duplex, status: number, body: { error: string; message: string }): void {
  if (!socket.writable) {
    socket.destroy()
    return
  }
  const text = JSON.stringify(body)
  const reason = status === 404 ? 'Not Found' : status === 503 ? 'Service Unavailable' : 'Bad Request'
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nconnection: close\r\ncontent-type: application/json; charset=utf-8\r\n` +
      `content-length: ${Buffer.byteLength(text)}\r\n\r\n${text}`,
  )
}
