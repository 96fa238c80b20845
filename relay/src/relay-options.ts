/** What a relay can be told when it is made (`new Relay(options)`), and the defaults of what is left out. */
import type { Clock, Store } from '@chorus/sync'
import type { Auth } from './auth.ts'
import type { Logger } from './logger.ts'
import type { RateLimit } from './rate-limit.ts'

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
