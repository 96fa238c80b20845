/**
 * The relay server. `start()` opens the lease ledger, the store, the space registry, the routes and the HTTP
 * server (and the libp2p node); `stop()` undoes them in reverse order and leaves no handle open.
 *
 * What answers: the REST routes (rest/: the status routes, the hub's, the leases', the agent API and MCP, libp2p
 * memberships), on the default space and under `/spaces/<space>/...`, dispatched with the dashboard's files by
 * http-dispatch.ts; the WebSocket endpoints `/sync/<space>`, `/leases` and `/ws/<entity>` (upgrade.ts). Who may
 * do what is decided in access.ts.
 */
import { once } from 'node:events'
import { createServer, type Server } from 'node:http'
import { createServer as createTlsServer } from 'node:https'
import { isIP, type AddressInfo } from 'node:net'
import { WebSocketServer } from 'ws'
import { ChorusError, LeaseArbiter, MAX_LEASE_FRAME_BYTES, systemClock, type Clock } from '@chorus/sync'
import { SYNC_PROTOCOL } from '@chorus/p2p'
import { Access } from './access.ts'
import { Auth } from './auth.ts'
import { DEFAULT_DATA_DIR, DEFAULT_HOST, DEFAULT_PORT, isLoopbackHost } from './config.ts'
import { Connections } from './connections.ts'
import { DashboardFiles, DEFAULT_DASHBOARD_DIR } from './dashboard-files.ts'
import { createNodeGrantSigner } from './grant-signer.ts'
import { HostedSpaces } from './hosted-spaces.ts'
import { HttpDispatch } from './http-dispatch.ts'
import { LeaseService, RELAY_ORIGIN } from './lease-service.ts'
import { silentLogger, type Logger } from './logger.ts'
import { RelayMesh } from './mesh.ts'
import { DEFAULT_RATE_LIMIT, type RateLimit } from './rate-limit.ts'
import { loadOrCreateRelayKey } from './relay-key.ts'
import { addAgentRoutes } from './rest/agent-routes.ts'
import { addHubRoutes } from './rest/hub-routes.ts'
import { DEFAULT_MAX_BODY_BYTES, Router } from './rest/http.ts'
import { addLeaseRoutes } from './rest/lease-routes.ts'
import { addMeshRoutes } from './rest/mesh-routes.ts'
import { SpaceRoutes } from './rest/space-routes.ts'
import { addStatusRoutes, type RelayCapabilities, type RelayHealth } from './rest/status-routes.ts'
import type { SpaceEntry } from './space-entry.ts'
import { checkSpaceName, SpaceRegistry } from './spaces.ts'
import { defaultStorage, openStorage, type Storage } from './storage/storage.ts'
import { DEFAULT_MAX_BUFFERED_BYTES, DEFAULT_MAX_MALFORMED } from './sync-connection.ts'
import { Upgrades } from './upgrade.ts'
import {
  DEFAULT_CLOSE_GRACE_MS,
  DEFAULT_HOST_IDLE_MS,
  DEFAULT_MAX_FRAME_BYTES,
  DEFAULT_MEMBERSHIP_MS,
  DEFAULT_PING_INTERVAL_MS,
  DEFAULT_SPACE,
  type RelayOptions,
} from './relay-options.ts'
import { RELAY_VERSION } from './version.ts'

export type { RelayCapabilities, RelayHealth } from './rest/status-routes.ts'
export { DEFAULT_CLOSE_GRACE_MS, DEFAULT_MAX_FRAME_BYTES, DEFAULT_PING_INTERVAL_MS, type RelayOptions } from './relay-options.ts'


interface Running {
  server: Server
  wss: WebSocketServer
  registry: SpaceRegistry
  storage: Storage
  heartbeat: ReturnType<typeof setInterval>
  url: string
  leases: LeaseService
  hosted: HostedSpaces
  upgrades: Upgrades
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
  private readonly auth: Auth
  private readonly defaultSpace: string
  private readonly maxBodyBytes: number
  private readonly rateLimit: RateLimit
  private readonly clock: Clock
  private readonly connections: Connections
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
    this.connections = new Connections({
      logger: this.logger,
      rateLimit: this.rateLimit,
      clock: this.clock,
      maxMalformed: options.maxMalformed,
      maxBufferedBytes: options.maxBufferedBytes,
    })
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
      p2p: mesh === undefined ? undefined : { peerId: mesh.peer.peerId, multiaddrs: mesh.multiaddrs, protocols: [SYNC_PROTOCOL] },
    }
  }

  health(): RelayHealth {
    return { status: 'ok', spaces: this.running?.registry.loadedCount ?? 0, connections: this.connections.syncCount }
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
      idleMs: this.options.idleMs,
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
    const access = new Access(this.auth, registry)
    const router = new Router({ maxBodyBytes: this.maxBodyBytes, logger: this.logger })
    const routes = new SpaceRoutes(router, access, this.defaultSpace)
    addStatusRoutes(router, routes, { access, spaces: hosted, health: () => this.health(), capabilities: () => this.capabilities(key.publicKey, mesh) })
    addLeaseRoutes(routes, { leases })
    addHubRoutes(routes, hosted)
    addAgentRoutes(routes, hosted)
    addMeshRoutes(routes, {
      mesh: () => mesh,
      access,
      credentialMs: this.options.membershipMs === undefined ? DEFAULT_MEMBERSHIP_MS : this.options.membershipMs,
      now: () => this.clock.now(),
    })
    const wss = new WebSocketServer({ noServer: true, maxPayload: this.maxFrameBytes, perMessageDeflate: false })
    const http = new HttpDispatch({
      router,
      dashboard: this.dashboard,
      defaultSpace: this.defaultSpace,
      rateLimit: this.rateLimit,
      clock: this.clock,
      closed: () => this.running === undefined,
    })
    const upgrades = new Upgrades({
      wss,
      access,
      registry,
      hosted,
      leases,
      connections: this.connections,
      defaultSpace: this.defaultSpace,
      logger: this.logger,
      closed: () => this.running === undefined || this.stopping !== undefined,
    })
    const tls = this.options.tls
    const server: Server = tls === undefined ? createServer(http.handle) : createTlsServer({ cert: tls.cert, key: tls.key }, http.handle)
    server.on('upgrade', upgrades.handle)
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
          leaseSession: (wire, caller) => this.connections.leaseSession(wire, caller, leases),
        })
      }
    } catch (e) {
      server.close()
      await closeParts({ leases, hosted, registry, storage, mesh })
      throw e
    }
    const { port } = server.address() as AddressInfo
    const host = this.host.includes(':') ? `[${this.host}]` : this.host
    const heartbeat = setInterval(() => this.connections.heartbeat(), this.pingIntervalMs)
    heartbeat.unref()
    const url = `${tls === undefined ? 'http' : 'https'}://${host}:${port}`
    this.running = { server, wss, registry, storage, heartbeat, url, leases, hosted, upgrades, mesh }
    this.logger.info('listening', { url, p2p: mesh?.multiaddrs })
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
    running.upgrades.dropPending()
    await this.connections.close([...wss.clients], this.options.closeGraceMs ?? DEFAULT_CLOSE_GRACE_MS)
    await new Promise<void>((resolve) => wss.close(() => resolve()))
    await closeParts(running)
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
