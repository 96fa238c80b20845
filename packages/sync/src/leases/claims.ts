import type * as Y from 'yjs'
import type { LeaseGrant, RecordedGrant } from '../schema.ts'

/**
 * Leases recorded in the document (task claims, resource locks) and the rule that picks the one in force (L8):
 * among recorded grants that verify, are not released and have not run out at `now`, the highest token wins.
 * Every replica holding the same records and asking at the same `now` picks the same grant.
 * Only grants for `key` (`task:<id>`, `resource:<id>`) count: a genuine grant for another key, copied into this map, is no claim here.
 */
export const resolveGrant = (
  grants: Y.Map<RecordedGrant>,
  released: Y.Map<unknown>,
  verify: (grant: LeaseGrant) => boolean,
  now: number,
  key: string,
): RecordedGrant | undefined => {
  // Only the newest grant can be live (L1, L2): once it is released or has run out, no older one comes back.
  let best: RecordedGrant | undefined
  for (const g of grants.values()) {
    if (best !== undefined && g.token <= best.token) continue
    if (g.key !== key) continue
    if (!verify(g)) continue
    best = g
  }
  if (best === undefined || released.has(String(best.token)) || best.at + best.duration <= now) return undefined
  return { ...best }
}

/**
 * Whether a write at `at` under `token` was made while that grant was live (L9): the grant is recorded and
 * verifies, is held by `by`, had not run out, and had not been released before the write.
 */
export const writtenUnderGrant = (
  grants: Y.Map<RecordedGrant>,
  released: Y.Map<unknown>,
  token: number,
  by: string,
  at: number,
  verify: (grant: LeaseGrant) => boolean,
  key: string,
): boolean => {
  const g = validGrant(grants, token, verify, key)
  if (g === undefined || g.holder !== by || at >= g.at + g.duration) return false
  const releasedAt = released.get(String(token))
  return typeof releasedAt !== 'number' || at <= releasedAt
}

/** The grant with `token` on `key`, if it is recorded and verifies (used to judge fenced writes, L9). */
export const validGrant = (
  grants: Y.Map<RecordedGrant>,
  token: number,
  verify: (grant: LeaseGrant) => boolean,
  key: string,
): RecordedGrant | undefined => {
  const g = grants.get(String(token))
  return g !== undefined && g.token === token && g.key === key && verify(g) ? g : undefined
}
