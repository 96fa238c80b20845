/** What every command runs with: the connection (where and as whom), its I/O, and the agent that acts for it. */
import { RelayAgent } from '@chorus/agent'
import { UsageError } from './exit-codes.ts'
import type { Connection } from './options.ts'

export interface Io {
  out(line: string): void
  err(line: string): void
  /** Everything on stdin, or undefined when stdin is a terminal. */
  stdin(): Promise<string | undefined>
  /** Aborted on SIGINT/SIGTERM. */
  signal: AbortSignal
}

export interface CommandContext {
  conn: Connection
  io: Io
  /** Arguments after `--` (the command `tasks claim --hold` runs). */
  rest: string[]
  env: Readonly<Record<string, string | undefined>>
}

export const agentOf = (conn: Connection): RelayAgent => {
  if (conn.id === undefined) throw new UsageError('who are you? give --id or set CHORUS_ID (with tokens, the token’s participant)')
  return new RelayAgent({ relay: conn.relay, space: conn.space, participant: conn.id, token: conn.token })
}
