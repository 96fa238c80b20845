/**
 * The `chorus` command run as its users run it: a child process with CHORUS_* in its environment, against a relay
 * process started with `relayArgs`.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { ROOT } from '../support/paths.ts'

export const CHORUS_MAIN = join(ROOT, 'packages', 'cli', 'src', 'main.ts')

/** The relay the command talks to: HTTP only. */
export const relayArgs = ['--no-p2p', '--no-dashboard']

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
