/**
 * The REST plumbing: a small router with `{param}` segments, JSON bodies read with a size limit, and errors as
 * JSON `{error, message}` with the status their `ChorusError` code maps to. Handlers throw; the router answers.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { ChorusError, type ChorusErrorCode } from '@chorus/sync'
import { silentLogger, type Logger } from '../logger.ts'

/** Largest request body the REST API reads (bytes); bigger ones get 413 without being read. */
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024
/**
 * Deepest nesting of arrays and objects a JSON body may have; deeper ones get 400. JSON.parse takes any depth, but
 * what handles the value next recurses (zod's recursive `jsonSchema`, Yjs, JSON.stringify) and would overflow the
 * stack, a RangeError that surfaced as a 500.
 */
export const MAX_JSON_DEPTH = 256

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
  /** For handlers that answer by themselves (what they return is then not written). */
  res: ServerResponse
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
  private readonly logger: Logger

  constructor(options: { maxBodyBytes?: number; logger?: Logger } = {}) {
    this.maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES
    this.logger = options.logger ?? silentLogger
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
    const ctx: RequestContext = { req, res, url, params, body: () => (bodyRead ??= readJsonBody(req, this.maxBodyBytes)) }
    try {
      const result = await handler(ctx)
      if (bodyRead === undefined) req.resume()
      sendJson(res, 200, result)
    } catch (e) {
      if (bodyRead === undefined) req.resume()
      // A ChorusError is the caller's doing; anything else is a bug here, and the log must show it.
      if (!(e instanceof ChorusError)) this.logger.error('a REST handler failed', { method: req.method, path: url.pathname, error: e })
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
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch {
    throw new ChorusError('invalid_input', 'the request body is not valid JSON')
  }
  if (nestedDeeperThan(text, MAX_JSON_DEPTH)) {
    throw new ChorusError('invalid_input', `the request body is nested more than ${MAX_JSON_DEPTH} levels deep`, { limit: MAX_JSON_DEPTH })
  }
  return body
}

/** Whether valid JSON `text` nests arrays and objects more than `limit` deep (brackets inside strings do not count). */
function nestedDeeperThan(text: string, limit: number): boolean {
  let depth = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === 0x5c) i++ // a backslash escapes the next character
      else if (c === 0x22) inString = false
    } else if (c === 0x22) inString = true
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > limit) return true
    } else if (c === 0x5d || c === 0x7d) depth--
  }
  return false
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
