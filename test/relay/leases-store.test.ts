/**
 * The relay's lease state on disk: its Ed25519 key (relay-key.json) and the durable token counters
 * (leases.sqlite) survive restarts; its key reaches clients through `/capabilities` and each space's `meta`.
 */
import { statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { createGrantVerifier, ManualClock, type LeaseGrant } from '@chorus/sync'
import { SqliteStore } from '@chorus/sync/sqlite'
import { loadOrCreateRelayKey, RELAY_KEY_FILE, RELAY_VERSION, STORE_FILE, type Logger, type RelayCapabilities } from '@chorus/relay'
import { peerKeyFromSeed } from '@chorus/p2p'
import { fixturePerTest, synced } from '../support/relay.ts'
import { until, updates } from '../support/wait.ts'

const f = fixturePerTest()

const request = (holder: string, key = 'task:t-1') => ({ space: 'team', key, holder, duration: 1_000 })

describe('relay key', () => {
  it('survives a restart: the same public key, from a file only the owner can read', async () => {
    const first = await f.startRelay()
    const key = first.relay.publicKey
    expect(key).toMatch(/^[A-Za-z0-9_-]{43}$/)
    await first.relay.stop()
    if (process.platform !== 'win32') expect(statSync(join(f.dir, RELAY_KEY_FILE)).mode & 0o777).toBe(0o600)

    const second = await f.startRelay()
    expect(second.relay.publicKey).toBe(key)
    expect(loadOrCreateRelayKey(f.dir).publicKey).toBe(key)
  })

  it('a corrupt key file makes start fail with a clear message and is left in place', async () => {
    const path = join(f.dir, RELAY_KEY_FILE)
    writeFileSync(path, '{"version":1,"secretKey":"too-short"}')
    await expect(f.startRelay()).rejects.toThrow(/relay key file .*relay-key\.json is corrupt .*refusing to replace it/)
    writeFileSync(path, 'not json')
    await expect(f.startRelay()).rejects.toThrow(/is corrupt \(not JSON\)/)
    expect(() => loadOrCreateRelayKey(f.dir)).toThrow(/is corrupt/)
  })
})

describe('relay lease arbiter', () => {
  it('L2: tokens strictly increase per key across relay restarts', async () => {
    const clock = new ManualClock()
    const first = await f.startRelay({ clock })
    const tokens: number[] = []
    for (let i = 0; i < 3; i++) {
      const grant = await first.relay.leases.acquire(request('alice'))
      tokens.push(grant.token)
      expect(await first.relay.leases.release(grant)).toBe(true)
    }
    const other = await first.relay.leases.acquire(request('bob', 'task:t-2'))
    expect(tokens).toEqual([1, 2, 3])
    expect(other.token).toBe(1) // per key: another key has its own sequence
    await first.relay.stop()

    const second = await f.startRelay({ clock })
    // The restarted relay never reuses a token, and still knows that bob holds task:t-2 (L1 across restarts).
    const after = await second.relay.leases.acquire(request('carol'))
    expect(after.token).toBe(4)
    await expect(second.relay.leases.acquire(request('carol', 'task:t-2'))).rejects.toThrow(/held by bob/)
    clock.advance(1_000)
    expect((await second.relay.leases.acquire(request('carol', 'task:t-2'))).token).toBe(2)
  })

  it('L7: a grant from the relay verifies against the relay public key', async () => {
    const { relay } = await f.startRelay({ clock: new ManualClock() })
    const grant = await relay.leases.acquire(request('alice'))
    const publicKey = relay.publicKey ?? ''
    const verify = createGrantVerifier(publicKey)
    expect(verify(grant)).toBe(true)
    const forged: LeaseGrant = { ...grant, token: grant.token + 1 }
    expect(verify(forged)).toBe(false)
  })

  it('is unavailable once the relay has stopped', async () => {
    const { relay } = await f.startRelay()
    await relay.stop()
    expect(() => relay.leases).toThrow(/not running/)
  })
})

describe('relay key distribution', () => {
  it('GET /capabilities names the relay, its protocols, its key and its limits', async () => {
    const { relay, url } = await f.startRelay({ maxFrameBytes: 64 * 1024, maxBodyBytes: 4096, rateLimit: { ratePerSecond: 50, burst: 100 } })
    const res = await fetch(`${url}/capabilities`)
    expect(res.status).toBe(200)
    const body = (await res.json()) as RelayCapabilities
    expect(body).toEqual({
      name: 'chorus-relay',
      version: RELAY_VERSION,
      protocols: ['y-websocket', 'chorus-leases-v1', 'chorus-hub-rest-v1', 'chorus-events-v1'],
      relayKey: relay.publicKey,
      auth: 'none',
      defaultSpace: 'default',
      limits: { maxFrameBytes: 64 * 1024, maxBodyBytes: 4096, maxLeaseFrameBytes: 16 * 1024, rateLimit: { ratePerSecond: 50, burst: 100 } },
      p2p: { peerId: expect.any(String) as unknown, multiaddrs: expect.any(Array) as unknown, protocols: ['/chorus/sync/1.0.0'] },
    })
    // The relay's libp2p identity is its signing key: its peer id carries the key that vouches for members.
    expect((await peerKeyFromSeed(loadOrCreateRelayKey(f.dir).secretKey)).peerId).toBe(body.p2p?.peerId)
    expect(body.p2p?.multiaddrs.every((a) => a.startsWith('/ip4/127.0.0.1/tcp/') && a.endsWith(`/p2p/${body.p2p?.peerId ?? ''}`))).toBe(true)
    expect(RELAY_VERSION).toMatch(/^\d+\.\d+\.\d+/)
    expect((await fetch(`${url}/capabilities`, { method: 'POST' })).status).toBe(405)
  })

  it('a space loaded through a stock y-websocket provider gets meta.relayKey = the relay key', async () => {
    const { relay, url } = await f.startRelay()
    const provider = f.provider(url, 'team')
    await synced(provider)
    await until(() => provider.doc.getMap('meta').get('relayKey') === relay.publicKey, 'the provider sees meta.relayKey', { on: updates(provider.doc) })
    // A restricted-channel document is not a space: it gets no key.
    const bot = new Y.Map<unknown>()
    provider.doc.getMap('participants').set('bot', bot)
    bot.set('kind', 'ai')
    const channel = f.provider(url, encodeURIComponent('team#ai-only'), new Y.Doc(), { participant: 'bot' })
    await synced(channel)
    expect(channel.doc.getMap('meta').get('relayKey')).toBeUndefined()
  })

  it('a space that names another key keeps it, with a warning', async () => {
    const doc = new Y.Doc()
    doc.getMap('meta').set('relayKey', 'someone-else')
    const store = new SqliteStore(join(f.dir, STORE_FILE))
    await store.append('team', Y.encodeStateAsUpdate(doc))
    await store.close()
    doc.destroy()
    const warnings: string[] = []
    const logger: Logger = { info: () => undefined, error: () => undefined, warn: (message) => void warnings.push(message) }

    const { url } = await f.startRelay({ logger })
    const provider = f.provider(url, 'team')
    await synced(provider)
    expect(provider.doc.getMap('meta').get('relayKey')).toBe('someone-else')
    expect(warnings).toEqual([expect.stringContaining('another arbiter key') as unknown as string])
  })
})
