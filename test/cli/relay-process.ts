/**
 * A real relay process (relay/src/main.ts) on 127.0.0.1 with its own data folder, and the `chorus` command run as
 * its users run it: a child process with CHORUS_* in its environment.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export const ROOT = join(import.meta.dirname, '..', '..')
export const RELAY_MAIN = join(ROOT, 'relay', 'src', 'main.ts')
export const CHORUS_MAIN = join(ROOT, 'packages', 'cli', 'src', 'main.ts')

export interface RelayProcess {
  url: string
  dir: string
  /** Stops it (SIGTERM) and starts it again on the same port and folder. */
  restart(): Promise<void>
  stop(): Promise<void>
}

const start = async (dir: string, port: number, extra: readonly string[]): Promise<{ child: ChildProcess; url: string }> => {
  const child = spawn(process.execPath, [RELAY_MAIN, '--port', String(port), '--data', join(dir, 'data'), '--no-p2p', '--no-dashboard', ...extra], { cwd: ROOT })
  let stderr = ''
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()))
  const url = await new Promise<string>((resolve, reject) => {
    let out = ''
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString()
      const m = /chorus relay listening on (\S+)/.exec(out)
      if (m?.[1] !== undefined) resolve(m[1])
    })
    child.once('exit', (code) => reject(new Error(`the relay exited ${code} before listening:\n${stderr}`)))
  })
  return { child, url }
}

export async function startRelayProcess(extra: readonly string[] = []): Promise<RelayProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'chorus-cli-'))
  let { child, url } = await start(dir, 0, extra)
  const port = Number(new URL(url).port)
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return
    const exited = once(child, 'exit')
    child.kill('SIGTERM')
    await exited
  }
  return {
    get url() {
      return url
    },
    dir,
    async restart() {
      await stop()
      ;({ child, url } = await start(dir, port, extra))
    },
    async stop() {
      await stop()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

export interface ChorusRun {
  code: number | null
  stdout: string
  stderr: string
  /** stdout parsed as JSON (for --json). */
  json<T = unknown>(): T
}

/** Runs `chorus ...args` to its end with `env` over this process's environment. */
export function chorus(args: readonly string[], env: Record<string, string>, input?: string): Promise<ChorusRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHORUS_MAIN, ...args], { cwd: ROOT, env: { ...process.env, CHORUS_DEBUG: '1', ...env } })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.once('error', reject)
    child.once('close', (code) =>
      resolve({
        code,
        stdout,
        stderr,
        json<T>(): T {
          try {
            return JSON.parse(stdout) as T
          } catch {
            throw new Error(`chorus ${args.join(' ')} printed no JSON (exit ${code}):\n${stdout}\n${stderr}`)
          }
        },
      }),
    )
    child.stdin.end(input ?? '')
  })
}

/** Starts `chorus ...args` and returns the child, for commands that keep running (wait, watch, mcp, --hold). */
export function chorusChild(args: readonly string[], env: Record<string, string>): ChildProcess {
  return spawn(process.execPath, [CHORUS_MAIN, ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] })
}
