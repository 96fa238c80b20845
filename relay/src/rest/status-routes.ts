/**
 * What a monitor or a client asks about the relay itself: `GET /health` and `GET /capabilities` (no token
 * needed, and never rate limited), `GET /whoami` (who a token stands for), and per space `GET /state` (its shared
 * state and a summary of what it holds) and `GET /dependencies` (dependencies.ts).
 *
 * | route | answer |
 * |---|---|
 * | `GET /health` | `{status: 'ok', spaces, connections}` |
 * | `GET /capabilities` | `RelayCapabilities`: protocols, the relay key, auth, default space, limits, libp2p node |
 * | `GET /whoami` | `{open: true}`, or `{open: false, participant, kind, spaces?}` for a token |
 * | `GET /state` | `{space, schema, state, summary: {participants, tasks, proposals, resources}}` |
 * | `GET /dependencies` | `{status: ok\|degraded, space, relay, dependencies: {<part>: {status, version?, detail?, ...}}}` |
 */
import type { Space } from '@chorus/sync'
import type { Access } from '../access.ts'
import type { HostedSpaces } from '../hosted-spaces.ts'
import type { RateLimit } from '../rate-limit.ts'
import { dependencies } from './dependencies.ts'
import type { Router } from './http.ts'
import type { SpaceRoutes } from './space-routes.ts'

/** What `GET /capabilities` returns: enough for a client to pick a protocol and verify grants (L7). */
export interface RelayCapabilities {
  name: 'chorus-relay'
  version: string
  protocols: string[]
  /** The relay's Ed25519 public key (base64url), the one grants are signed with. */
  relayKey: string
  /** Whether requests must carry a bearer token. */
  auth: 'none' | 'bearer'
  defaultSpace: string
  limits: { maxFrameBytes: number; maxBodyBytes: number; maxLeaseFrameBytes: number; rateLimit: RateLimit }
  /** The relay's libp2p node (absent when it runs none): bootstrap from these multiaddrs. */
  p2p?: { peerId: string; multiaddrs: string[]; protocols: string[] }
}

export interface RelayHealth {
  status: 'ok'
  /** Spaces loaded in memory. */
  spaces: number
  /** Open sync connections. */
  connections: number
}

/** Paths answered whatever the load: monitors must reach them. */
export const UNLIMITED_PATHS: ReadonlySet<string> = new Set(['/health', '/capabilities'])

export interface StatusContext {
  access: Access
  spaces: HostedSpaces
  health: () => RelayHealth
  capabilities: () => RelayCapabilities
}

export function addStatusRoutes(router: Router, routes: SpaceRoutes, context: StatusContext): void {
  router.get('/health', () => context.health())
  router.get('/capabilities', () => context.capabilities())
  // Who a token stands for, so a page given only a token can join as that participant.
  router.get('/whoami', ({ req }) => {
    const caller = context.access.caller(req)
    return caller.open ? { open: true } : { open: false, ...caller.identity }
  })
  routes.get('/state', ({ space }) => context.spaces.using(space, (s) => stateOf(s, space)))
  routes.get('/dependencies', ({ space }) => dependencies(context.spaces, space))
}

function stateOf(space: Space, name: string) {
  const participants = { total: 0, online: 0, idle: 0, offline: 0 }
  for (const p of space.participants.list()) {
    participants.total++
    participants[space.presence.status(p.id).status]++
  }
  const tasks = { total: 0, open: 0, claimed: 0, completed: 0 }
  for (const t of space.tasks.list()) {
    tasks.total++
    tasks[t.status]++
  }
  const proposals = { total: 0, open: 0, approved: 0, rejected: 0, expired: 0 }
  for (const p of space.proposals.list()) {
    proposals.total++
    proposals[p.status]++
  }
  const resources = space.resources.list()
  return {
    space: name,
    schema: space.meta.schema,
    state: space.state.all(),
    summary: {
      participants,
      tasks,
      proposals,
      resources: { total: resources.length, locked: resources.filter((r) => r.lock !== undefined).length },
    },
  }
}

