/**
 * A path means the same over HTTP and over a WebSocket upgrade: an endpoint (HTTP 426; the upgrade is served), a
 * malformed endpoint path (HTTP 400; the upgrade is closed with 4400, which the stock client takes as final), or
 * no endpoint (404 both ways).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { CloseCode } from '@chorus/relay'
import { fixture, type Fixture } from '../support/relay.ts'

let f: Fixture
beforeEach(() => {
  f = fixture()
})
afterEach(async () => {
  await f.teardown()
})

/** What an upgrade to `path` gets: an HTTP status, a close code, or 'message' from a socket that speaks first. */
function upgradeAnswer(url: string, path: string): Promise<number | 'message'> {
  const ws = f.raw(url, path)
  return new Promise((resolve) => {
    ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0))
    ws.once('message', () => resolve('message'))
    ws.once('close', (code) => resolve(code))
  })
}

const MALFORMED = [
  '/ws/a/b',
  '/ws/',
  '/ws/%E0%A4%A',
  '/spaces/team/ws/a/b',
  '/spaces/team/ws/',
  '/spaces/team%23ai-only/ws/alice',
  '/spaces/bad%20name/ws/alice',
  '/sync/a%2Fb',
  '/sync/',
]

describe('WebSocket endpoints over HTTP and upgrade', () => {
  it('a malformed endpoint path is 400 over HTTP and closed with 4400 on upgrade, saying why', async () => {
    const { url } = await f.startRelay({ dashboard: false })
    for (const path of MALFORMED) {
      const res = await fetch(`${url}${path}`)
      expect(res.status, path).toBe(400)
      expect(await res.json(), path).toMatchObject({ error: 'invalid_input', message: expect.any(String) as unknown })
      expect(await upgradeAnswer(url, path), path).toBe(CloseCode.badRequest)
    }
  })

  it('a path that is no endpoint is 404 both ways', async () => {
    const { url } = await f.startRelay({ dashboard: false })
    for (const path of ['/ws', '/spaces/team/ws', '/elsewhere/team', '/sync']) {
      expect((await fetch(`${url}${path}`)).status, path).toBe(404)
      expect(await upgradeAnswer(url, path), path).toBe(404)
    }
  })

  it('an endpoint is 426 over HTTP and served on upgrade', async () => {
    const { url } = await f.startRelay({ dashboard: false })
    const served: Array<[string, number | 'message']> = [
      ['/sync/team', 'message'], // sync step 1 comes first
      ['/ws/nobody', 4404], // the events endpoint, for an entity that has not registered
      ['/spaces/team/ws/nobody', 4404],
    ]
    for (const [path, answer] of served) {
      const res = await fetch(`${url}${path}`)
      expect(res.status, path).toBe(426)
      expect(res.headers.get('upgrade'), path).toBe('websocket')
      expect(await upgradeAnswer(url, path), path).toBe(answer)
    }
    expect((await fetch(`${url}/leases`)).status).toBe(426)
  })
})
