/**
 * The relay as its users run it: `node relay/src/main.ts` in a child process on 127.0.0.1, with a data folder of
 * its own. `withRelayProcess` kills it and removes that folder whatever its body does.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { aroundAll, onTestFinished } from 'vitest'
import { exited, running, type Exit } from './child.ts'
import { forwarding } from './forwarding.ts'
import { ROOT } from './paths.ts'
import { makeTempDir, type TempDir } from './temp.ts'
import { WAIT_MS } from './wait.ts'

export const RELAY_MAIN = join(ROOT, 'relay', 'src', 'main.ts')
/** The relay's one line on stdout once it listens. */
export const LISTENING = /^chorus relay listening on (\S+)$/

export interface RelayProcessOptions {
  /** Flags after `--port` and `--data`. */
  args?: readonly string[]
  /** Its data folder (default a new temporary folder, removed by `close()`). */
  dataDir?: string
}

export interface RelayProcess {
  /** Where the running process listens; the same after a restart. */
  readonly url: string
  readonly port: number
  readonly dataDir: string
  /** The running (or last) process. */
  readonly child: ChildProcess
  /** Every line the processes printed on stdout, across restarts. */
  readonly lines: readonly string[]
  /** What the processes printed on stderr, across restarts. */
  stderr(): string
  /** Sends `signal` (default SIGTERM) to the running process and resolves with its exit. */
  stop(signal?: NodeJS.Signals): Promise<Exit>
  /** Starts a new process on the same port and data folder (after `stop`). */
  start(): Promise<void>
  /** `stop(signal)`, then `start()`. */
  restart(signal?: NodeJS.Signals): Promise<void>
  /** Kills the running process, if any, and removes the temporary data folder. Always safe to call. */
  close(): Promise<void>
}

/** Runs `body` with a relay process, which is killed and whose temporary folder is removed afterwards. */
export async function withRelayProcess<T>(options: RelayProcessOptions, body: (relay: RelayProcess) => Promise<T>): Promise<T> {
  const relay = await startRelayProcess(options)
  try {
    return await body(relay)
  } finally {
    await relay.close()
  }
}

/** Starts a relay process on a free port; if it cannot, nothing of it is left behind. */
export async function startRelayProcess(options: RelayProcessOptions = {}): Promise<RelayProcess> {
  const temp: TempDir | undefined = options.dataDir === undefined ? makeTempDir('chorus-relay-process-') : undefined
  const dataDir = options.dataDir ?? join((temp as TempDir).path, 'data')
  const args = options.args ?? []
  const lines: string[] = []
  let stderr = ''
  let child: ChildProcess | undefined
  let url = ''

  /** One process on `port`; resolves with its URL once it printed its listening line. */
  const launch = (port: number): Promise<string> => {
    const c = spawn(process.execPath, [RELAY_MAIN, '--port', String(port), '--data', dataDir, ...args], { cwd: ROOT })
    child = c
    let own = ''
    c.stderr.on('data', (d: Buffer) => {
      own += d.toString()
      stderr += d.toString()
    })
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        c.kill('SIGKILL')
        reject(new Error(`the relay printed no listening line within ${WAIT_MS} ms:\n${own}`))
      }, WAIT_MS)
      const gone = (code: number | null, signal: NodeJS.Signals | null): void => {
        clearTimeout(timer)
        reject(new RelayExitedError(`the relay exited (${code ?? signal}) before listening:\n${own}`, own))
      }
      // 'close', not 'exit': by then stderr has been read to its end.
      c.once('close', gone)
      let first = true
      createInterface({ input: c.stdout }).on('line', (line) => {
        lines.push(line)
        if (!first) return
        first = false
        clearTimeout(timer)
        c.off('close', gone)
        const m = LISTENING.exec(line)
        if (m?.[1] !== undefined) resolve(m[1])
        else reject(new Error(`the relay printed "${line}" where its listening line was expected:\n${own}`))
      })
    })
  }

  /** Starts on `port`, again while a process that just died still holds it. */
  const launchOn = async (port: number): Promise<void> => {
    const deadline = Date.now() + WAIT_MS
    for (;;) {
      try {
        url = await launch(port)
        return
      } catch (e) {
        if (!(e instanceof RelayExitedError && /EADDRINUSE/.test(e.stderr)) || Date.now() > deadline) throw e
      }
    }
  }

  const stop = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<Exit> => {
    if (child === undefined) throw new Error('no relay process was started')
    const exit = exited(child)
    if (running(child)) child.kill(signal)
    return await exit
  }

  const close = async (): Promise<void> => {
    if (child !== undefined && running(child)) await stop('SIGKILL')
    temp?.remove()
  }

  try {
    await launchOn(0)
  } catch (e) {
    await close()
    throw e
  }
  const port = Number(new URL(url).port)
  return {
    get url() {
      return url
    },
    port,
    dataDir,
    get child() {
      return child as ChildProcess
    },
    lines,
    stderr: () => stderr,
    stop,
    start: () => launchOn(port),
    async restart(signal) {
      await stop(signal)
      await launchOn(port)
    },
    close,
  }
}

/** The process ended before it listened; `stderr` says why (a port still in use, a bad flag). */
class RelayExitedError extends Error {
  readonly stderr: string
  constructor(message: string, stderr: string) {
    super(message)
    this.stderr = stderr
  }
}

/**
 * One relay process for all the tests of the calling file (or `describe`), started before the first and killed,
 * with its folder removed, after the last, whatever they did.
 */
export function relayProcessForAll(options: RelayProcessOptions = {}): RelayProcess {
  let current: RelayProcess | undefined
  aroundAll(async (runSuite) => {
    await withRelayProcess(options, async (relay) => {
      current = relay
      try {
        await runSuite()
      } finally {
        current = undefined
      }
    })
  })
  return forwarding(() => {
    if (current === undefined) throw new Error('the relay process runs only while the tests run')
    return current
  })
}

/** A relay process killed, with its folder removed, when the running test has finished. Call it in the test. */
export async function relayProcessForTest(options: RelayProcessOptions = {}): Promise<RelayProcess> {
  const relay = await startRelayProcess(options)
  onTestFinished(() => relay.close())
  return relay
}
