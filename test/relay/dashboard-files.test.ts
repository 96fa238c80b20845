/**
 * The relay serves the built dashboard: its page at `/` with a Content-Security-Policy, hashed assets cached for
 * good, nothing outside its folder, and a clear 404 when it is not built.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { request } from 'node:http'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { fixturePerTest } from '../support/relay.ts'
import { tempDir } from '../support/temp.ts'

const f = fixturePerTest()

/** A built dashboard in a temporary folder, next to a file that must not be served. */
const builtDashboard = (): string => {
  const root = tempDir('chorus-dashboard-')
  writeFileSync(join(root, 'secret.txt'), 'not for the web')
  const dist = join(root, 'dist')
  mkdirSync(join(dist, 'assets'), { recursive: true })
  writeFileSync(join(dist, 'index.html'), '<!doctype html><title>Chorus</title>')
  writeFileSync(join(dist, 'assets', 'index-abc123.js'), 'console.log(1)')
  writeFileSync(join(dist, 'sw.js'), 'self.x = 1')
  return dist
}

/** A raw GET (or other method) that sends the path exactly as written, `..` included. */
const raw = (url: string, path: string, method = 'GET'): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> =>
  new Promise((resolve, reject) => {
    const u = new URL(url)
    const req = request({ host: u.hostname, port: u.port, path, method }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (body += c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
    })
    req.on('error', reject)
    req.end()
  })

describe('the dashboard files', () => {
  it('serves the page, its assets and the service worker, each with the right headers', async () => {
    const { url } = await f.startRelay({ dashboard: builtDashboard(), p2p: false })
    const page = await raw(url, '/')
    expect(page.status).toBe(200)
    expect(page.body).toContain('<title>Chorus</title>')
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8')
    expect(page.headers['cache-control']).toBe('no-cache')
    expect(page.headers['content-security-policy']).toContain("default-src 'self'")
    expect(page.headers['x-content-type-options']).toBe('nosniff')
    const asset = await raw(url, '/assets/index-abc123.js')
    expect([asset.status, asset.body, asset.headers['content-type']]).toEqual([200, 'console.log(1)', 'text/javascript; charset=utf-8'])
    expect(asset.headers['cache-control']).toContain('immutable')
    const worker = await raw(url, '/sw.js')
    expect([worker.status, worker.headers['cache-control']]).toEqual([200, 'no-cache'])
    const head = await raw(url, '/', 'HEAD')
    expect([head.status, head.body, head.headers['content-length']]).toEqual([200, '', String('<!doctype html><title>Chorus</title>'.length)])
    // The API is untouched.
    expect((await raw(url, '/health')).status).toBe(200)
  })

  it('serves nothing outside its folder and answers unknown files with a JSON 404', async () => {
    const { url } = await f.startRelay({ dashboard: builtDashboard(), p2p: false })
    for (const path of ['/../secret.txt', '/%2e%2e/secret.txt', '/assets/..%2f..%2fsecret.txt', '/%00', '/%E0%A4%A', '/missing.js', '/assets/']) {
      const res = await raw(url, path)
      expect(res.status, path).toBe(404)
      expect(res.body, path).not.toContain('not for the web')
      expect(JSON.parse(res.body), path).toMatchObject({ error: 'not_found' })
    }
    const post = await raw(url, '/', 'POST')
    expect(post.status).toBe(404)
  })

  it('says how to build the dashboard when it is missing, and serves none when switched off', async () => {
    const empty = tempDir('chorus-dashboard-')
    const { url } = await f.startRelay({ dashboard: empty, p2p: false })
    const res = await raw(url, '/')
    expect(res.status).toBe(404)
    const body = JSON.parse(res.body) as { error: string; message: string }
    expect(body.error).toBe('not_found')
    expect(body.message).toContain('npm run build')

    const { url: off } = await f.startRelay({ dashboard: false, p2p: false, port: 0 })
    const none = await raw(off, '/')
    expect(none.status).toBe(404)
    expect(JSON.parse(none.body)).toMatchObject({ message: 'no route for GET /' })
  })
})
