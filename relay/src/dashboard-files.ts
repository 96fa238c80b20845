/**
 * Serves the built dashboard (dashboard/dist) at `/`: the page, its hashed assets (cached for good), the service
 * worker and its precache list (always revalidated, so a new build reaches browsers).
 */
import { readFile, stat } from 'node:fs/promises'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { extname, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'

/** Where `npm run build` puts the dashboard, relative to this file. */
export const DEFAULT_DASHBOARD_DIR = fileURLToPath(new URL('../../dashboard/dist/', import.meta.url))

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.webmanifest': 'application/manifest+json',
  '.woff2': 'font/woff2',
}

// The page talks only to its own origin (REST, WebSocket sync and leases); inline style attributes are Preact's.
const CONTENT_SECURITY_POLICY =
  "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self' 'unsafe-inline'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"

export class DashboardFiles {
  readonly dir: string

  constructor(dir: string) {
    this.dir = resolve(dir)
  }

  /** The file a request path names, or undefined when it names nothing the dashboard could hold. */
  private fileOf(path: string): string | undefined {
    let decoded: string
    try {
      decoded = decodeURIComponent(path)
    } catch {
      return undefined
    }
    if (decoded.includes('\0')) return undefined
    const relative = decoded === '/' ? 'index.html' : decoded.slice(1)
    const file = resolve(this.dir, relative)
    // Nothing outside the folder, whatever `..` the path holds.
    return file.startsWith(this.dir + sep) ? file : undefined
  }

  /** Answers a GET or HEAD for a dashboard file; false when there is no such file (the caller answers 404). */
  async serve(req: IncomingMessage, res: ServerResponse, path: string): Promise<boolean> {
    const file = this.fileOf(path)
    if (file === undefined) return false
    let body: Buffer
    try {
      if (!(await stat(file)).isFile()) return false
      body = await readFile(file)
    } catch {
      return false
    }
    const immutable = path.startsWith('/assets/') && !path.endsWith('.map')
    res.writeHead(200, {
      'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
      'content-length': body.length,
      'cache-control': immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
      'x-content-type-options': 'nosniff',
      ...(file.endsWith('.html') ? { 'content-security-policy': CONTENT_SECURITY_POLICY, 'referrer-policy': 'no-referrer' } : {}),
    })
    res.end(req.method === 'HEAD' ? undefined : body)
    return true
  }
}
