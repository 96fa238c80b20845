/**
 * The relay's command line: flags win over environment variables, which win over defaults. Every bad value is a
 * `ConfigError` (exit code 2) with a message that says what was wrong and what is accepted.
 */
import { isIPv4, isIPv6 } from 'node:net'
import { parseArgs } from 'node:util'
import { parseStorageSpec, STORAGE_FORMS } from './storage/storage.ts'

export const DEFAULT_HOST = '127.0.0.1'
export const DEFAULT_PORT = 8550
export const DEFAULT_DATA_DIR = '.data/relay'

export interface RelayConfig {
  host: string
  /** 0 lets the OS pick a free port; the relay prints the one it got. */
  port: number
  /** Folder of the relay's key, and of its store unless `storage` names another; created when missing. */
  dataDir: string
  /** Where spaces and leases are kept (`sqlite:PATH`); absent: SQLite in `dataDir`. */
  storage?: string
  /** Allow a non-loopback host without bearer tokens. */
  insecure: boolean
  /** JSON file of bearer tokens (`{"tokens": [...]}`); without it the relay is open. */
  tokensFile?: string
  /** PEM certificate and key files: serve HTTPS and WSS directly. */
  tls?: { certFile: string; keyFile: string }
  /** The space the hub's REST routes use when the path names none. */
  defaultSpace?: string
  /** Requests per second per connection (and per address on REST); bursts of twice that. */
  rateLimit?: number
  /** The libp2p node's listen multiaddrs, or false for no node; absent: the relay's default (HTTP port + 1, + 2). */
  p2p?: false | string[]
  /** Folder of the built dashboard, or false to serve none; absent: the repository's dashboard/dist. */
  dashboard?: false | string
}

export type ParsedCommand = { help: true } | { help: false; config: RelayConfig }

export const USAGE = `Usage: chorus-relay [options]

Options:
  --host <host>   interface to listen on (env CHORUS_HOST, default ${DEFAULT_HOST})
  --port <port>   TCP port, 0 for any free one (env CHORUS_PORT, default ${DEFAULT_PORT})
  --data <dir>    data folder (env CHORUS_DATA, default ${DEFAULT_DATA_DIR})
  --store <spec>  where spaces and leases are kept: ${STORAGE_FORMS} holding chorus.sqlite and
                  leases.sqlite (env CHORUS_STORE, default sqlite:<the --data folder>)
  --tokens <file> bearer tokens, JSON {"tokens": [{"token", "participant", "kind", "spaces?"}]}
                  (env CHORUS_TOKENS); required on a non-loopback --host unless --insecure
  --tls-cert <file>, --tls-key <file>
                  serve HTTPS/WSS with this PEM certificate and key (env CHORUS_TLS_CERT, CHORUS_TLS_KEY)
  --default-space <name>
                  space of the hub's REST routes without /spaces/<name> (env CHORUS_DEFAULT_SPACE, default "default")
  --rate-limit <n>
                  requests per second per connection and per client address, bursts of 2n
                  (env CHORUS_RATE_LIMIT, default 200)
  --p2p-listen <multiaddr,...>
                  listen addresses of the relay's libp2p node (env CHORUS_P2P_LISTEN, default TCP on
                  port + 1 and WebSockets on port + 2, any free ports when --port is 0)
  --no-p2p        run no libp2p node
  --dashboard <dir>
                  folder of the built dashboard served at / (env CHORUS_DASHBOARD, default dashboard/dist
                  of this repository, built by npm start)
  --no-dashboard  serve no dashboard
  --insecure      allow a non-loopback --host without tokens
  -h, --help      show this help
`

export class ConfigError extends Error {
  readonly exitCode = 2

  constructor(message: string) {
    super(message)
    this.name = 'ConfigError'
  }
}

export function parseConfig(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): ParsedCommand {
  let values: {
    host?: string | undefined
    port?: string | undefined
    data?: string | undefined
    store?: string | undefined
    tokens?: string | undefined
    'tls-cert'?: string | undefined
    'tls-key'?: string | undefined
    'default-space'?: string | undefined
    'rate-limit'?: string | undefined
    insecure?: boolean | undefined
    'p2p-listen'?: string | undefined
    'no-p2p'?: boolean | undefined
    dashboard?: string | undefined
    'no-dashboard'?: boolean | undefined
    help?: boolean | undefined
  }
  try {
    values = parseArgs({
      args: [...argv],
      options: {
        host: { type: 'string' },
        port: { type: 'string' },
        data: { type: 'string' },
        store: { type: 'string' },
        tokens: { type: 'string' },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        'default-space': { type: 'string' },
        'rate-limit': { type: 'string' },
        insecure: { type: 'boolean' },
        'p2p-listen': { type: 'string' },
        'no-p2p': { type: 'boolean' },
        dashboard: { type: 'string' },
        'no-dashboard': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }).values
  } catch (e) {
    throw new ConfigError(e instanceof Error ? e.message : String(e))
  }
  if (values.help === true) return { help: true }

  const fromEnv = (name: string): string | undefined => {
    const value = env[name]
    // An empty variable (`CHORUS_PORT= cmd`) means "not set", as in most shells' idioms.
    return value === undefined || value === '' ? undefined : value
  }
  const host = parseHost(values.host ?? fromEnv('CHORUS_HOST') ?? DEFAULT_HOST)
  const port = parsePort(values.port ?? fromEnv('CHORUS_PORT') ?? String(DEFAULT_PORT))
  const dataDir = values.data ?? fromEnv('CHORUS_DATA') ?? DEFAULT_DATA_DIR
  if (dataDir.trim() === '') throw new ConfigError('--data must name a folder')
  const insecure = values.insecure === true
  const tokensFile = values.tokens ?? fromEnv('CHORUS_TOKENS')
  if (!insecure && tokensFile === undefined && !isLoopbackHost(host)) {
    throw new ConfigError(
      `refusing to listen on non-loopback host "${host}" without authentication: anyone who can reach it could ` +
        'read and write every space. Give --tokens <file> (see docs/DEPLOY.md), or pass --insecure to do it anyway.',
    )
  }
  const certFile = values['tls-cert'] ?? fromEnv('CHORUS_TLS_CERT')
  const keyFile = values['tls-key'] ?? fromEnv('CHORUS_TLS_KEY')
  if ((certFile === undefined) !== (keyFile === undefined)) throw new ConfigError('--tls-cert and --tls-key go together: give both or neither')
  const defaultSpace = values['default-space'] ?? fromEnv('CHORUS_DEFAULT_SPACE')
  const config: RelayConfig = { host, port, dataDir, insecure }
  const storage = values.store ?? fromEnv('CHORUS_STORE')
  if (storage !== undefined) {
    try {
      parseStorageSpec(storage)
    } catch (e) {
      throw new ConfigError(`invalid --store: ${e instanceof Error ? e.message : String(e)}`)
    }
    config.storage = storage
  }
  if (tokensFile !== undefined) config.tokensFile = tokensFile
  if (certFile !== undefined && keyFile !== undefined) config.tls = { certFile, keyFile }
  if (defaultSpace !== undefined) config.defaultSpace = defaultSpace
  const p2pListen = values['p2p-listen'] ?? fromEnv('CHORUS_P2P_LISTEN')
  if (values['no-p2p'] === true) {
    if (p2pListen !== undefined && values['p2p-listen'] !== undefined) throw new ConfigError('--no-p2p and --p2p-listen contradict each other: give one')
    config.p2p = false
  } else if (p2pListen !== undefined) {
    const addresses = p2pListen.split(',').map((a) => a.trim()).filter((a) => a !== '')
    const bad = addresses.find((a) => !a.startsWith('/'))
    if (addresses.length === 0 || bad !== undefined) throw new ConfigError(`invalid --p2p-listen "${p2pListen}": expected multiaddrs such as /ip4/127.0.0.1/tcp/8551, comma-separated`)
    config.p2p = addresses
  }
  const dashboard = values.dashboard ?? fromEnv('CHORUS_DASHBOARD')
  if (values['no-dashboard'] === true) {
    if (values.dashboard !== undefined) throw new ConfigError('--no-dashboard and --dashboard contradict each other: give one')
    config.dashboard = false
  } else if (dashboard !== undefined) {
    if (dashboard.trim() === '') throw new ConfigError('--dashboard must name a folder')
    config.dashboard = dashboard
  }
  const rate = values['rate-limit'] ?? fromEnv('CHORUS_RATE_LIMIT')
  if (rate !== undefined) {
    const n = /^\d{1,9}$/.test(rate) ? Number(rate) : NaN
    if (!(n >= 1)) throw new ConfigError(`invalid --rate-limit "${rate}": expected a whole number of requests per second, at least 1`)
    config.rateLimit = n
  }
  return { help: false, config }
}

export function parsePort(text: string): number {
  const port = /^\d{1,5}$/.test(text) ? Number(text) : NaN
  if (!(port >= 0 && port <= 65535)) {
    throw new ConfigError(`invalid port "${text}": expected an integer from 0 to 65535 (0 picks a free port)`)
  }
  return port
}

function parseHost(text: string): string {
  // `[::1]` is how an IPv6 address appears in URLs; listen() wants it bare.
  const host = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text
  if (host === '' || /[\s/?#@]/.test(host)) throw new ConfigError(`invalid host "${text}": expected a host name or IP address`)
  return host
}

/** True for names and addresses that only this machine can reach. */
export function isLoopbackHost(host: string): boolean {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host
  if (bare.toLowerCase() === 'localhost') return true
  if (isIPv4(bare)) return bare.startsWith('127.')
  if (isIPv6(bare)) {
    const lower = bare.toLowerCase()
    if (lower === '::1' || lower === '0:0:0:0:0:0:0:1') return true
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(lower)?.[1]
    return mapped !== undefined && mapped.startsWith('127.')
  }
  return false
}
