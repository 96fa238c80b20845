/**
 * The lease rules L1–L10 (docs/LEASES.md), one `describe` each, asserted against a real relay on
 * 127.0.0.1 port 0 with a temporary data folder and a manual clock: over the `/leases` WebSocket (RelayLeaseClient),
 * over REST, and through Spaces that sync through the same relay. Expiry is driven by the clock and
 * `relay.leases.sweep()`, never by waiting.
 */
import { once } from 'node:events'
import { join } from 'node:path'
import { createServer } from 'node:net'
import { DatabaseSync } from 'node:sqlite'
import { afterEach, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import {
  ChorusError,
  connectSpace,
  createGrantSigner,
  createGrantVerifier,
  generateSecretKey,
  ManualClock,
  RelayLeaseClient,
  resolveGrant,
  Space,
  syncUrl,
  WebSocketTransport,
  type Clock,
  type LeaseGrant,
  type LeaseLossReason,
  type RecordedGrant,
  type RelayLeaseClientOptions,
  type Revision,
  type SpaceConnection,
} from '@chorus/sync'
import { Auth, LEASE_LEDGER_FILE, type Relay, type RelayCapabilities, type RelayOptions } from '@chorus/relay'
import { codeOf } from '../support/errors.ts'
import { fixturePerTest } from '../support/relay.ts'
import { spaceUpdates, until } from '../support/wait.ts'

const SPACE = 'team'

const f = fixturePerTest()
const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

/** A relay on a manual clock (and, for restarts, on a given port), with rate limits out of the way. */
async function startRelay(clock: ManualClock, options: RelayOptions = {}): Promise<{ relay: Relay; url: string; port: number }> {
  const { relay, url } = await f.startRelay({ clock, rateLimit: { ratePerSecond: 10_000, burst: 10_000 }, ...options })
  return { relay, url, port: Number(new URL(url).port) }
}

function leaseClient(url: string, options: Partial<RelayLeaseClientOptions> = {}): RelayLeaseClient {
  const client = new RelayLeaseClient({ relay: url, ...options })
  cleanups.push(() => client.close())
  return client
}

/** Every loss a client reports, in order. */
function losses(client: RelayLeaseClient): Array<{ grant: LeaseGrant; reason: LeaseLossReason }> {
  const seen: Array<{ grant: LeaseGrant; reason: LeaseLossReason }> = []
  client.onLost((grant, reason) => seen.push({ grant, reason }))
  return seen
}

/** The next loss a client reports. */
function nextLoss(client: RelayLeaseClient): Promise<{ grant: LeaseGrant; reason: LeaseLossReason }> {
  return new Promise((resolve) => {
    const stop = client.onLost((grant, reason) => {
      stop()
      resolve({ grant, reason })
    })
  })
}

interface RestReply {
  status: number
  body: Record<string, unknown>
}

async function rest(url: string, method: 'GET' | 'POST', path: string, body?: unknown, headers: Record<string, string> = {}): Promise<RestReply> {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })
  return { status: res.status, body: (await res.json()) as Record<string, unknown> }
}

const grantOf = (reply: RestReply): LeaseGrant => {
  if (reply.status !== 200) throw new Error(`expected a grant, got ${reply.status} ${JSON.stringify(reply.body)}`)
  return reply.body.grant as LeaseGrant
}

const liveOf = async (url: string, space = SPACE): Promise<Array<{ grant: LeaseGrant; expiresAt: number }>> =>
  (await rest(url, 'GET', `/spaces/${space}/leases`)).body.leases as Array<{ grant: LeaseGrant; expiresAt: number }>

interface Replica {
  space: Space
  online(): Promise<void>
  offline(): Promise<void>
}

/** A Space on its own clock that syncs its main document through the relay when online. */
function replica(url: string, clock: Clock, leases?: RelayLeaseClient): Replica {
  const space = new Space({ id: SPACE, clock, leases })
  let connection: SpaceConnection | undefined
  const r: Replica = {
    space,
    async online() {
      connection ??= await connectSpace(space, (d) => (d.doc === space.doc ? new WebSocketTransport({ url: syncUrl(url, d.name), backoffBaseMs: 20 }) : undefined))
    },
    async offline() {
      const c = connection
      connection = undefined
      await c?.stop()
    },
  }
  cleanups.push(async () => {
    await r.offline()
    space.destroy()
  })
  return r
}

const taskMap = (space: Space, id: string, field: 'claims' | 'released' | 'completions'): Y.Map<unknown> =>
  (space.doc.getMap<Y.Map<unknown>>('tasks').get(id) as Y.Map<unknown>).get(field) as Y.Map<unknown>

const resourceMap = (space: Space, id: string): Y.Map<unknown> | undefined => space.doc.getMap<Y.Map<unknown>>('resources').get(id)

describe('L1 at most one live grant per key', () => {
  it('L1: of concurrent acquires over the WebSocket and REST exactly one wins, until the grant ends', async () => {
    const clock = new ManualClock()
    const { relay, url } = await startRelay(clock)
    const holders = ['alice', 'bob', 'carol', 'dave']
    const clients = holders.map(() => leaseClient(url))
    const key = 'task:l1'
    const outcomes = await Promise.allSettled([
      ...holders.map((holder, i) => (clients[i] as RelayLeaseClient).acquire({ space: SPACE, key, holder, duration: 1_000 })),
      ...['erin', 'frank'].map((holder) => rest(url, 'POST', `/spaces/${SPACE}/leases/acquire`, { key, holder, duration: 1_000 }).then(grantOf)),
    ])
    const won = outcomes.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : []))
    expect(won).toHaveLength(1)
    const winner = won[0] as LeaseGrant
    for (const o of outcomes) {
      if (o.status === 'fulfilled') continue
      const reason = o.reason as ChorusError | Error
      // The REST path wraps its refusal in a plain Error from grantOf; the body still names the code.
      expect(reason instanceof ChorusError ? reason.code : reason.message).toMatch(/locked/)
    }
    expect((await relay.leases.live(SPACE)).map((l) => l.grant)).toEqual([winner])

    // Still one holder a millisecond before the end; at the end, the next acquire gets it and nothing else is live.
    const other = holders.find((h) => h !== winner.holder) as string
    clock.advance(999)
    const refused = await rest(url, 'POST', `/spaces/${SPACE}/leases/acquire`, { key, holder: other, duration: 1_000 })
    expect(refused).toMatchObject({ status: 409, body: { error: 'locked' } })
    clock.advance(1)
    const next = grantOf(await rest(url, 'POST', `/spaces/${SPACE}/leases/acquire`, { key, holder: other, duration: 1_000 }))
    expect((await liveOf(url)).map((l) => l.grant)).toEqual([next])
    expect(next.token).toBeGreaterThan(winner.token)
  })

  it('L1: a restarted relay still knows the live grant and refuses a second holder', async () => {
    const clock = new ManualClock()
    const first = await startRelay(clock)
    const grant = await leaseClient(first.url).acquire({ space: SPACE, key: 'task:l1r', holder: 'alice', duration: 5_000 })
    await first.relay.stop()
    const second = await startRelay(clock)
    expect((await liveOf(second.url)).map((l) => l.grant)).toEqual([grant])
    expect(await codeOf(leaseClient(second.url).acquire({ space: SPACE, key: 'task:l1r', holder: 'bob', duration: 1_000 }))).toBe('locked')
    clock.advance(5_000)
    expect(await liveOf(second.url)).toEqual([])
    expect((await leaseClient(second.url).acquire({ space: SPACE, key: 'task:l1r', holder: 'bob', duration: 1_000 })).holder).toBe('bob')
  })
})

describe('L2 fencing tokens strictly increase per key', () => {
  it('L2: tokens increase across WebSocket and REST grants, re-acquires and a restart, and are on disk before the reply', async () => {
    const clock = new ManualClock()
    const first = await startRelay(clock)
    const ledger = join(f.dir, LEASE_LEDGER_FILE)
    /** What leases.sqlite holds for a key, read by another connection as soon as a reply arrives. */
    const onDisk = (key: string): { last: number; live: number | undefined } => {
      const db = new DatabaseSync(ledger, { readOnly: true })
      try {
        const t = db.prepare('SELECT last_token FROM tokens WHERE space = ? AND key = ?').get(SPACE, key)
        const l = db.prepare('SELECT grant_json FROM live WHERE space = ? AND key = ?').get(SPACE, key)
        return { last: Number(t?.last_token), live: l === undefined ? undefined : (JSON.parse(String(l.grant_json)) as LeaseGrant).token }
      } finally {
        db.close()
      }
    }
    const key = 'resource:l2'
    const tokens: number[] = []
    const ws = leaseClient(first.url)
    const a = await ws.acquire({ space: SPACE, key, holder: 'alice', duration: 1_000 })
    expect(onDisk(key)).toEqual({ last: a.token, live: a.token })
    tokens.push(a.token)
    const again = await ws.acquire({ space: SPACE, key, holder: 'alice', duration: 1_000 }) // same holder: a new token
    tokens.push(again.token)
    await ws.release(again)
    expect(onDisk(key)).toEqual({ last: again.token, live: undefined })
    const b = grantOf(await rest(first.url, 'POST', `/spaces/${SPACE}/leases/acquire`, { key, holder: 'bob', duration: 1_000 }))
    expect(onDisk(key)).toEqual({ last: b.token, live: b.token })
    tokens.push(b.token)
    const renewed = grantOf(await rest(first.url, 'POST', `/spaces/${SPACE}/leases/renew`, { grant: b }))
    expect(renewed.token).toBe(b.token) // renewing keeps the token (L4)
    clock.advance(1_000)
    tokens.push((await ws.acquire({ space: SPACE, key, holder: 'carol', duration: 1_000 })).token)
    await first.relay.stop()

    const second = await startRelay(clock)
    clock.advance(1_000)
    const after = grantOf(await rest(second.url, 'POST', `/spaces/${SPACE}/leases/acquire`, { key, holder: 'dave', duration: 1_000 }))
    tokens.push(after.token)
    expect(onDisk(key)).toEqual({ last: after.token, live: after.token })
    for (let i = 1; i < tokens.length; i++) expect(tokens[i]).toBeGreaterThan(tokens[i - 1] as number)
    expect(tokens).toEqual([1, 2, 3, 4, 5])
  })
})

/** A WebSocket whose traffic takes time: `onSend` runs as a request leaves, `onReceive` before the client reads a frame. */
function slowWebSocket(onSend: () => void, onReceive: () => void): new (url: string) => WebSocket {
  return class SlowWebSocket extends WebSocket {
    constructor(url: string) {
      super(url)
      // Registered before the lease client's own listener, so the time has passed when it reads the reply.
      this.addEventListener('message', onReceive)
    }

    override send(data: Parameters<WebSocket['send']>[0]): void {
      onSend()
      super.send(data)
    }
  }
}

describe('L3 a grant carries a duration, counted by the holder from when it sent the request', () => {
  it('L3: network delay and a skewed clock only shorten what the holder believes it holds', async () => {
    const time = new ManualClock() // the relay's clock, and real time
    const { relay, url } = await startRelay(time)
    const skewed: Clock = { now: () => time.now() - 3_600_000 } // the holder's clock is an hour behind
    const toRelay = 400
    const back = 600
    const client = leaseClient(url, {
      clock: skewed,
      WebSocket: slowWebSocket(
        () => time.advance(toRelay),
        () => time.advance(back),
      ),
    })
    const lost = nextLoss(client)
    const sent = time.now()
    const grant = await client.acquire({ space: SPACE, key: 'task:l3', holder: 'alice', duration: 1_000 })
    // Only a duration travels: no wall-clock time the two clocks would have to agree on.
    expect(Object.keys(grant).sort()).toEqual(['duration', 'holder', 'key', 'signature', 'space', 'token'])
    // The relay counts from when it granted, after the request's delay ...
    expect(await relay.leases.live(SPACE)).toEqual([{ grant, expiresAt: sent + toRelay + 1_000 }])
    // ... the holder from when it sent: the reply took the whole duration, so it believes it holds nothing,
    // while the relay still has the grant live for another 400 ms.
    expect(await lost).toEqual({ grant, reason: 'expired' })
    expect(client.heldGrants()).toEqual([])
    expect(time.now()).toBe(sent + 1_000)
    expect(await relay.leases.holder(SPACE, 'task:l3')).toEqual(grant)
  })

  it('L3: a Space records its claim from the send time, so its view ends no later than the relay grant', async () => {
    const time = new ManualClock()
    const { relay, url } = await startRelay(time)
    const skewed: Clock = { now: () => time.now() + 3_600_000 } // an hour ahead this time
    const toRelay = 250
    const client = leaseClient(url, { clock: skewed, WebSocket: slowWebSocket(() => time.advance(toRelay), () => time.advance(100)) })
    const { space } = replica(url, skewed, client)
    space.join({ id: 'alice', name: 'Alice', kind: 'ai' })
    const task = space.tasks.create({ title: 'measure', createdBy: 'alice' })
    await client.publicKey() // fetched before the timed request, so the claim's send time is the acquire's
    const sentSkewed = skewed.now()
    const sentReal = time.now()
    const claimed = await space.tasks.claim(task.id, 'alice', { duration: 10_000, renew: false })
    expect(claimed.claim).toMatchObject({ holder: 'alice', at: sentSkewed, duration: 10_000 })
    const expiresAt = sentReal + toRelay + 10_000
    expect((await relay.leases.live(SPACE))[0]?.expiresAt).toBe(expiresAt)

    time.set(sentReal + 10_000) // the holder's own count has run out
    expect(space.tasks.get(task.id)?.status).toBe('open')
    expect((await relay.leases.holder(SPACE, `task:${task.id}`))?.holder).toBe('alice') // the relay's has not
    time.set(expiresAt)
    expect(await relay.leases.live(SPACE)).toEqual([])
  })
})

describe('L4 renew extends a grant only when key, holder and token match the live grant', () => {
  it('L4: over the WebSocket', async () => {
    const clock = new ManualClock()
    const { relay, url } = await startRelay(clock)
    const client = leaseClient(url)
    const key = 'task:l4'
    const grant = await client.acquire({ space: SPACE, key, holder: 'alice', duration: 1_000 })
    clock.advance(600)
    const renewed = await client.renew(grant)
    expect(renewed).toMatchObject({ key, holder: 'alice', token: grant.token, duration: 1_000 })
    expect((await relay.leases.live(SPACE))[0]?.expiresAt).toBe(clock.now() + 1_000)
    const longer = await client.renew(renewed, 3_000)
    expect(longer).toMatchObject({ token: grant.token, duration: 3_000 })
    const expiresAt = clock.now() + 3_000

    for (const wrong of [
      { ...longer, token: longer.token + 1 },
      { ...longer, token: longer.token + 5 },
      { ...longer, holder: 'bob' },
      { ...longer, key: 'task:other' },
      { ...longer, space: 'elsewhere' },
    ]) {
      expect(await codeOf(client.renew(wrong)), JSON.stringify(wrong)).toBe('lease_lost')
    }
    // The refused renewals changed nothing.
    expect(await relay.leases.live(SPACE)).toEqual([{ grant: longer, expiresAt }])

    // After a re-acquire the earlier grant (older token) no longer renews, after expiry neither does the newest.
    const newer = await client.acquire({ space: SPACE, key, holder: 'alice', duration: 1_000 })
    expect(await codeOf(client.renew(longer))).toBe('lease_lost')
    clock.advance(1_000)
    expect(await codeOf(client.renew(newer))).toBe('lease_lost')
    expect(await relay.leases.live(SPACE)).toEqual([])
  })

  it('L4: over REST', async () => {
    const clock = new ManualClock()
    const { url } = await startRelay(clock)
    const path = `/spaces/${SPACE}/leases`
    const grant = grantOf(await rest(url, 'POST', `${path}/acquire`, { key: 'resource:l4', holder: 'alice', duration: 1_000 }))
    clock.advance(900)
    const renewed = grantOf(await rest(url, 'POST', `${path}/renew`, { grant, duration: 2_000 }))
    expect(renewed).toMatchObject({ token: grant.token, duration: 2_000 })
    expect(await liveOf(url)).toEqual([{ grant: renewed, expiresAt: clock.now() + 2_000 }])
    for (const wrong of [{ ...renewed, token: renewed.token + 1 }, { ...renewed, holder: 'bob' }, { ...renewed, key: 'resource:other' }]) {
      expect(await rest(url, 'POST', `${path}/renew`, { grant: wrong })).toMatchObject({ status: 409, body: { error: 'lease_lost' } })
    }
    // A grant of another space is not renewed through this space's route.
    expect(await rest(url, 'POST', `/spaces/elsewhere/leases/renew`, { grant: renewed })).toMatchObject({ status: 400, body: { error: 'invalid_input' } })
    clock.advance(2_000)
    expect(await rest(url, 'POST', `${path}/renew`, { grant: renewed })).toMatchObject({ status: 409, body: { error: 'lease_lost' } })
    // The default space's routes follow the same rule.
    const d = grantOf(await rest(url, 'POST', '/leases/acquire', { key: 'resource:l4', holder: 'alice', duration: 1_000 }))
    expect(d.space).toBe('default')
    expect(grantOf(await rest(url, 'POST', '/leases/renew', { grant: d })).token).toBe(d.token)
    expect(await rest(url, 'POST', '/leases/renew', { grant: { ...d, token: d.token + 1 } })).toMatchObject({ status: 409, body: { error: 'lease_lost' } })
  })
})

/** An Auth stand-in (the relay's `Auth` class is not exported): `Authorization: Bearer <participant>-secret-token`. */
function bearerAuth(participants: string[]): Auth {
  return new Auth(participants.map((participant) => ({ token: `${participant}-secret-token`, participant, kind: 'ai' as const })))
}

describe('L5 release frees the key at once, only for the holder; expiry frees it too', () => {
  it('L5: over the WebSocket', async () => {
    const clock = new ManualClock()
    const { relay, url } = await startRelay(clock)
    const alice = leaseClient(url)
    const bob = leaseClient(url)
    const key = 'resource:l5'
    const grant = await alice.acquire({ space: SPACE, key, holder: 'alice', duration: 10_000 })
    expect(await codeOf(bob.acquire({ space: SPACE, key, holder: 'bob', duration: 1_000 }))).toBe('locked')
    // Another holder's, an older or an altered grant releases nothing.
    await bob.release({ ...grant, holder: 'bob' })
    await bob.release({ ...grant, token: grant.token + 1 })
    await bob.release({ ...grant, key: 'resource:other' })
    expect(await relay.leases.holder(SPACE, key)).toEqual(grant)
    expect(await relay.leases.release({ ...grant, holder: 'bob' })).toBe(false)

    await alice.release(grant)
    expect(await relay.leases.live(SPACE)).toEqual([])
    // At once: no clock movement before the next holder gets it.
    const next = await bob.acquire({ space: SPACE, key, holder: 'bob', duration: 1_000 })
    expect(next.holder).toBe('bob')
    expect(await relay.leases.release(grant)).toBe(false) // the old grant stays dead

    // Expiry frees it too, with nobody releasing.
    clock.advance(1_000)
    expect(await relay.leases.live(SPACE)).toEqual([])
    expect((await alice.acquire({ space: SPACE, key, holder: 'alice', duration: 1_000 })).token).toBeGreaterThan(next.token)
  })

  it('L5: over REST', async () => {
    const clock = new ManualClock()
    const { url } = await startRelay(clock)
    const path = `/spaces/${SPACE}/leases`
    const grant = grantOf(await rest(url, 'POST', `${path}/acquire`, { key: 'task:l5', holder: 'alice', duration: 10_000 }))
    expect(await rest(url, 'POST', `${path}/release`, { grant: { ...grant, holder: 'bob' } })).toEqual({ status: 200, body: { released: false } })
    expect(await rest(url, 'POST', `${path}/release`, { grant: { ...grant, token: grant.token + 1 } })).toEqual({ status: 200, body: { released: false } })
    expect((await liveOf(url)).map((l) => l.grant)).toEqual([grant])
    expect(await rest(url, 'POST', `${path}/release`, { grant })).toEqual({ status: 200, body: { released: true } })
    expect(await liveOf(url)).toEqual([])
    expect(await rest(url, 'POST', `${path}/release`, { grant })).toEqual({ status: 200, body: { released: false } })
    const bob = grantOf(await rest(url, 'POST', `${path}/acquire`, { key: 'task:l5', holder: 'bob', duration: 500 }))
    clock.advance(500)
    expect(await liveOf(url)).toEqual([])
    expect(grantOf(await rest(url, 'POST', `${path}/acquire`, { key: 'task:l5', holder: 'carol', duration: 500 })).token).toBeGreaterThan(bob.token)
  })

  it('L5: with bearer tokens, nobody but the holder may release its grant, over REST or the WebSocket', async () => {
    const clock = new ManualClock()
    const { relay, url } = await startRelay(clock, { auth: bearerAuth(['alice', 'bob']) })
    const as = (p: string): Record<string, string> => ({ authorization: `Bearer ${p}-secret-token` })
    const path = `/spaces/${SPACE}/leases`
    const grant = grantOf(await rest(url, 'POST', `${path}/acquire`, { key: 'task:l5a', holder: 'alice', duration: 10_000 }, as('alice')))
    expect(await rest(url, 'POST', `${path}/acquire`, { key: 'task:l5b', holder: 'alice', duration: 10_000 }, as('bob'))).toMatchObject({ status: 403, body: { error: 'forbidden' } })
    expect(await rest(url, 'POST', `${path}/release`, { grant }, as('bob'))).toMatchObject({ status: 403, body: { error: 'forbidden' } })
    const bobOverWs = leaseClient(url, { token: 'bob-secret-token' })
    expect(await codeOf(bobOverWs.release(grant))).toBe('forbidden')
    expect(await codeOf(bobOverWs.renew(grant))).toBe('forbidden')
    expect(await relay.leases.holder(SPACE, 'task:l5a')).toEqual(grant)
    const aliceOverWs = leaseClient(url, { token: 'alice-secret-token' })
    await aliceOverWs.release(grant)
    expect(await relay.leases.live(SPACE)).toEqual([])
  })
})

describe('L6 a holder that loses its lease is told, and its later fenced writes are refused', () => {
  it('L6: the relay expires a claim: lease_lost reaches the holder over /leases, and completing the task is fenced', async () => {
    const relayClock = new ManualClock()
    const { relay, url } = await startRelay(relayClock)
    const holderClock = new ManualClock() // stands still: by its own count alice still holds the claim
    const client = leaseClient(url, { clock: holderClock })
    const { space } = replica(url, holderClock, client)
    space.join({ id: 'alice', name: 'Alice', kind: 'ai' })
    const task = space.tasks.create({ title: 'ship', createdBy: 'alice' })
    const events: unknown[] = []
    space.events.on('lease_lost', (e) => events.push(e.data))
    const claimed = await space.tasks.claim(task.id, 'alice', { duration: 60_000, renew: false })
    const token = claimed.claim?.token as number

    const lost = nextLoss(client)
    relayClock.advance(60_000)
    expect((await relay.leases.sweep()).map((g) => g.token)).toEqual([token])
    expect(await lost).toMatchObject({ grant: { key: `task:${task.id}`, holder: 'alice', token }, reason: 'expired' })
    expect(events).toEqual([{ key: `task:${task.id}`, token, reason: 'expired' }])

    expect(space.tasks.get(task.id)?.status).toBe('claimed') // the holder's clock says it still holds ...
    expect(await codeOf(space.tasks.complete(task.id, 'alice', 'done'))).toBe('fenced') // ... the fence says no
    expect(space.tasks.get(task.id)?.status).toBe('claimed')
    expect(taskMap(space, task.id, 'completions').size).toBe(0)
  })

  it('L6: a lock the relay expired makes a later edit under its token throw fenced', async () => {
    const relayClock = new ManualClock()
    const { relay, url } = await startRelay(relayClock)
    const holderClock = new ManualClock()
    const client = leaseClient(url, { clock: holderClock })
    const { space } = replica(url, holderClock, client)
    space.join({ id: 'alice', name: 'Alice', kind: 'ai' })
    const doc = space.resources.create({ name: 'plan', owner: 'alice', data: 'v0' })
    await space.resources.lock(doc.id, 'alice', { timeout: 20_000 })
    expect(space.resources.edit(doc.id, 'alice', 'v1').version).toBe(2) // created at version 1
    const lost = nextLoss(client)
    relayClock.advance(20_000)
    await relay.leases.sweep()
    expect((await lost).reason).toBe('expired')
    const error = await codeOf(Promise.resolve().then(() => space.resources.edit(doc.id, 'alice', 'v2')))
    expect(error).toBe('fenced')
    expect(space.resources.get(doc.id)).toMatchObject({ version: 2, data: 'v1' })
  })

  it('L6: a relay restarted after the grant ran out refuses the renewal; the holder is told and fenced', async () => {
    const relayClock = new ManualClock()
    const first = await startRelay(relayClock)
    const holderClock = new ManualClock()
    const client = leaseClient(first.url, { clock: holderClock })
    const seen = losses(client)
    const { space } = replica(first.url, holderClock, client)
    space.join({ id: 'alice', name: 'Alice', kind: 'ai' })
    const task = space.tasks.create({ title: 'migrate', createdBy: 'alice' })
    const claimed = await space.tasks.claim(task.id, 'alice', { duration: 30_000, renew: false })
    await first.relay.stop()
    relayClock.advance(30_000) // the grant runs out while the relay is down: nobody is there to push lease_lost
    await startRelay(relayClock, { port: first.port })
    expect(seen).toEqual([])
    expect(await codeOf(space.tasks.renew(task.id, 'alice'))).toBe('lease_lost')
    expect(seen).toEqual([{ grant: expect.objectContaining({ token: claimed.claim?.token }) as unknown, reason: 'expired' }])
    expect(await codeOf(space.tasks.complete(task.id, 'alice'))).toBe('fenced')
  })
})

describe('L7 grants are signed by the relay key published in meta and at /capabilities', () => {
  it('L7: WebSocket, REST and mirrored grants verify against both; tampered or foreign ones do not', async () => {
    const clock = new ManualClock()
    const { relay, url } = await startRelay(clock)
    const capabilities = (await (await fetch(`${url}/capabilities`)).json()) as RelayCapabilities
    expect(capabilities.relayKey).toBe(relay.publicKey)
    const r = replica(url, clock)
    r.space.join({ id: 'alice', name: 'Alice', kind: 'ai' })
    await r.online()
    await until(() => r.space.meta.relayKey !== undefined, 'the relay wrote its key into meta', { on: spaceUpdates(r.space) })
    expect(r.space.meta.relayKey).toBe(capabilities.relayKey)

    const task = r.space.tasks.create({ title: 'verify', createdBy: 'alice' })
    const overWs = await leaseClient(url).acquire({ space: SPACE, key: `task:${task.id}`, holder: 'alice', duration: 5_000 })
    const overRest = grantOf(await rest(url, 'POST', `/spaces/${SPACE}/leases/acquire`, { key: 'resource:r-1', holder: 'alice', duration: 5_000 }))
    const leasesMap = r.space.doc.getMap<RecordedGrant>('leases')
    await until(() => leasesMap.has(`task:${task.id}`) && leasesMap.has('resource:r-1'), 'the leases mirror reached the replica', { on: spaceUpdates(r.space) })
    const mirrored = leasesMap.get(`task:${task.id}`) as RecordedGrant

    const byCapabilities = createGrantVerifier(capabilities.relayKey)
    const byMeta = createGrantVerifier(r.space.meta.relayKey as string)
    for (const g of [overWs, overRest, mirrored, leasesMap.get('resource:r-1') as RecordedGrant]) {
      expect(byCapabilities(g)).toBe(true)
      expect(byMeta(g)).toBe(true)
    }
    const flip = (s: string): string => (s[0] === 'A' ? 'B' : 'A') + s.slice(1)
    const foreign = createGrantSigner(generateSecretKey()).sign({ space: SPACE, key: overWs.key, holder: 'alice', token: overWs.token, duration: 5_000 })
    const tampered: Array<[string, LeaseGrant]> = [
      ['space', { ...overWs, space: 'elsewhere' }],
      ['key', { ...overWs, key: 'task:other' }],
      ['holder', { ...overWs, holder: 'mallory' }],
      ['token', { ...overWs, token: overWs.token + 1 }],
      ['duration', { ...overWs, duration: 600_000 }],
      ['signature', { ...overWs, signature: flip(overWs.signature) }],
      ['another key', foreign],
    ]
    for (const [what, g] of tampered) {
      expect(byCapabilities(g), what).toBe(false)
      expect(byMeta(g), what).toBe(false)
    }
    // The replica's own API refuses to record what does not verify, and accepts the genuine grant.
    for (const [what, g] of tampered) {
      expect(await codeOf(Promise.resolve().then(() => r.space.tasks.recordClaim(task.id, g))), what).toBe('invalid_input')
    }
    r.space.tasks.recordClaim(task.id, overWs)
    expect(r.space.tasks.get(task.id)?.claim).toMatchObject({ token: overWs.token, holder: 'alice' })
  })
})

describe('L8 of several recorded claims the valid one with the highest token wins, on every replica', () => {
  it('L8: two replicas that recorded different claims pick the same one; forged higher tokens are ignored', async () => {
    const relayClock = new ManualClock()
    const { url } = await startRelay(relayClock)
    const slow = new ManualClock() // replica A's clock never moves, so alice's old claim still looks live there
    const a = replica(url, slow, leaseClient(url, { clock: slow }))
    const b = replica(url, relayClock, leaseClient(url, { clock: relayClock }))
    a.space.join({ id: 'alice', name: 'Alice', kind: 'ai' })
    a.space.join({ id: 'bob', name: 'Bob', kind: 'ai' })
    a.space.join({ id: 'mallory', name: 'Mallory', kind: 'ai' })
    const task = a.space.tasks.create({ title: 'contested', createdBy: 'alice' })
    await Promise.all([a.online(), b.online()])
    await until(() => b.space.tasks.get(task.id) !== undefined && b.space.meta.relayKey !== undefined, 'b has the task and the relay key', { on: spaceUpdates(b.space) })
    await b.offline()

    // Apart: alice claims on A; bob on B is refused until the relay has expired alice's grant, then claims.
    const first = await a.space.tasks.claim(task.id, 'alice', { duration: 1_000, renew: false })
    expect(await codeOf(b.space.tasks.claim(task.id, 'bob', { renew: false }))).toBe('conflict')
    relayClock.advance(1_000)
    const second = await b.space.tasks.claim(task.id, 'bob', { duration: 60_000, renew: false })
    expect(second.claim?.token).toBeGreaterThan(first.claim?.token as number)
    expect(a.space.tasks.get(task.id)?.claim?.holder).toBe('alice')
    expect(b.space.tasks.get(task.id)?.claim?.holder).toBe('bob')

    // Mallory writes claims with higher tokens straight into A's document: one signed by another key, one with
    // bob's signature on altered fields. Neither verifies against meta.relayKey.
    const claims = taskMap(a.space, task.id, 'claims') as Y.Map<RecordedGrant>
    const genuine = second.claim as RecordedGrant
    const foreign = createGrantSigner(generateSecretKey()).sign({ space: SPACE, key: `task:${task.id}`, holder: 'mallory', token: 99, duration: 600_000 })
    a.space.doc.transact(() => {
      claims.set('99', { ...foreign, at: slow.now() })
      claims.set('100', { ...genuine, holder: 'mallory', token: 100, at: slow.now() })
    })

    await b.online()
    const tokens = (s: Space): string[] => [...(taskMap(s, task.id, 'claims') as Y.Map<RecordedGrant>).keys()].sort()
    await until(() => tokens(a.space).length === 4 && tokens(b.space).length === 4, 'both replicas hold all four claims', { on: spaceUpdates(a.space, b.space) })
    const onA = a.space.tasks.get(task.id)
    const onB = b.space.tasks.get(task.id)
    expect(onA?.claim).toEqual(genuine)
    expect(onB?.claim).toEqual(genuine)
    expect(onA?.status).toBe('claimed')
    expect(onB?.status).toBe('claimed')
    // Mallory cannot act on her forged claims through the API either.
    expect(await codeOf(a.space.tasks.complete(task.id, 'mallory'))).toBe('forbidden')
  })

  it('L8: a genuine grant for another key, copied into a task, is not a claim on it', async () => {
    const clock = new ManualClock()
    const { url } = await startRelay(clock)
    const client = leaseClient(url, { clock })
    const { space } = replica(url, clock, client)
    space.join({ id: 'alice', name: 'Alice', kind: 'ai' })
    space.join({ id: 'bob', name: 'Bob', kind: 'ai' })
    const mine = space.tasks.create({ title: 'mine', createdBy: 'alice' })
    const other = space.tasks.create({ title: 'other', createdBy: 'alice' })
    await space.tasks.claim(mine.id, 'alice', { duration: 60_000, renew: false })
    await space.tasks.claim(other.id, 'bob', { duration: 60_000, renew: false })
    await space.tasks.release(other.id, 'bob')
    const bobs = (await space.tasks.claim(other.id, 'bob', { duration: 60_000, renew: false })).claim as RecordedGrant
    expect(bobs.token).toBe(2) // higher than alice's token 1 on her task

    const claims = taskMap(space, mine.id, 'claims') as Y.Map<RecordedGrant>
    claims.set(String(bobs.token), bobs) // a replayed grant: well signed, but for task:<other>
    const verify = createGrantVerifier(space.meta.relayKey as string)
    const released = taskMap(space, mine.id, 'released')
    expect(resolveGrant(claims, released, verify, clock.now(), `task:${mine.id}`)).toMatchObject({ holder: 'alice', token: 1 })
    // The task's own view agrees, and bob cannot complete it under the replayed grant.
    expect(space.tasks.get(mine.id)?.claim).toMatchObject({ holder: 'alice', token: 1 })
    expect(await codeOf(space.tasks.complete(mine.id, 'bob'))).toBe('forbidden')
  })
})

describe('L9 writes under a lock carry its token; stale tokens are refused by the API and ignored by views', () => {
  it('L9: an edit under an expired lock is fenced on its replica, and stale revisions are ignored on another', async () => {
    const relayClock = new ManualClock()
    const { relay, url } = await startRelay(relayClock)
    const slow = new ManualClock()
    const aliceLeases = leaseClient(url, { clock: slow })
    const a = replica(url, slow, aliceLeases)
    const b = replica(url, relayClock, leaseClient(url, { clock: relayClock }))
    a.space.join({ id: 'alice', name: 'Alice', kind: 'ai' })
    a.space.join({ id: 'bob', name: 'Bob', kind: 'ai' })
    const created = a.space.resources.create({ name: 'schema', owner: 'alice', data: 'v0' })
    await Promise.all([a.online(), b.online()])
    const id = created.id
    const revisions = (s: Space): Revision[] => (resourceMap(s, id)?.get('revisions') as Y.Array<Revision> | undefined)?.toArray() ?? []

    const locked = await a.space.resources.lock(id, 'alice', { timeout: 1_000 })
    const stale = locked.lock?.token as number
    a.space.resources.edit(id, 'alice', 'v1 by alice')
    await until(() => b.space.resources.get(id)?.data === 'v1 by alice', 'b sees alice’s locked edit', { on: spaceUpdates(b.space) })
    expect(revisions(b.space).map((r) => r.token)).toEqual([undefined, stale])
    expect(await codeOf(Promise.resolve().then(() => b.space.resources.edit(id, 'bob', 'sneaky')))).toBe('locked')

    const lost = nextLoss(aliceLeases)
    relayClock.advance(1_000)
    await relay.leases.sweep()
    await lost
    // Refused by the API: A still sees the lock by its clock, but was told it lost it.
    expect(await codeOf(Promise.resolve().then(() => a.space.resources.edit(id, 'alice', 'v2 by alice')))).toBe('fenced')

    const bobs = await b.space.resources.lock(id, 'bob', { timeout: 60_000 })
    const current = bobs.lock?.token as number
    expect(current).toBeGreaterThan(stale)
    b.space.resources.edit(id, 'bob', 'v2 by bob')
    await until(() => a.space.resources.get(id)?.data === 'v2 by bob', 'a sees bob’s edit', { on: spaceUpdates(a.space) })

    // Ignored by views: revisions written past the API (an old client) with a stale token, or with the live
    // token by someone who does not hold it.
    const base = 3 // created at 1, alice's edit made 2, bob's 3
    const raw = resourceMap(a.space, id)?.get('revisions') as Y.Array<Revision>
    a.space.doc.transact(() =>
      raw.push([
        { id: `${id}.stale`, base, data: 'stale token', by: 'alice', at: relayClock.now(), token: stale },
        { id: `${id}.theft`, base, data: 'not the holder', by: 'alice', at: relayClock.now(), token: current },
      ]),
    )
    await until(() => revisions(b.space).length === 5, 'b has every revision', { on: spaceUpdates(b.space) })
    for (const s of [a.space, b.space]) {
      expect(s.resources.get(id)).toMatchObject({ version: 3, data: 'v2 by bob', conflicts: [] })
    }
  })
})

describe('L10 without the relay, acquire fails fast with a typed error and nothing is assumed held', () => {
  it('L10: a lease client pointed at a closed port fails with lease_unavailable; a Space cannot claim', async () => {
    const server = createServer()
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const port = (server.address() as { port: number }).port
    await new Promise<void>((resolve) => server.close(() => resolve()))
    const client = leaseClient(`http://127.0.0.1:${port}`)
    expect(await codeOf(client.acquire({ space: SPACE, key: 'task:l10', holder: 'alice', duration: 1_000 }))).toBe('lease_unavailable')
    expect(await codeOf(client.publicKey())).toBe('lease_unavailable')
    expect(client.heldGrants()).toEqual([])

    const space = new Space({ id: SPACE, clock: new ManualClock(), leases: client })
    cleanups.push(() => space.destroy())
    space.join({ id: 'alice', name: 'Alice', kind: 'ai' })
    const task = space.tasks.create({ title: 'offline', createdBy: 'alice' })
    expect(await codeOf(space.tasks.claim(task.id, 'alice'))).toBe('lease_unavailable')
    expect(space.tasks.get(task.id)).toMatchObject({ status: 'open' })
    expect(space.tasks.get(task.id)?.claim).toBeUndefined()
    expect(taskMap(space, task.id, 'claims').size).toBe(0)
    expect(space.meta.relayKey).toBeUndefined()
  })

  it('L10: once the relay is gone, a client that held leases fails the next acquire and the Space claims nothing', async () => {
    const clock = new ManualClock()
    const { relay, url } = await startRelay(clock)
    const client = leaseClient(url, { clock })
    const { space } = replica(url, clock, client)
    space.join({ id: 'alice', name: 'Alice', kind: 'ai' })
    const done = space.tasks.create({ title: 'before', createdBy: 'alice' })
    const later = space.tasks.create({ title: 'after', createdBy: 'alice' })
    await space.tasks.claim(done.id, 'alice', { duration: 60_000, renew: false })
    await relay.stop()
    expect(await codeOf(client.acquire({ space: SPACE, key: 'task:l10b', holder: 'alice', duration: 1_000 }))).toBe('lease_unavailable')
    expect(await codeOf(space.tasks.claim(later.id, 'alice', { renew: false }))).toBe('lease_unavailable')
    expect(space.tasks.get(later.id)).toMatchObject({ status: 'open' })
    expect(taskMap(space, later.id, 'claims').size).toBe(0)
  })
})
