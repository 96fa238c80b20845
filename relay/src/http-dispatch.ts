/**
 * Where an HTTP request goes: a WebSocket endpoint's path is answered 426 (or 400 when malformed, as its upgrade
 * would be refused: upgrade.ts), a REST route runs (405 for a method it does not take, 429 over the client
 * address's rate limit, except for the status routes monitors poll), any other GET is a file of the dashboard, and
 * everything else is a 404 with a JSON body.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Clock } from '@chorus/sync'
import type { DashboardFiles } from './dashboard-files.ts'
import { RateLimiter, type RateLimit } from './rate-limit.ts'
import { sendJson, type Router } from './rest/http.ts'
import { UNLIMITED_PATHS } from './rest/status-routes.ts'
import { endpointOf, pathOf } from './upgrade.ts'

export interface HttpDispatchOptions {
  router: Router
  dashboard: DashboardFiles | undefined
  defaultSpace: string
  rateLimit: RateLimit
  clock: Clock
  /** True while the relay answers no request (not started yet, or stopped). */
  closed: () => boolean
}

const TOO_MANY = { error: 'rate_limited', message: 'too many requests from this address; slow down' }

export class HttpDispatch {
  private readonly options: HttpDispatchOptions
  /** REST rate limits per client address (a map that is pruned when it grows). */
  private readonly limiters = new Map<string, RateLimiter>()

  constructor(options: HttpDispatchOptions) {
    this.options = options
  }

  /** The server's `request` listener. */
  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    const path = pathOf(req)
    if (path === undefined || this.options.closed()) {
      req.resume()
      sendJson(res, path === undefined ? 400 : 503, path === undefined ? { error: 'invalid_input', message: 'bad request URL' } : { error: 'unavailable', message: 'the relay is stopping' })
      return
    }
    const endpoint = endpointOf(path, this.options.defaultSpace)
    if (endpoint !== undefined) {
      req.resume()
      if (endpoint.kind === 'malformed') sendJson(res, 400, { error: 'invalid_input', message: endpoint.error })
      else sendJson(res, 426, { error: 'upgrade_required', message: `connect to ${path} with a WebSocket` }, { upgrade: 'websocket' })
      return
    }
    const { router, dashboard } = this.options
    const route = router.match(req.method ?? 'GET', path)
    if (route === undefined) {
      req.resume()
      if ((req.method === 'GET' || req.method === 'HEAD') && dashboard !== undefined) {
        void this.serveDashboard(dashboard, req, res, path)
        return
      }
      sendJson(res, 404, { error: 'not_found', message: `no route for ${req.method ?? 'GET'} ${path}` })
      return
    }
    if ('allow' in route) {
      req.resume()
      sendJson(res, 405, { error: 'method_not_allowed', message: `${req.method ?? ''} is not allowed on ${path}` }, { allow: route.allow.join(', ') })
      return
    }
    if (!UNLIMITED_PATHS.has(path) && !this.limiter(req).take()) {
      req.resume()
      sendJson(res, 429, TOO_MANY, { 'retry-after': '1' })
      return
    }
    void router.run(route.handler, route.params, req, res, new URL(req.url ?? '/', 'http://relay'))
  }

  private async serveDashboard(files: DashboardFiles, req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    if (!this.limiter(req).take()) {
      sendJson(res, 429, TOO_MANY, { 'retry-after': '1' })
      return
    }
    if (await files.serve(req, res, path)) return
    const message = path === '/' ? `the dashboard is not built in ${files.dir}: run npm run build` : `no route for ${req.method ?? 'GET'} ${path}`
    sendJson(res, 404, { error: 'not_found', message })
  }

  private limiter(req: IncomingMessage): RateLimiter {
    const address = req.socket.remoteAddress ?? 'unknown'
    let limiter = this.limiters.get(address)
    if (limiter === undefined) {
      // Full buckets are the same as new ones: forgetting them all now and then bounds the map.
      if (this.limiters.size > 10_000) this.limiters.clear()
      limiter = new RateLimiter(this.options.rateLimit, this.options.clock)
      this.limiters.set(address, limiter)
    }
    return limiter
  }
}
