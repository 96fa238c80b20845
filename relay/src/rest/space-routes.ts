/**
 * Routes of a space, each registered once and served at `PATH` (the relay's default space) and at
 * `/spaces/{space}PATH`. Before a handler runs, the request's caller is known and may use the space the path names
 * (access.ts), and a body given a schema is parsed (a bad one refused with 400), so route files hold only their
 * routes.
 */
import type { z } from 'zod'
import { checkSpaceAccess, type Access, type Caller } from '../access.ts'
import type { RequestContext, Router } from './http.ts'
import { parseBody, spaceParam } from './params.ts'

export interface SpaceRequest<B = undefined> {
  caller: Caller
  /** The space the path names (the default one without `/spaces/{space}`), which the caller may use. */
  space: string
  /** The parsed body, on a route given a schema. */
  body: B
  ctx: RequestContext
}

export type SpaceHandler<B = undefined> = (request: SpaceRequest<B>) => unknown

export class SpaceRoutes {
  private readonly router: Router
  private readonly access: Access
  private readonly defaultSpace: string

  constructor(router: Router, access: Access, defaultSpace: string) {
    this.router = router
    this.access = access
    this.defaultSpace = defaultSpace
  }

  get(path: string, handler: SpaceHandler): this {
    return this.add('get', path, undefined, handler)
  }

  /** A POST route; with `schema`, its handler gets the body parsed with it. */
  post(path: string, handler: SpaceHandler): this
  post<S extends z.ZodType>(path: string, schema: S, handler: SpaceHandler<z.infer<S>>): this
  post(path: string, schemaOrHandler: z.ZodType | SpaceHandler, handler?: SpaceHandler<unknown>): this {
    if (typeof schemaOrHandler === 'function') return this.add('post', path, undefined, schemaOrHandler)
    return this.add('post', path, schemaOrHandler, handler as SpaceHandler<unknown>)
  }

  private add(method: 'get' | 'post', path: string, schema: z.ZodType | undefined, handler: SpaceHandler<never>): this {
    const run = async (ctx: RequestContext): Promise<unknown> => {
      const caller = this.access.caller(ctx.req)
      const space = spaceParam(ctx, this.defaultSpace)
      checkSpaceAccess(caller, space)
      const body: unknown = schema === undefined ? undefined : parseBody(schema, await ctx.body())
      return (handler as SpaceHandler<unknown>)({ caller, space, body, ctx })
    }
    this.router[method](path, run)
    this.router[method](`/spaces/{space}${path}`, run)
    return this
  }
}
