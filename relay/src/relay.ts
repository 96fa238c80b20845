/**
 * The relay server. `start()` opens the lease ledger, the store, the space registry and the HTTP server; `stop()`
 * undoes them in reverse order and leaves no handle open.
 *
 * Routes: `GET /health`, `GET /capabilities`, `GET /whoami`, the coordination hub's REST API (rest/hub-routes.ts),
 * the lease routes (rest/lease-routes.ts), the agent API and MCP at `/agent/{operation}` and `/mcp`
 * (rest/agent-routes.ts), on the default space and under `/spaces/<space>/...`. WebSocket upgrades:
 * `/sync/<space>` (y-websocket; the space name URL-encoded as one path segment, so `team#ai-only` is
 * `/sync/team%23ai-only`), `/leases` (the lease protocol) and `/ws/<entity>` (JSON events). Any other GET is a
 * file of the built dashboard (`/` is its page); everything else is a 404 with a JSON body.
 */
import { once } from 'node:events'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createServer as createTlsServer } from 'node:https'
import { isIP, type AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import { WebSocketServer, type WebSocket } from 'ws'
import {
  ChorusError,
  isChorusError,
  LEASE_PATH,
  LeaseArbiter,
  MAX_LEASE_FRAME_BYTES,
  PARTICIPANT_KINDS,
  RESTRICTED_CHANNELS,
  ROOT,
  systemClock,
  type Clock,
  type ParticipantKind,
  type RestrictedChannel,
  type Store,
} from '@chorus/sync'
import { SYNC_PROTOCOL } from '@chorus/p2p'
import { Auth, checkSpaceAccess, type Caller } from './auth.ts'
import { DEFAULT_DATA_DIR, DEFAULT_HOST, DEFAULT_PORT, isLoopbackHost } from './config.ts'
import { DashboardFiles, DEFAULT_DASHBOARD_DIR } from './dashboard-files.ts'
import { EventSocket } from './event-socket.ts'
import { createNodeGrantSigner } from './grant-signer.ts'
import { HostedSpaces } from './hosted-spaces.ts'
import { attachWebSocket, LeaseConnection, type LeaseConnectionOptions } from './lease-connection.ts'
import { LeaseService, RELAY_ORIGIN } from './lease-service.ts'
import { silentLogger, type Logger } from './logger.ts'
import { DEFAULT_RATE_LIMIT, RateLimiter, type RateLimit } from './rate-limit.ts'
import { loadOrCreateRelayKey } from './relay-key.ts'
import { addAgentRoutes } from './rest/agent-routes.ts'
import { addHubRoutes } from './rest/hub-routes.ts'
import { DEFAULT_MAX_BODY_BYTES, Router, sendJson } from './rest/http.ts'
import { addLeaseRoutes } from './rest/lease-routes.ts'
import { addMeshRoutes } from './rest/mesh-routes.ts'
import { RelayMesh } from './mesh.ts'
import { checkSpaceName, SpaceRegistry, type SpaceEntry } from './spaces.ts'
import { defaultStorage, openStorage, type Storage } from './storage/storage.ts'
import { RELAY_VERSION } from './version.ts'
import { CloseCode, SyncConnection, DEFAULT_MAX_BUFFERED_BYTES, DEFAULT_MAX_MALFORMED } from './sync-connection.ts'

/** Largest WebSocket frame (one y-protocols message) the relay accepts; bigger ones close the socket with 1009. */
export const DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024
export const DEFAULT_PING_INTERVAL_MS = 30_000
/** How long `stop()` waits for clients to complete the closing handshake before dropping them. */
export const DEFAULT_CLOSE_GRACE_MS = 1_000
/** The space the coordination hub's routes act on when the path names none. */
export const DEFAULT_SPACE = 'default'
export const DEFAULT_MEMBERSHIP_MS = 30 * 24 * 60 * 60 * 1000
/** A hosted space (REST, `/ws`) stays loaded this long after its last use, so polling clients do not reload it. */
export const DEFAULT_HOST_IDLE_MS = 5 * 60_000

const SYNC_PREFIX = '/sync/'
const SPACES_PREFIX = '/spaces/'

/** What `GET /capabilities` returns: enough for a client to pick a protocol and verify grants (L7). */
export interface RelayCapabilities {
  name: 'chorus-relay'
  version: string
  protocols: string[]
  /** The relay's Ed25519 public key (base64url), the one grants are signed with. */
  relayKey: string
  /** Whether requests must carry a bearer token. */
  auth: 'none' | 'bearer'
  defaultSpace: string
  limits: { maxFrameBytes: number; maxBodyBytes: number; maxLeaseFrameBytes: number; rateLimit: RateLimit }
  /** The relay's libp2p node (absent when it runs none): bootstrap from these multiaddrs. */
  p2p?: { peerId: string; multiaddrs: string[]; protocols: string[] }
}

export interface RelayOptions {
  host?: string
  /** 0 picks a free port; `start()` returns the URL with the real one. */
  port?: number
  /** Folder holding the relay's key `relay-key.json`, and its storage unless `storage` names another place. */
  dataDir?: string
  /**
   * Where spaces and leases are kept (storage/storage.ts): `sqlite:PATH`, a folder holding `chorus.sqlite` and
   * `leases.sqlite`. Default `sqlite:` and the data folder.
   */
  storage?: string
  /** Use this store instead of the one `storage` names; the relay does not close it. */
  store?: Store
  /** Listen on a non-loopback host without `auth` (anyone who can reach it may read and write every space). */
  insecure?: boolean
  /** Bearer tokens; without them the relay is open (and refuses non-loopback hosts unless `insecure`). */
  auth?: Auth
  /** PEM certificate and key: serve HTTPS and WSS (`start()` then returns an `https://` URL). */
  tls?: { cert: string | Buffer; key: string | Buffer }
  /** The space the hub's REST routes use when the path names none (default `default`). */
  defaultSpace?: string
  /** Largest REST request body in bytes (default 1 MiB). */
  maxBodyBytes?: number
  /** Requests per second (and burst) allowed per connection, and per client address on REST. */
  rateLimit?: RateLimit
  /** Keep a space the REST API or a `/ws` stream used loaded this long after its last use (default 5 min). */
  hostIdleMs?: number
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
  /**
   * The libp2p node: its listen multiaddrs (default TCP on the HTTP port + 1 and WebSockets on + 2, on the same
   * host; any free ports when the HTTP port is 0), or false for none.
   */
  p2p?: false | { listen?: string[] }
  /** How long a libp2p membership the relay issues is valid (default 30 days; null: no expiry). */
  membershipMs?: number | null
  /** Folder of the built dashboard, served at `/` (default dashboard/dist of this repository), or false for none. */
  dashboard?: string | false
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
  storage: Storage
  heartbeat: ReturnType<typeof setInterval>
  url: string
  leases: LeaseService
  hosted: HostedSpaces
  router: Router
  mesh: RelayMesh | undefined
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
  private readonly leaseConnections = new Set<LeaseConnection>()
  private readonly eventSockets = new Set<EventSocket>()
  private readonly auth: Auth
  private readonly defaultSpace: string
  private readonly maxBodyBytes: number
  private readonly rateLimit: RateLimit
  private readonly clock: Clock
  /** REST rate limits per client address (a map that is pruned when it grows). */
  private readonly restLimiters = new Map<string, RateLimiter>()
  /** Upgrade requests waiting for their space to load. */
  private readonly pending = new Set<Duplex>()
  private readonly dashboard: DashboardFiles | undefined
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
    this.auth = options.auth ?? new Auth(undefined)
    if (!isLoopbackHost(this.host) && options.insecure !== true && !this.auth.required) {
      throw new ChorusError('forbidden', `refusing to listen on non-loopback host ${this.host} without auth tokens or insecure: true`)
    }
    this.defaultSpace = options.defaultSpace ?? DEFAULT_SPACE
    const invalidDefault = checkSpaceName(this.defaultSpace)
    if (invalidDefault !== null || this.defaultSpace.includes('#')) throw new ChorusError('invalid_input', `defaultSpace: ${invalidDefault ?? 'must not contain #'}`)
    this.maxBodyBytes = positiveInteger('maxBodyBytes', options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES)
    this.rateLimit = options.rateLimit ?? DEFAULT_RATE_LIMIT
    positiveInteger('rateLimit.burst', this.rateLimit.burst)
    if (!(this.rateLimit.ratePerSecond > 0)) throw new ChorusError('invalid_input', 'rateLimit.ratePerSecond must be positive')
    this.clock = options.clock ?? systemClock
    this.maxFrameBytes = positiveInteger('maxFrameBytes', options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES)
    positiveInteger('maxBufferedBytes', options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES)
    positiveInteger('maxMalformed', options.maxMalformed ?? DEFAULT_MAX_MALFORMED)
    this.pingIntervalMs = positiveInteger('pingIntervalMs', options.pingIntervalMs ?? DEFAULT_PING_INTERVAL_MS)
    this.dashboard = options.dashboard === false ? undefined : new DashboardFiles(options.dashboard ?? DEFAULT_DASHBOARD_DIR)
  }

  /** The folder of the dashboard it serves at `/`, if any. */
  get dashboardDir(): string | undefined {
    return this.dashboard?.dir
  }

  /** `http://HOST:PORT` once started. */
  get url(): string | undefined {
    return this.running?.url
  }

  /**
   * The relay's leases (arbiter, lease_lost delivery, the `leases` mirror), as the network protocols use them.
   * Throws `closed` when the relay is not running.
   */
  get leases(): LeaseService {
    if (this.running === undefined) throw new ChorusError('closed', 'the relay is not running')
    return this.running.leases
  }

  /** The relay's Ed25519 public key (base64url) once started. */
  get publicKey(): string | undefined {
    return this.running?.leases.publicKey
  }

  private capabilities(publicKey: string, mesh: RelayMesh | undefined): RelayCapabilities {
    return {
      name: 'chorus-relay',
      version: RELAY_VERSION,
      protocols: ['y-websocket', 'chorus-leases-v1', 'chorus-hub-rest-v1', 'chorus-events-v1'],
      relayKey: publicKey,
      auth: this.auth.required ? 'bearer' : 'none',
      defaultSpace: this.defaultSpace,
      limits: { maxFrameBytes: this.maxFrameBytes, maxBodyBytes: this.maxBodyBytes, maxLeaseFrameBytes: MAX_LEASE_FRAME_BYTES, rateLimit: { ...this.rateLimit } },
      ...(mesh === undefined ? {} : { p2p: { peerId: mesh.peer.peerId, multiaddrs: mesh.multiaddrs, protocols: [SYNC_PROTOCOL] } }),
    }
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
    const storage = await openStorage(this.options.storage ?? defaultStorage(dataDir), { clock: this.clock, store: this.options.store })
    const { store } = storage
    let arbiter: LeaseArbiter
    try {
      arbiter = new LeaseArbiter({ signer: createNodeGrantSigner(key.secretKey), ledger: storage.ledger })
    } catch (e) {
      await storage.close()
      throw e
    }
    // The registry is declared below; the service only asks it once requests arrive.
    const leases: LeaseService = new LeaseService({
      arbiter,
      clock: this.clock,
      loadedDoc: (name) => registry.loaded(name)?.doc,
      logger: this.logger,
    })
    let mesh: RelayMesh | undefined
    const registry = new SpaceRegistry({
      store,
      logger: this.logger,
      ...(this.options.idleMs === undefined ? {} : { idleMs: this.options.idleMs }),
      onLoad: (entry) => {
        mesh?.know(entry.name)
        this.claimSpace(entry, key.publicKey)
        if (!entry.name.includes('#')) void leases.reconcile(entry.name, entry.doc)
      },
    })
    const hosted = new HostedSpaces({
      registry,
      clock: this.clock,
      leases: leases.client(),
      idleMs: this.options.hostIdleMs ?? DEFAULT_HOST_IDLE_MS,
      logger: this.logger,
    })
    const router = new Router({ maxBodyBytes: this.maxBodyBytes, logger: this.logger })
    addLeaseRoutes(router, { leases, caller: (req) => this.auth.caller(req), defaultSpace: this.defaultSpace })
    router.get('/health', () => this.health()).get('/capabilities', () => this.capabilities(key.publicKey, mesh))
    // Who a token stands for, so a page given only a token can join as that participant.
    router.get('/whoami', ({ req }) => {
      const caller = this.auth.caller(req)
      return caller.open ? { open: true } : { open: false, ...caller.identity }
    })
    addHubRoutes(router, { spaces: hosted, caller: (req) => this.auth.caller(req), defaultSpace: this.defaultSpace })
    addAgentRoutes(router, { spaces: hosted, caller: (req) => this.auth.caller(req), defaultSpace: this.defaultSpace })
    addMeshRoutes(router, {
      mesh: () => mesh,
      caller: (req) => this.auth.caller(req),
      defaultSpace: this.defaultSpace,
      registeredKind: (space, participant) => this.registeredKind(registry, space, participant),
      credentialMs: this.options.membershipMs === undefined ? DEFAULT_MEMBERSHIP_MS : this.options.membershipMs,
      now: () => this.clock.now(),
    })
    const wss = new WebSocketServer({ noServer: true, maxPayload: this.maxFrameBytes, perMessageDeflate: false })
    const tls = this.options.tls
    const server: Server = tls === undefined ? createServer(this.onRequest) : createTlsServer({ cert: tls.cert, key: tls.key }, this.onRequest)
    server.on('upgrade', this.onUpgrade)
    try {
      server.listen(this.port, this.host)
      await once(server, 'listening')
      const p2p = this.options.p2p
      if (p2p !== false) {
        const { port } = server.address() as AddressInfo
        const listen = p2p?.listen ?? defaultP2pListen(this.host, this.port === 0 ? 0 : port)
        mesh = await RelayMesh.start({
          secretKey: key.secretKey,
          listen,
          registry,
          store,
          logger: this.logger,
          now: () => this.clock.now(),
          leaseSession: (wire, caller) => {
            const connection = new LeaseConnection(wire, this.leaseOptions(caller, leases))
            this.leaseConnections.add(connection)
            return connection
          },
        })
      }
    } catch (e) {
      server.close()
      await closeParts({ leases, hosted, registry, storage, mesh })
      throw e
    }
    const { port } = server.address() as AddressInfo
    const host = this.host.includes(':') ? `[${this.host}]` : this.host
    const heartbeat = setInterval(() => {
      for (const connection of this.allConnections()) connection.heartbeat()
    }, this.pingIntervalMs)
    heartbeat.unref()
    const url = `${tls === undefined ? 'http' : 'https'}://${host}:${port}`
    this.running = { server, wss, registry, storage, heartbeat, url, leases, hosted, router, mesh }
    this.logger.info('listening', { url, ...(mesh === undefined ? {} : { p2p: mesh.multiaddrs }) })
    return { url }
  }

  private async close(): Promise<void> {
    await this.starting?.catch(() => undefined)
    const running = this.running
    if (running === undefined) return
    const { server, wss, heartbeat } = running
    clearInterval(heartbeat)
    const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()))
    server.closeAllConnections()
    for (const socket of this.pending) socket.destroy()
    this.pending.clear()
    await this.closeSockets([...wss.clients])
    await new Promise<void>((resolve) => wss.close(() => resolve()))
    await closeParts(running)
    await serverClosed
    this.running = undefined
    this.logger.info('stopped')
  }

  /** Every open connection of the three endpoints, as a copy (closing one removes it from its set). */
  private allConnections(): Array<{ heartbeat(): void; close(code: number, reason: string): void }> {
    return [...this.connections, ...this.leaseConnections, ...this.eventSockets]
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
    for (const connection of this.allConnections()) connection.close(CloseCode.goingAway, 'relay shutting down')
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
    const running = this.running
    const path = pathOf(req)
    if (path === undefined || running === undefined) {
      req.resume()
      sendJson(res, path === undefined ? 400 : 503, path === undefined ? { error: 'invalid_input', message: 'bad request URL' } : { error: 'unavailable', message: 'the relay is stopping' })
      return
    }
    if (path.startsWith(SYNC_PREFIX) || path === LEASE_PATH || isEventPath(path)) {
      req.resume()
      const space = path.startsWith(SYNC_PREFIX) ? spaceOf(path) : undefined
      if (space?.error !== undefined) {
        sendJson(res, 400, { error: 'invalid_input', message: space.error })
        return
      }
      sendJson(res, 426, { error: 'upgrade_required', message: `connect to ${path} with a WebSocket` }, { upgrade: 'websocket' })
      return
    }
    const route = running.router.match(req.method ?? 'GET', path)
    if (route === undefined) {
      req.resume()
      if ((req.method === 'GET' || req.method === 'HEAD') && this.dashboard !== undefined) {
        void this.serveDashboard(this.dashboard, req, res, path)
        return
      }
      sendJson(res, 404, { error: 'not_found', message: `no route for ${req.method ?? 'GET'} ${path}` })
      return
    }
    if ('allow' in route) {
      req.resume()
      sendJson(res, 405, { error: 'method_not_allowed', message: `${req.method ?? ''} is not allowed on ${path}` }, { allow: route.allow.join(', ') })
      return
    }
    // Health and capabilities stay reachable for monitors whatever the load.
    if (path !== '/health' && path !== '/capabilities' && !this.restLimiter(req).take()) {
      req.resume()
      sendJson(res, 429, { error: 'rate_limited', message: 'too many requests from this address; slow down' }, { 'retry-after': '1' })
      return
    }
    void running.router.run(route.handler, route.params, req, res, new URL(req.url ?? '/', 'http://relay'))
  }

  private async serveDashboard(files: DashboardFiles, req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    if (!this.restLimiter(req).take()) {
      sendJson(res, 429, { error: 'rate_limited', message: 'too many requests from this address; slow down' }, { 'retry-after': '1' })
      return
    }
    if (await files.serve(req, res, path)) return
    const message = path === '/' ? `the dashboard is not built in ${files.dir}: run npm run build` : `no route for ${req.method ?? 'GET'} ${path}`
    sendJson(res, 404, { error: 'not_found', message })
  }

  private restLimiter(req: IncomingMessage): RateLimiter {
    const address = req.socket.remoteAddress ?? 'unknown'
    let limiter = this.restLimiters.get(address)
    if (limiter === undefined) {
      // Full buckets are the same as new ones: forgetting them all now and then bounds the map.
      if (this.restLimiters.size > 10_000) this.restLimiters.clear()
      limiter = new RateLimiter(this.rateLimit, this.clock)
      this.restLimiters.set(address, limiter)
    }
    return limiter
  }

  private readonly onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    // Whatever goes wrong with one upgrade must cost that socket only, never the process.
    this.upgrade(req, socket, head).catch((error: unknown) => {
      this.logger.error('a WebSocket upgrade failed', { path: req.url, error })
      socket.destroy()
    })
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
    let caller: Caller
    try {
      caller = this.auth.caller(req)
    } catch (e) {
      rejectUpgrade(socket, 401, { error: 'unauthorized', message: e instanceof Error ? e.message : 'unauthorized' })
      return
    }
    const accept = (attach: (ws: WebSocket) => void): void => {
      socket.off('error', onError)
      running.wss.handleUpgrade(req, socket, head, attach)
    }
    /** Accept, then close with a 44xx code: the stock client takes 4400-4499 as final and stops reconnecting. */
    const refuse = (code: number, reason: string): void =>
      accept((ws) => {
        ws.on('error', () => undefined)
        ws.close(code, reason)
      })

    if (path === LEASE_PATH) {
      accept((ws) => this.attachLeases(ws, caller, running))
      return
    }
    const event = path === undefined ? undefined : eventTarget(path, this.defaultSpace)
    if (event !== undefined) {
      if (event.error !== undefined) return refuse(CloseCode.badRequest, event.error)
      await this.attachEvents(req, socket, head, onError, caller, event, running)
      return
    }
    if (path?.startsWith(SYNC_PREFIX) !== true) {
      rejectUpgrade(socket, 404, { error: 'not_found', message: `no WebSocket endpoint at ${path ?? req.url ?? ''}; use /sync/<space>, ${LEASE_PATH} or /ws/<entity>` })
      return
    }
    const space = spaceOf(path)
    if (space.error !== undefined) return refuse(CloseCode.badRequest, space.error)
    try {
      checkSpaceAccess(caller, space.name)
      await this.checkRestrictedAccess(caller, space.name, req, running)
    } catch (e) {
      // Unknown participant: maybe its join has not reached the relay yet, so the client may retry (1008).
      if (isChorusError(e, 'not_found')) return refuse(CloseCode.policyViolation, e.message)
      return refuse(CloseCode.forbidden, e instanceof Error ? e.message : 'forbidden')
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
    let attached = false
    // Synchronous here (no verifyClient): when it returns without calling back, ws refused the handshake.
    accept((ws) => {
      attached = true
      this.attach(ws, entry, running.registry)
    })
    if (!attached) running.registry.release(entry)
  }

  /**
   * A restricted-channel document (`team#ai-only`) goes only to participants of its kind (DESIGN.md). With tokens
   * the kind is the token's; in open mode the client names itself with `?participant=<id>` and the kind is the
   * one that participant registered with in the space.
   */
  private async checkRestrictedAccess(caller: Caller, name: string, req: IncomingMessage, running: Running): Promise<void> {
    const channel = name.split('#')[1] as RestrictedChannel | undefined
    if (channel === undefined) return
    const kind = RESTRICTED_CHANNELS[channel] as string | undefined
    if (kind === undefined) throw new ChorusError('forbidden', `unknown restricted channel document ${name}`)
    if (!caller.open) {
      if (caller.identity.kind !== kind) throw new ChorusError('forbidden', `${channel} is for ${kind} participants; this token is ${caller.identity.kind}`)
      return
    }
    const participant = new URL(req.url ?? '/', 'http://relay').searchParams.get('participant')
    if (participant === null) throw new ChorusError('forbidden', `${channel} is for ${kind} participants; name yourself with ?participant=<id>`)
    const space = name.split('#')[0] as string
    const registered = await this.registeredKind(running.registry, space, participant)
    if (registered === undefined) throw new ChorusError('not_found', `${participant} has not joined ${space}; join, then connect to ${channel}`)
    if (registered !== kind) throw new ChorusError('forbidden', `${channel} is for ${kind} participants; ${participant} is ${registered}`)
  }

  /** The kind `participant` joined `space` with, or undefined if it has not joined. */
  private async registeredKind(registry: SpaceRegistry, space: string, participant: string): Promise<ParticipantKind | undefined> {
    const main = await registry.acquire(space)
    try {
      const record = main.doc.getMap<{ get(k: string): unknown }>(ROOT.participants).get(participant)
      const kind = record?.get('kind')
      return typeof kind === 'string' && (PARTICIPANT_KINDS as readonly string[]).includes(kind) ? (kind as ParticipantKind) : undefined
    } finally {
      registry.release(main)
    }
  }

  private attachLeases(ws: WebSocket, caller: Caller, running: Running): void {
    const connection = attachWebSocket(ws, this.leaseOptions(caller, running.leases))
    if (!connection.closed) this.leaseConnections.add(connection)
  }

  /** What every lease session of `caller` shares: the service, limits, and its place in the relay's set. */
  private leaseOptions(caller: Caller, leases: LeaseService): LeaseConnectionOptions {
    return {
      caller,
      leases,
      logger: this.logger,
      maxMalformed: this.options.maxMalformed ?? DEFAULT_MAX_MALFORMED,
      limiter: new RateLimiter(this.rateLimit, this.clock),
      maxFrameBytes: MAX_LEASE_FRAME_BYTES,
      onClose: (c) => this.leaseConnections.delete(c),
    }
  }


  private async attachEvents(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    onError: () => void,
    caller: Caller,
    target: { space: string; entity: string },
    running: Running,
  ): Promise<void> {
    this.pending.add(socket)
    let hosted: Awaited<ReturnType<HostedSpaces['use']>>
    try {
      checkSpaceAccess(caller, target.space)
      hosted = await running.hosted.use(target.space)
    } catch (e) {
      this.pending.delete(socket)
      const status = isChorusError(e, 'forbidden') ? 403 : isChorusError(e, 'invalid_input') ? 400 : 503
      rejectUpgrade(socket, status, { error: isChorusError(e) ? e.code : 'unavailable', message: e instanceof Error ? e.message : 'unavailable' })
      return
    }
    this.pending.delete(socket)
    if (this.stopping !== undefined || socket.destroyed) {
      hosted.release()
      socket.destroy()
      return
    }
    socket.off('error', onError)
    let attached = false
    running.wss.handleUpgrade(req, socket, head, (ws) => {
      attached = true
      const events = new EventSocket(ws, {
        hosted,
        entity: target.entity,
        caller,
        logger: this.logger,
        limiter: new RateLimiter(this.rateLimit, this.clock),
        onClose: (s) => this.eventSockets.delete(s),
      })
      if (!events.closed) this.eventSockets.add(events)
    })
    if (!attached) hosted.release()
  }

  private attach(ws: WebSocket, entry: SpaceEntry, registry: SpaceRegistry): void {
    const connection = new SyncConnection(ws, entry, {
      logger: this.logger,
      limiter: new RateLimiter(this.rateLimit, this.clock),
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

/** Stops what `open()` started after the HTTP server, in reverse order: nothing is written after its store closes. */
async function closeParts(parts: Pick<Running, 'leases' | 'hosted' | 'registry' | 'storage' | 'mesh'>): Promise<void> {
  parts.leases.close()
  await parts.mesh?.stop()
  await parts.hosted.close()
  await parts.registry.close()
  await parts.storage.close()
}

/** TCP on `port` + 1 and WebSockets on `port` + 2 (any free ports for 0), on the HTTP host if it is an IP. */
function defaultP2pListen(host: string, port: number): string[] {
  const ip = host === 'localhost' ? '127.0.0.1' : host
  const family = isIP(ip)
  const base = family === 6 ? `/ip6/${ip}` : family === 4 ? `/ip4/${ip}` : '/ip4/0.0.0.0'
  return [`${base}/tcp/${port === 0 ? 0 : port + 1}`, `${base}/tcp/${port === 0 ? 0 : port + 2}/ws`]
}

/** `/ws/<entity>` (default space) or `/spaces/<space>/ws/<entity>`. */
function isEventPath(path: string): boolean {
  return path.startsWith('/ws/') || (path.startsWith(SPACES_PREFIX) && path.split('/')[3] === 'ws')
}

function eventTarget(path: string, defaultSpace: string): { space: string; entity: string; error?: undefined } | { error: string } | undefined {
  const parts = path.split('/').slice(1)
  let space: string
  let entity: string | undefined
  if (parts[0] === 'ws' && parts.length === 2) {
    space = defaultSpace
    entity = parts[1]
  } else if (parts[0] === 'spaces' && parts[2] === 'ws' && parts.length === 4) {
    try {
      space = decodeURIComponent(parts[1] as string)
    } catch {
      return { error: 'invalid space name: bad percent-encoding' }
    }
    entity = parts[3]
  } else return undefined
  const invalid = checkSpaceName(space)
  if (invalid !== null || space.includes('#')) return { error: invalid ?? 'events are streamed per space, not per restricted document' }
  try {
    entity = decodeURIComponent(entity ?? '')
  } catch {
    return { error: 'invalid entity id: bad percent-encoding' }
  }
  if (entity === '') return { error: 'name the entity: /ws/<entity_id>' }
  return { space, entity }
}
