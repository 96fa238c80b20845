/**
 * The REST plumbing: a small router with `{param}` segments, JSON bodies read with a size limit, and errors as
 * JSON `{error, message}` with the status their `ChorusError` code maps to. Handlers throw; the router answers.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { ChorusError, type ChorusErrorCode } from '@chorus/sync'

/** Largest request body the REST API reads (bytes); bigger ones get 413 without being read. */
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024

const STATUS: Record<ChorusErrorCode, number> = {
  invalid_input: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  locked: 409,
  version_conflict: 409,
  closed: 409,
  lease_lost: 409,
  fenced: 409,
  too_large: 413,
  rate_limited: 429,
  corrupt: 500,
  lease_unavailable: 503,
}

export const statusOf = (code: ChorusErrorCode): number => STATUS[code]

export interface RequestContext {
  req: IncomingMessage
  url: URL
  params: Record<string, string>
  /** The parsed JSON body (`{}` for an empty body); throws 400/413 as a ChorusError. */
  body(): Promise<unknown>
}

export type Handler = (ctx: RequestContext) => unknown

interface Route {
  method: string
  parts: string[]
  handler: Handler
}

export class Router {
  private readonly routes: Route[] = []
  private readonly maxBodyBytes: number

  constructor(options: { maxBodyBytes?: number } = {}) {
    this.maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES
  }

  get(path: string, handler: Handler): this {
    this.routes.push({ method: 'GET', parts: split(path), handler })
    return this
  }

  post(path: string, handler: Handler): this {
    this.routes.push({ method: 'POST', parts: split(path), handler })
    return this
  }

  /** The route for `path` and `method`: a handler, `405` with the allowed methods, or undefined. */
  match(method: string, path: string): { handler: Handler; params: Record<string, string> } | { allow: string[] } | undefined {
    const segments = split(path)
    const allow: string[] = []
    for (const r of this.routes) {
      const params = matchParts(r.parts, segments)
      if (params === undefined) continue
      if (r.method === method || (method === 'HEAD' && r.method === 'GET')) return { handler: r.handler, params }
      allow.push(r.method)
    }
    return allow.length > 0 ? { allow } : undefined
  }

  /** Runs the handler and writes its result as JSON (200), or the error it threw. */
  async run(handler: Handler, params: Record<string, string>, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    let bodyRead: Promise<unknown> | undefined
    const ctx: RequestContext = { req, url, params, body: () => (bodyRead ??= readJsonBody(req, this.maxBodyBytes)) }
    try {
      const result = await handler(ctx)
      if (bodyRead === undefined) req.resume()
      sendJson(res, 200, result)
    } catch (e) {
      if (bodyRead === undefined) req.resume()
      sendError(res, e)
    }
  }
}

export function sendError(res: ServerResponse, e: unknown): void {
  if (e instanceof ChorusError) {
    const body: Record<string, unknown> = { error: e.code, message: e.message }
    if (Object.keys(e.details).length > 0) body.details = e.details
    sendJson(res, statusOf(e.code), body)
  } else {
    sendJson(res, 500, { error: 'internal', message: 'the relay could not handle this request' })
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) return
  const text = JSON.stringify(body ?? null)
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    ...headers,
  })
  res.end(text)
}

/** Reads and parses a JSON body, refusing bodies over `limit` bytes (413) and bad JSON (400). */
export async function readJsonBody(req: IncomingMessage, limit: number): Promise<unknown> {
  const declared = Number(req.headers['content-length'])
  if (Number.isFinite(declared) && declared > limit) {
    req.resume()
    throw new ChorusError('too_large', `the request body is ${declared} bytes; the limit is ${limit} bytes`, { limit })
  }
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > limit) {
      req.resume()
      throw new ChorusError('too_large', `the request body is over the limit of ${limit} bytes`, { limit })
    }
    chunks.push(chunk)
  }
  const text = Buffer.concat(chunks).toString('utf8')
  if (text.trim() === '') return {}
  try {
    return JSON.parse(text) as unknown
  } catch {
    throw new ChorusError('invalid_input', 'the request body is not valid JSON')
  }
}

const split = (path: string): string[] => path.split('/').filter((s) => s !== '')

function matchParts(parts: string[], segments: string[]): Record<string, string> | undefined {
  if (parts.length !== segments.length) return undefined
  const params: Record<string, string> = {}
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i] as string
    const s = segments[i] as string
    if (p.startsWith('{') && p.endsWith('}')) {
      let value: string
      try {
        value = decodeURIComponent(s)
      } catch {
        return undefined
      }
      params[p.slice(1, -1)] = value
    } else if (p !== s) return undefined
  }
  return params
}
