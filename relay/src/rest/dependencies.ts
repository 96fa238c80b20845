/**
 * `GET /dependencies`: each part the REST API stands on (the runtime, node:sqlite, the space's store and lease
 * key, the packages), checked now rather than assumed.
 */
import { createRequire } from 'node:module'
import { DatabaseSync } from 'node:sqlite'
import { SCHEMA_VERSION, type Json } from '@chorus/sync'
import type { HostedSpaces } from '../hosted-spaces.ts'
import { packageVersionAt, RELAY_VERSION } from '../version.ts'

/** What `GET /dependencies` reports for one part. */
export interface DependencyStatus {
  status: 'ok' | 'error'
  version?: string
  detail?: string
  [field: string]: Json | undefined
}

const requireHere = createRequire(import.meta.url)

function packageVersion(name: string): DependencyStatus {
  try {
    const pkg = requireHere(`${name}/package.json`) as { version?: unknown }
    return typeof pkg.version === 'string' ? { status: 'ok', version: pkg.version } : { status: 'error', detail: 'package.json has no version' }
  } catch (e) {
    return { status: 'error', detail: e instanceof Error ? e.message : String(e) }
  }
}

function syncPackage(): DependencyStatus {
  const version = packageVersionAt(new URL('../package.json', import.meta.resolve('@chorus/sync')))
  return { status: 'ok', version, schema: SCHEMA_VERSION }
}

function runtime(): DependencyStatus {
  const major = Number(process.versions.node.split('.')[0])
  return major >= 22
    ? { status: 'ok', version: process.versions.node }
    : { status: 'error', version: process.versions.node, detail: 'the relay needs Node 22 or newer' }
}

/** node:sqlite answers a query (in memory; the store's own file is checked by loading the space). */
function sqlite(): DependencyStatus {
  try {
    const db = new DatabaseSync(':memory:')
    try {
      const row = db.prepare('select sqlite_version() as version').get() as { version?: unknown } | undefined
      return { status: 'ok', version: typeof row?.version === 'string' ? row.version : 'unknown' }
    } finally {
      db.close()
    }
  } catch (e) {
    return { status: 'error', detail: e instanceof Error ? e.message : String(e) }
  }
}

/** The space loads from the store, and its grants are verifiable (the arbiter's key is in its meta). */
async function spaceParts(spaces: HostedSpaces, name: string): Promise<{ store: DependencyStatus; leases: DependencyStatus }> {
  let hosted: Awaited<ReturnType<HostedSpaces['use']>>
  try {
    hosted = await spaces.use(name)
  } catch (e) {
    const detail = e instanceof Error ? e.message : String(e)
    return { store: { status: 'error', detail }, leases: { status: 'error', detail: 'the space could not be loaded' } }
  }
  try {
    const { space } = hosted
    const relayKey = space.meta.relayKey
    const claims = space.tasks.list({ status: 'claimed' }).length
    const locks = space.resources.list().filter((r) => r.lock !== undefined).length
    return {
      store: { status: 'ok', detail: `space ${name} is loaded`, participants: space.participants.list().length },
      leases:
        relayKey === undefined
          ? { status: 'error', detail: 'no arbiter key in the space meta; grants cannot be verified' }
          : { status: 'ok', relay_key: relayKey, live_task_claims: claims, live_resource_locks: locks },
    }
  } finally {
    hosted.release()
  }
}

/** What cannot change while the process runs (runtime, sqlite and package versions): read on the first request. */
let staticParts: { runtime: Record<string, DependencyStatus>; packages: Record<string, DependencyStatus> } | undefined

/** What `GET /dependencies` answers for the space `name`: each part, and `ok` only when every part is. */
export async function dependencies(spaces: HostedSpaces, name: string) {
  staticParts ??= {
    runtime: { node: runtime(), 'node:sqlite': sqlite() },
    packages: {
      '@chorus/sync': syncPackage(),
      yjs: packageVersion('yjs'),
      'y-protocols': packageVersion('y-protocols'),
      ws: packageVersion('ws'),
      zod: packageVersion('zod'),
    },
  }
  const parts: Record<string, DependencyStatus> = { ...staticParts.runtime, ...(await spaceParts(spaces, name)), ...staticParts.packages }
  const ok = Object.values(parts).every((p) => p.status === 'ok')
  return { status: ok ? 'ok' : 'degraded', space: name, relay: { name: 'chorus-relay', version: RELAY_VERSION }, dependencies: parts }
}
