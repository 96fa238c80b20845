/**
 * The relay's command line: flags win over environment variables, which win over defaults. Every bad value is a
 * `ConfigError` (exit code 2) with a message that says what was wrong and what is accepted.
 */
import { isIPv4, isIPv6 } from 'node:net'
import { parseArgs } from 'node:util'

export const DEFAULT_HOST = '127.0.0.1'
export const DEFAULT_PORT = 8550
export const DEFAULT_DATA_DIR = '.data/relay'

export interface RelayConfig {
  host: string
  /** 0 lets the OS pick a free port; the relay prints the one it got. */
  port: number
  /** Folder of the relay's store (`chorus.sqlite` inside it); created when missing. */
  dataDir: string
  /** Allow a non-loopback host although the relay has no authentication yet. */
  insecure: boolean
}

export type ParsedCommand = { help: true } | { help: false; config: RelayConfig }

export const USAGE = `Usage: chorus-relay [options]

Options:
  --host <host>   interface to listen on (env CHORUS_HOST, default ${DEFAULT_HOST})
  --port <port>   TCP port, 0 for any free one (env CHORUS_PORT, default ${DEFAULT_PORT})
  --data <dir>    data folder (env CHORUS_DATA, default ${DEFAULT_DATA_DIR})
  --insecure      allow a non-loopback --host (there is no authentication yet)
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
  let values: { host?: string | undefined; port?: string | undefined; data?: string | undefined; insecure?: boolean | undefined; help?: boolean | undefined }
  try {
    values = parseArgs({
      args: [...argv],
      options: {
        host: { type: 'string' },
        port: { type: 'string' },
        data: { type: 'string' },
        insecure: { type: 'boolean' },
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
  if (!insecure && !isLoopbackHost(host)) {
    throw new ConfigError(
      `refusing to listen on non-loopback host "${host}": the relay has no authentication yet, so anyone who ` +
        'can reach it could read and write every space. Pass --insecure to do it anyway.',
    )
  }
  return { help: false, config: { host, port, dataDir, insecure } }
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
