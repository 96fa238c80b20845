/**
 * Every failure the API reports is a `ChorusError` with a stable `code`, so callers (and the relay's REST layer,
 * which maps codes to HTTP statuses) can branch on it. A failed call never changes the document.
 */
export type ChorusErrorCode =
  | 'invalid_input' // malformed or missing fields, bad enum values, empty content
  | 'too_large' // over a documented size limit
  | 'not_found' // unknown id
  | 'version_conflict' // optimistic locking: the version moved
  | 'locked' // held by another participant
  | 'conflict' // e.g. a task already claimed or completed
  | 'forbidden' // the participant may not do this
  | 'unauthorized' // no credentials, or unknown ones, where the relay requires them
  | 'rate_limited' // too many requests from one connection or client
  | 'closed' // the proposal is no longer open
  | 'lease_unavailable' // no arbiter reachable (L10)
  | 'lease_lost' // a lease expired or was revoked (L6)
  | 'fenced' // a write carried a stale fencing token (L9)
  | 'corrupt' // stored or received data could not be decoded

export class ChorusError extends Error {
  readonly code: ChorusErrorCode
  readonly details: Readonly<Record<string, unknown>>

  constructor(code: ChorusErrorCode, message: string, details: Record<string, unknown> = {}) {
    super(message)
    this.name = 'ChorusError'
    this.code = code
    this.details = details
  }
}

export const isChorusError = (e: unknown, code?: ChorusErrorCode): e is ChorusError =>
  e instanceof ChorusError && (code === undefined || e.code === code)
