#!/usr/bin/env node
/**
 * The relay's command line: `node relay/src/main.ts [--host H] [--port P] [--data DIR] [--insecure]`.
 * Once it listens it prints exactly one line to stdout, `chorus relay listening on http://HOST:PORT`; logs go to
 * stderr. SIGINT or SIGTERM stops it gracefully (exit 0); a second signal exits at once (exit 1).
 * Exit codes: 0 stopped, 1 could not start or stop, 2 bad configuration.
 */
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Auth } from './auth.ts'
import { ConfigError, isLoopbackHost, parseConfig, USAGE } from './config.ts'
import { stderrLogger } from './logger.ts'
import { Relay } from './relay.ts'

/** After a clean stop the event loop should drain by itself; if something still holds it, say so and exit. */
const DRAIN_TIMEOUT_MS = 5_000

let parsed: ReturnType<typeof parseConfig>
try {
  parsed = parseConfig(process.argv.slice(2), process.env)
} catch (e) {
  if (!(e instanceof ConfigError)) throw e
  process.stderr.write(`chorus relay: ${e.message}\n\n${USAGE}`)
  process.exit(e.exitCode)
}

if (parsed.help) {
  process.stdout.write(USAGE)
} else {
  const { config } = parsed
  if (!isLoopbackHost(config.host) && config.tokensFile === undefined) {
    stderrLogger.warn(`listening on ${config.host} without authentication: anyone who can reach it can read and write every space`)
  }
  let relay: Relay
  try {
    relay = new Relay({
      host: config.host,
      port: config.port,
      dataDir: config.dataDir,
      storage: config.storage,
      insecure: config.insecure,
      p2p: config.p2p === undefined || config.p2p === false ? config.p2p : { listen: config.p2p },
      logger: stderrLogger,
      auth: config.tokensFile === undefined ? undefined : Auth.fromFile(config.tokensFile),
      tls: config.tls === undefined ? undefined : { cert: readFileSync(config.tls.certFile), key: readFileSync(config.tls.keyFile) },
      defaultSpace: config.defaultSpace,
      rateLimit: config.rateLimit === undefined ? undefined : { ratePerSecond: config.rateLimit, burst: 2 * config.rateLimit },
      dashboard: config.dashboard,
    })
  } catch (e) {
    process.stderr.write(`chorus relay: ${e instanceof Error ? e.message : String(e)}\n`)
    process.exit(2)
  }

  let stopping = false
  const shutdown = (signal: NodeJS.Signals): void => {
    if (stopping) {
      stderrLogger.warn(`${signal} again: exiting without finishing the stop`)
      process.exit(1)
    }
    stopping = true
    stderrLogger.info(`${signal}: stopping`)
    relay.stop().then(
      () => {
        process.off('SIGINT', shutdown)
        process.off('SIGTERM', shutdown)
        process.exitCode = 0
        setTimeout(() => {
          stderrLogger.warn('stopped, but something still keeps the process alive; exiting')
          process.exit(0)
        }, DRAIN_TIMEOUT_MS).unref()
      },
      (e: unknown) => {
        stderrLogger.error('could not stop cleanly', { error: e })
        process.exit(1)
      },
    )
  }
  process.on('SIGINT', shutdown)
  process.on('SIGTERM', shutdown)

  try {
    const { url } = await relay.start()
    process.stdout.write(`chorus relay listening on ${url}\n`)
    const dir = relay.dashboardDir
    if (dir !== undefined) {
      if (existsSync(join(dir, 'index.html'))) stderrLogger.info(`dashboard at ${url}/`)
      else stderrLogger.warn(`no dashboard is built in ${dir}; npm start builds it (or npm run build)`)
    }
  } catch (e) {
    stderrLogger.error('could not start', { error: e })
    process.exitCode = 1
    process.off('SIGINT', shutdown)
    process.off('SIGTERM', shutdown)
    await relay.stop()
  }
}
