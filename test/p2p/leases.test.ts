/**
 * Leases from libp2p peers: the relay's lease service over `/chorus/lease/1.0.0`, with the same rules as over its
 * `/leases` WebSocket. A real relay on a manual clock, real peers on loopback TCP.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { generateSecretKey, ManualClock, type LeaseGrant, type RelayLeaseClient } from '@chorus/sync'
import { ChorusPeer, ephemeralPeerKey, issueCredential, parseMembership, peerLeaseClient, type Membership, type RelayPeer } from '@chorus/p2p'
import type { RelayCapabilities } from '@chorus/relay'
import { codeOf } from '../support/errors.ts'
import { fixturePerTest } from '../support/relay.ts'
import { until } from '../support/wait.ts'
import { hub } from '../relay/rest-helpers.ts'

const f = fixturePerTest()
const peers: ChorusPeer[] = []
const clients: RelayLeaseClient[] = []
afterEach(async () => {
  for (const c of clients.splice(0)) c.close()
  for (const p of peers.splice(0)) await p.stop()
})

const post = async (url: string, path: string, body: unknown): Promise<Record<string, unknown>> => {
  const reply = await hub(url).post(path, body)
  expect(reply.status, path).toBe(200)
  return reply.body
}

/** A peer acting as `id` in `space`, with its main-document membership, and the relay it would lease from. */
async function agent(url: string, space: string, id: string): Promise<{ peer: ChorusPeer; membership: Membership; relay: RelayPeer }> {
  await post(url, `/spaces/${space}/entities/register`, { entity_id: id, entity_type: 'ai_agent', name: id })
  const key = await ephemeralPeerKey()
  const got = await post(url, `/spaces/${space}/p2p/membership`, { peer_id: key.peerId, entity_id: id })
  const membership = parseMembership((got.memberships as unknown[])[0])
  const caps = (await (await fetch(`${url}/capabilities`)).json()) as RelayCapabilities
  const relay = { peerId: caps.p2p?.peerId ?? '', multiaddrs: caps.p2p?.multiaddrs ?? [] }
  const peer = await ChorusPeer.start({ key, mdns: false, pubsubDiscovery: false })
  peers.push(peer)
  return { peer, membership, relay }
}

const client = (a: Awaited<ReturnType<typeof agent>>, clock?: ManualClock): RelayLeaseClient => {
  const c = peerLeaseClient(a.peer, { relay: a.relay, membership: a.membership, clock })
  clients.push(c)
  return c
}

describe('leases over libp2p', () => {
  it('acquire, conflict, renew, release: one holder per key (L1), tokens increasing (L2), grants signed by the relay key (L7)', async () => {
    const { relay, url } = await f.startRelay({ clock: new ManualClock() })
    const alice = client(await agent(url, 'team', 'alice'))
    const bob = client(await agent(url, 'team', 'bob'))
    const first = await alice.acquire({ space: 'team', key: 'task:t1', holder: 'alice', duration: 10_000 })
    expect(first).toMatchObject({ space: 'team', key: 'task:t1', holder: 'alice' })
    expect(await alice.publicKey()).toBe(relay.publicKey)
    expect(await codeOf(bob.acquire({ space: 'team', key: 'task:t1', holder: 'bob', duration: 10_000 }))).toBe('locked')
    const renewed = await alice.renew(first, 20_000)
    expect(renewed.token).toBe(first.token)
    await alice.release(renewed)
    const second = await bob.acquire({ space: 'team', key: 'task:t1', holder: 'bob', duration: 10_000 })
    expect(second.token).toBeGreaterThan(first.token)
    // The same arbiter as the WebSocket and REST: the grant is live there too.
    const live = (await (await fetch(`${url}/spaces/team/leases`)).json()) as { leases: Array<{ grant: LeaseGrant }> }
    expect(live.leases.map(({ grant }) => [grant.key, grant.holder, grant.token])).toEqual([['task:t1', 'bob', second.token]])
  })

  it('a peer acts only as the participant and in the space its credential names', async () => {
    const { url } = await f.startRelay()
    const alice = client(await agent(url, 'team', 'alice'))
    expect(await codeOf(alice.acquire({ space: 'team', key: 'k', holder: 'mallory', duration: 5_000 }))).toBe('forbidden')
    expect(await codeOf(alice.acquire({ space: 'other', key: 'k', holder: 'alice', duration: 5_000 }))).toBe('forbidden')
    // A credential the relay never signed gets no session at all.
    const stranger = await agent(url, 'team', 'stranger')
    const forged = { credential: issueCredential({ doc: 'team', peer: stranger.peer.peerId, participant: 'stranger', kind: 'ai' }, generateSecretKey()), key: stranger.membership.key }
    const rogue = client({ ...stranger, membership: forged })
    expect(await codeOf(rogue.acquire({ space: 'team', key: 'k', holder: 'stranger', duration: 5_000 }))).toBe('lease_unavailable')
    expect(await codeOf(alice.acquire({ space: 'team', key: 'k', holder: 'alice', duration: 5_000 }))).toBe('ok')
  })

  it('the holder is pushed lease_lost when its grant expires on the relay (L6)', async () => {
    const clock = new ManualClock()
    const { relay, url } = await f.startRelay({ clock })
    const alice = client(await agent(url, 'team', 'alice'), new ManualClock())
    const lost: Array<[number, string]> = []
    alice.onLost((grant, reason) => lost.push([grant.token, reason]))
    const grant = await alice.acquire({ space: 'team', key: 'lock:r', holder: 'alice', duration: 5_000 })
    clock.advance(5_001)
    await relay.leases.sweep()
    await until(() => lost.length === 1, 'lease_lost over the libp2p stream', { on: (wake) => alice.onLost(wake) })
    expect(lost).toEqual([[grant.token, 'expired']])
  })

  it('without the relay, acquire fails at once with lease_unavailable (L10)', async () => {
    const { relay, url } = await f.startRelay()
    const a = await agent(url, 'team', 'alice')
    const alice = client(a)
    await relay.stop()
    expect(await codeOf(alice.acquire({ space: 'team', key: 'k', holder: 'alice', duration: 5_000 }))).toBe('lease_unavailable')
    expect(alice.heldGrants()).toEqual([])
  })
})
