/** The `chorus` command's exit codes, and which failure gives which. */
import { isChorusError } from '@chorus/sync/vocabulary'
import { RelayUnreachableError } from '@chorus/agent'

export const EXIT = {
  ok: 0,
  /** Anything not listed: refused by the relay (403, 401, 429), a corrupt answer, a bug. */
  failed: 1,
  /** Bad command line or input. */
  usage: 2,
  /** Already claimed, locked, closed, or the lease was lost. */
  conflict: 3,
  notFound: 4,
  /** The relay could not be reached, or could not grant leases. */
  unreachable: 5,
  /** `wait` saw nothing within its timeout (as timeout(1) does). */
  timeout: 124,
} as const

/** A mistake on the command line: printed with a hint and exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'UsageError'
  }
}

export function exitCodeOf(e: unknown): number {
  if (e instanceof UsageError) return EXIT.usage
  if (e instanceof RelayUnreachableError) return EXIT.unreachable
  if (!isChorusError(e)) return EXIT.failed
  switch (e.code) {
    case 'invalid_input':
    case 'too_large':
      return EXIT.usage
    case 'conflict':
    case 'locked':
    case 'version_conflict':
    case 'closed':
    case 'lease_lost':
    case 'fenced':
      return EXIT.conflict
    case 'not_found':
      return EXIT.notFound
    case 'lease_unavailable':
      return EXIT.unreachable
    default:
      return EXIT.failed
  }
}
