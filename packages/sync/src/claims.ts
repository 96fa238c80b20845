import type * as Y from 'yjs'
import type { LeaseGrant, RecordedGrant } from './schema.ts'

/**
 * Leases recorded in the document (task claims, resource locks) and the rule that picks the one in force (L8):
 * among recorded grants that verify, are not released and have not run out at `now`, the highest token wins.
 * Every replica holding the same records and asking at the same `now` picks the same grant.
 */
export const resolveGrant = (
  grants: Y.Map<RecordedGrant>,
  released: Y.Map<unknown>,
  verify: (grant: LeaseGrant) => boolean,
  now: number,
): RecordedGrant | undefined => {
  let best: RecordedGrant | undefined
  for (const [token, g] of grants) {
    if (released.has(token)) continue
    if (g.at + g.duration <= now) continue
    if (best !== undefined && g.token <= best.token) continue
    if (!verify(g)) continue
    best = g
  }
  return best
}

/** The grant with `token`, if it is recorded and verifies (used to judge fenced writes, L9). */
export const validGrant = (
  grants: Y.Map<RecordedGrant>,
  token: number,
  verify: (grant: LeaseGrant) => boolean,
): RecordedGrant | undefined => {
  const g = grants.get(String(token))
  return g !== undefined && g.token === token && verify(g) ? g : undefined
}
