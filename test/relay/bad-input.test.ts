/**
 * Hostile or broken clients: random bytes, text frames, unknown message types, oversized frames and bad space
 * names neither crash the relay nor disturb a healthy provider on the same space.
 */
import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { encodeSyncStep1, encodeSyncUpdate } from '@chorus/sync'
import { CloseCode, DEFAULT_MAX_FRAME_BYTES } from '@chorus/relay'
import { closed, fixturePerTest, health, opened, synced } from '../support/relay.ts'
import { nextEvent, until, updates } from '../support/wait.ts'

const f = fixturePerTest()

/** Deterministic bytes (mulberry32), so a failure can be replayed. */
function randomBytes(seed: number, length: number): Uint8Array {
  let s = seed >>> 0
  const out = new Uint8Array(length)
  for (let i = 0; i < length; i++) {
    s = (s + 0x6d2b79f5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    out[i] = (t ^ (t >>> 14)) & 0xff
  }
  return out
}

/** Two providers on `space` that sync; `check` proves they still do. */
async function healthyPair(url: string, space: string) {
  const a = f.provider(url, space)
  const b = f.provider(url, space)
  await Promise.all([synced(a), synced(b)])
  let n = 0
  const check = async (): Promise<void> => {
    const value = `write ${++n}`
    a.doc.getMap('state').set('probe', value)
    await until(() => b.doc.getMap('state').get('probe') === value, `b sees ${value}`, { on: updates(b.doc) })
  }
  return { a, b, check }
}

describe('relay under bad input', () => {
  it('ignores frames of random bytes and keeps syncing a healthy provider', async () => {
    const { url } = await f.startRelay()
    const { check } = await healthyPair(url, 'team')
    const raw = f.raw(url, '/sync/team')
    await opened(raw)
    // Nine frames: under the malformed limit whatever they decode to, so the connection may stay open.
    for (let seed = 1; seed <= 9; seed++) raw.send(randomBytes(seed, 1 + seed * 37))
    raw.send(new Uint8Array([0, 1])) // a sync step 2 with its payload missing
    await check()
    expect((await health(url)).status).toBe('ok')
  })

  it('closes a connection after 10 malformed frames with 1003', async () => {
    const { url } = await f.startRelay()
    const { check } = await healthyPair(url, 'team')
    const raw = f.raw(url, '/sync/team')
    await opened(raw)
    const closing = closed(raw)
    raw.send('a text frame') // y-protocols messages are binary
    for (let i = 0; i < 9; i++) raw.send(new Uint8Array([99, i])) // unknown message type
    expect(await closing).toEqual({ code: CloseCode.unsupportedData, reason: 'too many malformed messages' })
    await check()
  })

  it('refuses a frame over maxFrameBytes with 1009 (default 16 MiB) and keeps serving others', async () => {
    expect(DEFAULT_MAX_FRAME_BYTES).toBe(16 * 1024 * 1024)
    const { url } = await f.startRelay({ maxFrameBytes: 64 * 1024 })
    const { check } = await healthyPair(url, 'team')
    const raw = f.raw(url, '/sync/team')
    await opened(raw)
    const closing = closed(raw)
    const doc = new Y.Doc()
    doc.getText('t').insert(0, 'x'.repeat(100 * 1024))
    raw.send(encodeSyncUpdate(Y.encodeStateAsUpdate(doc)))
    expect((await closing).code).toBe(CloseCode.tooLarge)
    await check()

    // A frame just under the limit is fine.
    const ok = f.raw(url, '/sync/team')
    await opened(ok)
    const small = new Y.Doc()
    small.getMap('state').set('blob', 'y'.repeat(60 * 1024))
    ok.send(encodeSyncStep1(small))
    ok.send(encodeSyncUpdate(Y.encodeStateAsUpdate(small)))
    const reader = f.provider(url, 'team')
    await synced(reader)
    await until(() => (reader.doc.getMap('state').get('blob') as string | undefined)?.length === 60 * 1024, 'the blob arrives', { on: updates(reader.doc) })
  })

  it('refuses a bad space name with close code 4400 and a reason, which stops the stock client', async () => {
    const { url } = await f.startRelay()
    for (const path of ['/sync/bad%20name', '/sync/a%2Fb', `/sync/${'x'.repeat(129)}`, '/sync/', '/sync/%E0%A4%A']) {
      const raw = f.raw(url, path)
      const result = await closed(raw)
      expect(result.code, path).toBe(CloseCode.badRequest)
      expect(result.reason, path).toMatch(/invalid space name/)
    }
    const res = await fetch(`${url}/sync/bad%20name`)
    expect(res.status).toBe(400)
    expect(await res.json()).toMatchObject({ error: 'invalid_input' })

    // The stock provider takes 4400 as final: it reports 'closed' and does not retry.
    const p = f.provider(url, 'bad name')
    const [event] = await nextEvent<[{ code: number; reason: string }]>(p, 'closed')
    expect(event.code).toBe(CloseCode.badRequest)
    expect(p.shouldConnect).toBe(false)
    expect((await health(url)).spaces).toBe(0)
  })

  it('answers unknown routes and WebSocket paths with 404 JSON', async () => {
    const { url } = await f.startRelay()
    const res = await fetch(`${url}/nope`)
    expect(res.status).toBe(404)
    expect(res.headers.get('content-type')).toMatch(/^application\/json/)
    expect(await res.json()).toMatchObject({ error: 'not_found' })

    const raw = f.raw(url, '/elsewhere/team')
    const [, response] = await nextEvent<[unknown, { statusCode?: number }]>(raw, 'unexpected-response')
    const status = response.statusCode ?? 0
    expect(status).toBe(404)

    expect((await fetch(`${url}/sync/team`)).status).toBe(426)
    expect((await fetch(`${url}/health`, { method: 'POST' })).status).toBe(405)
  })
})
