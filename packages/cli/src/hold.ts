/**
 * `chorus tasks claim ID --hold -- COMMAND ...`: claims the task, runs COMMAND while renewing the claim, then
 * completes the task if COMMAND exited 0 and releases it otherwise. COMMAND sees CHORUS_TASK_ID and
 * CHORUS_FENCING_TOKEN. If the claim is lost meanwhile, COMMAND is stopped (SIGTERM) and the exit code is 3.
 */
import { spawn } from 'node:child_process'
import { constants } from 'node:os'
import type { Input, RelayAgent } from '@chorus/agent'
import { DEFAULT_CLAIM_MS } from '@chorus/sync/vocabulary'
import type { CommandContext } from './context.ts'
import { EXIT, exitCodeOf } from './exit-codes.ts'
import { until } from './format.ts'

/** Renew when this share of the claim has run, so a slow relay still has time to answer. */
const RENEW_AT = 1 / 3

export async function holdClaim(agent: RelayAgent, input: Input<'claim_task'>, ctx: CommandContext): Promise<number> {
  const { io, rest } = ctx
  const claim = await agent.call('claim_task', input, { signal: io.signal })
  const duration = input.duration_ms ?? DEFAULT_CLAIM_MS
  io.err(`claimed ${claim.task.id} (fencing token ${claim.token}, until ${until(claim.expires_at)}); running ${rest.join(' ')}`)
  const [command, ...args] = rest as [string, ...string[]]
  const child = spawn(command, args, {
    stdio: 'inherit',
    env: { ...process.env, CHORUS_TASK_ID: claim.task.id, CHORUS_FENCING_TOKEN: String(claim.token) },
  })
  let lost: unknown
  const renew = async (): Promise<void> => {
    try {
      await agent.call('renew_claim', { task_id: claim.task.id, duration_ms: duration })
    } catch (e) {
      lost = e
      clearInterval(timer)
      io.err(`lost the claim on ${claim.task.id}: ${e instanceof Error ? e.message : String(e)}; stopping ${command}`)
      child.kill('SIGTERM')
    }
  }
  const timer = setInterval(() => void renew(), Math.max(50, duration * RENEW_AT))
  const forward = (): void => {
    child.kill('SIGTERM')
  }
  io.signal.addEventListener('abort', forward)

  const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>((resolve) => {
    child.once('error', (error) => resolve({ code: null, signal: null, error }))
    child.once('exit', (code, signal) => resolve({ code, signal }))
  })
  clearInterval(timer)
  io.signal.removeEventListener('abort', forward)
  if (exit.error !== undefined) io.err(`could not run ${command}: ${exit.error.message}`)
  if (lost !== undefined) return EXIT.conflict
  // A command killed by a signal exits 128 + its number, as in a shell.
  const code = exit.code ?? (exit.signal === null ? EXIT.failed : 128 + constants.signals[exit.signal])
  try {
    if (code === 0) {
      await agent.call('complete_task', { task_id: claim.task.id, result: { exit_code: 0 } })
      io.err(`completed ${claim.task.id}`)
    } else {
      await agent.call('release_claim', { task_id: claim.task.id })
      io.err(`${command} exited ${code}; released ${claim.task.id}`)
    }
  } catch (e) {
    io.err(`could not ${code === 0 ? 'complete' : 'release'} ${claim.task.id}: ${e instanceof Error ? e.message : String(e)}`)
    return code === 0 ? exitCodeOf(e) : code
  }
  return exit.error !== undefined ? EXIT.failed : code
}
