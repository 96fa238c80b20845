/**
 * Operations asked of a relay over HTTP (`POST <relay>/spaces/<space>/agent/<operation>`): what the `chorus`
 * command and `chorus mcp` use. The relay performs them on its hosted replica of the space.
 */
import { ChorusError, type ChorusErrorCode } from '@chorus/sync/vocabulary'
import type { Agent, Results, WaitResult } from './agent.ts'
import type { Input, OperationName } from './operations.ts'

/** The relay could not be reached at all (refused, unknown host, reset): nothing was done. */
export class RelayUnreachableError extends Error {
  readonly relay: string

  constructor(relay: string, cause: unknown) {
    super(`cannot reach the relay at ${relay}: ${describe(cause)}`, { cause })
    this.name = 'RelayUnreachableError'
    this.relay = relay
  }
}

const describe = (e: unknown): string => {
  const cause = e instanceof Error && e.cause instanceof Error ? e.cause : e
  const code = (cause as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : cause instanceof Error ? cause.message : String(cause)
}

export interface RelayAgentOptions {
  /** `http://host:port` (or https). */
  relay: string
  space: string
  /** Who acts: on an open relay any id; with tokens the token's participant. */
  participant: string
  token?: string
  /** One wait_for request blocks at most this long; longer waits ask again (default 50 s, under common proxy limits). */
  waitChunkMs?: number
}

/** The agent API path of `space` on `relay`. */
export const agentUrl = (relay: string, space: string, operation: string): string => {
  let base: URL
  try {
    base = new URL(relay)
  } catch {
    throw new ChorusError('invalid_input', `not a relay URL: ${relay} (expected http://host:port)`)
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new ChorusError('invalid_input', `the relay URL must start with http: or https:, not ${base.protocol}`)
  base.pathname = `${base.pathname.replace(/\/+$/, '')}/spaces/${encodeURIComponent(space)}/agent/${operation}`
  return base.href
}

export class RelayAgent implements Agent {
  readonly participant: string
  private readonly options: RelayAgentOptions

  constructor(options: RelayAgentOptions) {
    this.options = options
    this.participant = options.participant
    agentUrl(options.relay, options.space, 'join')
  }

  async call<N extends OperationName>(name: N, input: Input<N>, options: { signal?: AbortSignal } = {}): Promise<Results[N]> {
    if (name === 'wait_for') return (await this.waitInChunks(input as Input<'wait_for'>, options.signal)) as Results[N]
    return await this.post(name, input, options.signal)
  }

  /** A long wait as several shorter requests; the event cursor carries over, so no event falls between them. */
  private async waitInChunks(input: Input<'wait_for'>, signal: AbortSignal | undefined): Promise<WaitResult> {
    const chunk = this.options.waitChunkMs ?? 50_000
    const deadline = Date.now() + input.timeout_ms
    let next = input
    for (;;) {
      const left = Math.max(0, deadline - Date.now())
      const result = await this.post('wait_for', { ...next, timeout_ms: Math.min(left, chunk) }, signal)
      if (result.matched || left <= chunk || signal?.aborted === true) return result
      if (result.cursor !== undefined) next = { ...next, after: result.cursor }
    }
  }

  private async post<N extends OperationName>(name: N, input: Input<N>, signal: AbortSignal | undefined): Promise<Results[N]> {
    const url = agentUrl(this.options.relay, this.options.space, name)
    const headers: Record<string, string> = { 'content-type': 'application/json', 'chorus-participant': this.participant }
    if (this.options.token !== undefined) headers.authorization = `Bearer ${this.options.token}`
    let response: Response
    try {
      response = await fetch(url, { method: 'POST', headers, body: JSON.stringify(input), signal })
    } catch (e) {
      if (signal?.aborted === true) throw e
      throw new RelayUnreachableError(this.options.relay, e)
    }
    const text = await response.text()
    let body: unknown
    try {
      body = JSON.parse(text)
    } catch {
      throw new ChorusError('corrupt', `the relay answered ${response.status} with something that is not JSON: ${text.slice(0, 200)}`)
    }
    if (response.ok) return body as Results[N]
    const error = body as { error?: string; message?: string }
    throw new ChorusError((error.error ?? 'corrupt') as ChorusErrorCode, error.message ?? `the relay answered ${response.status}`, { status: response.status })
  }
}
