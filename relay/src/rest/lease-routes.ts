/**
 * Leases over REST, for clients without a WebSocket (docs/PROTOCOL.md): acquire, renew and release on the default
 * space or under `/spaces/<space>/`, and the live grants of a space. The same arbiter and rules as `/leases`;
 * a REST holder is not pushed `lease_lost` (it learns from a refused renew, or from `GET .../leases`).
 */
import type { IncomingMessage } from 'node:http'
import { z } from 'zod'
import { ChorusError, grantSchema, idSchema, leaseKeySchema, type LeaseGrant } from '@chorus/sync'
import { checkActingAs, checkSpaceAccess, type Caller } from '../auth.ts'
import type { LeaseService } from '../lease-service.ts'
import type { RequestContext, Router } from './http.ts'
import { parseBody, spaceParam } from './params.ts'

export interface LeaseRoutesContext {
  leases: LeaseService
  caller: (req: IncomingMessage) => Caller
  defaultSpace: string
}

const acquireSchema = z.object({ key: leaseKeySchema, holder: idSchema, duration: z.number({ error: 'duration must be a number of milliseconds' }) })
const renewSchema = z.object({ grant: grantSchema, duration: z.number({ error: 'duration must be a number of milliseconds' }).optional() })
const releaseSchema = z.object({ grant: grantSchema })

export function addLeaseRoutes(router: Router, context: LeaseRoutesContext): void {
  for (const prefix of ['', '/spaces/{space}']) {
    router.post(`${prefix}/leases/acquire`, async (ctx) => {
      const { space, caller } = authorize(ctx, context)
      const body = parseBody(acquireSchema, await ctx.body())
      checkActingAs(caller, body.holder)
      const grant = await context.leases.acquire({ space, key: body.key, holder: body.holder, duration: body.duration })
      return { grant }
    })
    router.post(`${prefix}/leases/renew`, async (ctx) => {
      const { space, caller } = authorize(ctx, context)
      const body = parseBody(renewSchema, await ctx.body())
      checkGrant(body.grant, space, caller)
      const grant = await context.leases.renew(body.grant, body.duration)
      return { grant }
    })
    router.post(`${prefix}/leases/release`, async (ctx) => {
      const { space, caller } = authorize(ctx, context)
      const body = parseBody(releaseSchema, await ctx.body())
      checkGrant(body.grant, space, caller)
      const released = await context.leases.release(body.grant)
      return { released }
    })
    router.get(`${prefix}/leases`, async (ctx) => {
      const { space } = authorize(ctx, context)
      return { leases: await context.leases.live(space) }
    })
  }
}

function authorize(ctx: RequestContext, context: LeaseRoutesContext): { space: string; caller: Caller } {
  const caller = context.caller(ctx.req)
  const space = spaceParam(ctx, context.defaultSpace)
  checkSpaceAccess(caller, space)
  return { space, caller }
}

function checkGrant(grant: LeaseGrant, space: string, caller: Caller): void {
  if (grant.space !== space) throw new ChorusError('invalid_input', `the grant is for space ${grant.space}, not ${space}`)
  checkActingAs(caller, grant.holder)
}
