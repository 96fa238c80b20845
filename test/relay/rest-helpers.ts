/**
 * A tiny client for the coordination hub's REST routes in tests: JSON in, status and JSON out, nothing hidden.
 */
import { beforeEach } from 'vitest'
import type { RelayOptions } from '@chorus/relay'
import { forwarding } from '../support/forwarding.ts'
import type { Fixture } from '../support/relay.ts'

export interface Reply<T = Record<string, unknown>> {
  status: number
  body: T
}

export interface Hub {
  /** The relay it talks to. */
  readonly url: string
  get<T = Record<string, unknown>>(path: string): Promise<Reply<T>>
  post<T = Record<string, unknown>>(path: string, body?: unknown): Promise<Reply<T>>
  /** A POST with this exact body text (bad JSON, oversized bodies). */
  raw<T = Record<string, unknown>>(method: string, path: string, text?: string): Promise<Reply<T>>
}

export function hub(url: string, headers: Record<string, string> = {}): Hub {
  const call = async <T>(method: string, path: string, text?: string): Promise<Reply<T>> => {
    const res = await fetch(`${url}${path}`, {
      method,
      headers: { ...(text === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
      body: text,
    })
    const body = (await res.json()) as T
    return { status: res.status, body }
  }
  return {
    url,
    get: (path) => call('GET', path),
    post: (path, body) => call('POST', path, body === undefined ? undefined : JSON.stringify(body)),
    raw: (method, path, text) => call(method, path, text),
  }
}

/** For each test of the calling file: a relay started on `f` (with `options`), and this client of it. */
export function hubPerTest(f: Fixture, options?: RelayOptions): Hub {
  let current: Hub | undefined
  beforeEach(async () => {
    current = hub((await f.startRelay(options)).url)
  })
  return forwarding(() => {
    if (current === undefined) throw new Error('the relay is there only while a test runs')
    return current
  })
}

// The response shapes as a client sees them: written out here rather than imported, so the tests pin the contract.

export interface EntityView {
  entity_id: string
  entity_type: string
  kind: string
  name: string
  capabilities: string[]
  metadata: Record<string, unknown>
  status: 'online' | 'idle' | 'offline'
  last_seen: string
  registered_at: string
  current_task: string | null
  left_at: string | null
}

export interface MessageView {
  id: string
  sender_id: string
  content: string
  channel: string
  recipient_id: string | null
  priority: string
  timestamp: string
  reply_to: string | null
}

export interface TaskView {
  task_id: string
  title: string
  description: string
  priority: string
  requires_human: boolean
  status: 'open' | 'claimed' | 'completed'
  created_by: string
  created_at: string
  claimed_by: string | null
  claimed_at: string | null
  claim_token: number | null
  claim_duration_ms: number | null
  completed_by: string | null
  completed_at: string | null
  result: unknown
  history: Array<{ status: string; by: string; at: string }>
}

export interface ProposalView {
  proposal_id: string
  title: string
  description: string
  created_by: string
  created_at: string
  threshold: number
  quorum: number
  deadline: string | null
  closed_at: string | null
  status: 'open' | 'approved' | 'rejected' | 'expired'
  votes: Record<string, string>
  tally: { for: number; against: number; abstain: number; total: number; approval: number }
}

export interface ErrorBody {
  error: string
  message: string
  details?: Record<string, unknown>
}

export interface ClaimReply {
  status: 'claimed'
  task: TaskView
  lease: { token: number; duration_ms: number; grant: { space: string; key: string; holder: string; token: number; duration: number; signature: string } }
}

/** Registers entities: `[id, entity_type]` pairs, named after their ids. */
export async function register(api: Hub, entities: Array<[string, string]>, prefix = ''): Promise<void> {
  for (const [entity_id, entity_type] of entities) {
    const r = await api.post(`${prefix}/entities/register`, { entity_id, entity_type, name: entity_id })
    if (r.status !== 200) throw new Error(`register ${entity_id}: ${r.status} ${JSON.stringify(r.body)}`)
  }
}
