/**
 * Leases over REST, for clients without a WebSocket (docs/PROTOCOL.md): acquire, renew and release on the default
 * space or under `/spaces/<space>/`, and the live grants of a space. The same arbiter and rules as `/leases`;
 * a REST holder is not pushed `lease_lost` (it learns from a refused renew, or from `GET .../leases`).
 */
import { z } from 'zod'
import { ChorusError, grantSchema, idSchema, leaseKeySchema, type LeaseGrant } from '@chorus/sync'
import { checkActingAs, type Caller } from '../access.ts'
import type { LeaseService } from '../lease-service.ts'
import type { SpaceRoutes } from './space-routes.ts'

const acquireSchema = z.object({ key: leaseKeySchema, holder: idSchema, duration: z.number({ error: 'duration must be a number of milliseconds' }) })
const renewSchema = z.object({ grant: grantSchema, duration: z.number({ error: 'duration must be a number of milliseconds' }).optional() })
const releaseSchema = z.object({ grant: grantSchema })

export interface LeaseRoutesContext {
  leases: LeaseService
}

export function addLeaseRoutes(routes: SpaceRoutes, context: LeaseRoutesContext): void {
  routes.post('/leases/acquire', acquireSchema, async ({ space, caller, body }) => {
    checkActingAs(caller, body.holder)
    const grant = await context.leases.acquire({ space, key: body.key, holder: body.holder, duration: body.duration })
    return { grant }
  })
  routes.post('/leases/renew', renewSchema, async ({ space, caller, body }) => {
    checkGrant(body.grant, space, caller)
    const grant = await context.leases.renew(body.grant, body.duration)
    return { grant }
  })
  routes.post('/leases/release', releaseSchema, async ({ space, caller, body }) => {
    checkGrant(body.grant, space, caller)
    const released = await context.leases.release(body.grant)
    return { released }
  })
  routes.get('/leases', async ({ space }) => ({ leases: await context.leases.live(space) }))
}

function checkGrant(grant: LeaseGrant, space: string, caller: Caller): void {
  if (grant.space !== space) throw new ChorusError('invalid_input', `the grant is for space ${grant.space}, not ${space}`)
  checkActingAs(caller, grant.holder)
}
