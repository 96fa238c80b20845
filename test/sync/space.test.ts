import { describe, expect, it } from 'vitest'
import {
  connectSpace,
  createGrantSigner,
  generateSecretKey,
  LocalLeaseClient,
  ManualClock,
  Space,
  type ChorusEvent,
  type LeaseGrant,
} from '@chorus/sync'
import { MemoryNetwork } from '@chorus/sync/testing'

const pair = async (clock = new ManualClock()): Promise<{ a: Space; b: Space; net: MemoryNetwork; leases: LocalLeaseClient }> => {
  const leases = new LocalLeaseClient({ clock })
  const net = new MemoryNetwork({ seed: 7 })
  const a = new Space({ id: 'pair', clock, leases })
  const b = new Space({ id: 'pair', clock, leases })
  await connectSpace(a, (d) => (d.doc === a.doc ? net.transport('a') : undefined))
  await connectSpace(b, (d) => (d.doc === b.doc ? net.transport('b') : undefined))
  return { a, b, net, leases }
}

describe('messages and inboxes', () => {
  it('delivers broadcasts, direct messages and channel subscriptions to the right inboxes', () => {
    const clock = new ManualClock()
    const s = new Space({ id: 'm', clock })
    const tick = (): void => clock.advance(1)
    s.join({ id: 'alice', name: 'Alice', kind: 'human' })
    s.join({ id: 'bot', name: 'Bot', kind: 'ai', channels: ['technical'] })
    s.join({ id: 'eve', name: 'Eve', kind: 'human' })
    s.messages.send({ from: 'alice', content: 'general news' })
    tick()
    s.messages.send({ from: 'alice', content: 'tech news', channel: 'technical', priority: 'high' })
    tick()
    s.messages.send({ from: 'alice', content: 'psst bot', to: 'bot' })
    tick()
    s.messages.send({ from: 'bot', content: 'ai chatter', channel: 'ai-only' })
    tick()
    s.messages.send({ from: 'eve', content: 'human matters', channel: 'human-only' })
    expect(s.messages.inbox('bot').map((m) => m.content)).toEqual(['tech news', 'psst bot'])
    expect(s.messages.inbox('eve').map((m) => m.content)).toEqual(['general news', 'tech news'])
    expect(s.messages.inbox('alice').map((m) => m.content)).toEqual(['human matters'])
    expect(s.messages.recent({ channel: 'technical' })[0]?.priority).toBe('high')
    expect(s.messages.recent({ limit: 2 }).map((m) => m.content)).toEqual(['ai chatter', 'human matters'])
    // Restricted channels live in their own documents.
    const aiOnly = s.documents.find((d) => d.name === 'm#ai-only')
    expect(aiOnly?.doc.getText('messages').toJSON()).toContain('ai chatter')
    expect(s.doc.getText('messages').toJSON()).not.toContain('ai chatter')
    s.destroy()
  })

  it('keeps a read cursor: peek leaves messages unread, ack removes exactly the acknowledged ones', () => {
    const s = new Space({ id: 'cursor' })
    s.join({ id: 'alice', name: 'Alice', kind: 'human' })
    s.join({ id: 'bot', name: 'Bot', kind: 'ai' })
    const sent = [1, 2, 3, 4].map((i) => s.messages.send({ from: 'alice', content: `job ${i}`, to: 'bot' }))
    expect(s.messages.inbox('bot')).toHaveLength(4)
    expect(s.messages.inbox('bot')).toHaveLength(4) // peeking does not consume
    expect(s.messages.ack('bot', sent.slice(0, 2))).toBe(2)
    expect(s.messages.inbox('bot').map((m) => m.content)).toEqual(['job 3', 'job 4'])
    // Acknowledging a later message without an earlier one does not skip the earlier one.
    expect(s.messages.ack('bot', [sent[3] as { id: string }])).toBe(0)
    expect(s.messages.inbox('bot')).toHaveLength(2)
    expect(s.messages.ack('bot')).toBe(2)
    expect(s.messages.inbox('bot')).toHaveLength(0)
    expect(s.messages.inbox('bot', { unread: false })).toHaveLength(4)
    s.destroy()
  })

  it('a cursor written on one replica holds on another (it lives in the document)', async () => {
    const { a, b, net } = await pair()
    a.join({ id: 'alice', name: 'Alice', kind: 'human' })
    a.join({ id: 'bot', name: 'Bot', kind: 'ai' })
    for (let i = 0; i < 5; i++) a.messages.send({ from: 'alice', content: `m${i}`, to: 'bot' })
    net.deliverAll()
    expect(b.messages.ack('bot')).toBe(5)
    net.deliverAll()
    expect(a.messages.inbox('bot')).toHaveLength(0)
    a.destroy()
    b.destroy()
  })
})

describe('events', () => {
  it('emits typed live events with their author, locally and from peers', async () => {
    const { a, b, net } = await pair()
    const seenOnB: ChorusEvent[] = []
    b.events.on('*', (e) => seenOnB.push(e))
    const messagesOnA: string[] = []
    a.events.on('message', (e) => messagesOnA.push(`${e.participant}: ${e.data.content}`))
    a.join({ id: 'alice', name: 'Alice', kind: 'human' })
    a.messages.send({ from: 'alice', content: 'hello' })
    a.state.set('phase', 'one', { by: 'alice' })
    net.deliverAll()
    expect(messagesOnA).toEqual(['alice: hello'])
    expect(seenOnB.map((e) => [e.type, e.participant])).toEqual([
      ['join', 'alice'],
      ['message', 'alice'],
      ['state_update', 'alice'],
    ])
    expect(seenOnB[2]?.data).toEqual({ key: 'phase', mode: 'replace', value: 'one' })
    a.destroy()
    b.destroy()
  })

  it('filters history by type, participant, limit and time, and replays from an event', () => {
    const clock = new ManualClock()
    const s = new Space({ id: 'h', clock })
    s.join({ id: 'alice', name: 'Alice', kind: 'human' })
    s.join({ id: 'bot', name: 'Bot', kind: 'ai' })
    for (let i = 0; i < 5; i++) {
      clock.advance(10)
      s.messages.send({ from: i % 2 === 0 ? 'alice' : 'bot', content: `m${i}` })
      s.state.set('i', i, { by: 'bot' })
    }
    const all = s.events.history()
    // 2 joins, 5 messages, and one state_update: a key's newer value replaces the older one, in history too.
    expect(all).toHaveLength(2 + 5 + 1)
    expect(s.events.history({ type: 'state_update' }).map((e) => e.data)).toEqual([{ key: 'i', mode: 'replace', value: 4 }])
    expect(all.map((e) => e.at)).toEqual([...all.map((e) => e.at)].sort((x, y) => x - y))
    expect(s.events.history({ type: 'message', participant: 'alice' }).map((e) => (e as ChorusEvent<'message'>).data.content)).toEqual(['m0', 'm2', 'm4'])
    expect(s.events.history({ type: ['message', 'join'], limit: 2 }).map((e) => e.type)).toEqual(['message', 'message'])
    const since = s.events.history({ since: clock.now() })
    expect(since.map((e) => e.type)).toEqual(['message', 'state_update'])
    const pivot = all[5] as ChorusEvent
    const replayed: string[] = []
    expect(s.events.replay({ after: pivot.id }, (e) => replayed.push(e.id))).toBe(all.length - 6)
    expect(replayed).toEqual(all.slice(6).map((e) => e.id))
    expect(s.events.count()).toBe(all.length)
    s.destroy()
  })
})

describe('resources', () => {
  it('detects concurrent edits of one version: a conflict event, both contents kept, same winner everywhere', async () => {
    const clock = new ManualClock()
    const { a, b, net } = await pair(clock)
    a.join({ id: 'alice', name: 'Alice', kind: 'human' })
    a.join({ id: 'bot', name: 'Bot', kind: 'ai' })
    const r = a.resources.create({ name: 'plan.md', owner: 'alice', data: 'v1' })
    net.deliverAll()
    const conflicts: ChorusEvent[] = []
    a.events.on('conflict', (e) => conflicts.push(e))
    a.resources.edit(r.id, 'alice', 'alice says', { expectedVersion: 1 })
    clock.advance(1)
    b.resources.edit(r.id, 'bot', 'bot says', { expectedVersion: 1 })
    net.deliverAll()
    const ra = a.resources.require(r.id)
    const rb = b.resources.require(r.id)
    expect(ra).toEqual(rb)
    expect(ra.version).toBe(2)
    expect(ra.data).toBe('bot says') // the later edit is current
    expect(ra.conflicts).toHaveLength(1)
    expect(ra.conflicts[0]?.other.data).toBe('alice says') // nothing lost
    expect(conflicts).toHaveLength(1)
    expect(conflicts[0]?.data).toMatchObject({ version: 2 })
    expect(a.events.history({ type: 'conflict' })).toEqual(b.events.history({ type: 'conflict' }))
    a.destroy()
    b.destroy()
  })

  it('locks expire by themselves (auto-unlock) and then another participant may lock', async () => {
    const clock = new ManualClock()
    const s = new Space({ id: 'locks', clock, leases: new LocalLeaseClient({ clock }) })
    s.join({ id: 'alice', name: 'Alice', kind: 'human' })
    s.join({ id: 'bot', name: 'Bot', kind: 'ai' })
    const r = s.resources.create({ name: 'x', owner: 'alice', data: {} })
    await s.resources.lock(r.id, 'alice', { timeout: 1000 })
    await expect(s.resources.lock(r.id, 'bot')).rejects.toThrow(/locked by alice/)
    clock.advance(1000)
    expect(s.resources.require(r.id).lock).toBeUndefined()
    await s.resources.lock(r.id, 'bot', { timeout: 1000 })
    expect(s.resources.require(r.id).lock?.holder).toBe('bot')
    expect(s.resources.require(r.id).lock?.token).toBe(2)
    s.destroy()
  })
})

describe('task claims (L8)', () => {
  it('L8: of several recorded claims the valid one with the highest token wins; forged grants are ignored', () => {
    const clock = new ManualClock()
    const relayKey = generateSecretKey()
    const relay = createGrantSigner(relayKey)
    const forger = createGrantSigner(generateSecretKey())
    const s = new Space({ id: 'l8', clock })
    s.join({ id: 'alice', name: 'Alice', kind: 'human' })
    s.join({ id: 'bot', name: 'Bot', kind: 'ai' })
    s.doc.getMap('meta').set('relayKey', relay.publicKey)
    const t = s.tasks.create({ title: 'x', createdBy: 'alice' })
    const grant = (holder: string, token: number, signer = relay): LeaseGrant => signer.sign({ space: 'l8', key: `task:${t.id}`, holder, token, duration: 60_000 })
    s.tasks.recordClaim(t.id, grant('alice', 1))
    s.tasks.recordClaim(t.id, grant('bot', 3))
    expect(() => s.tasks.recordClaim(t.id, grant('alice', 9, forger))).toThrow(/does not verify/)
    // A forged claim written straight into the document (bypassing the API) is ignored by every view.
    const claims = (s.doc.getMap('tasks').get(t.id) as import('yjs').Map<unknown>).get('claims') as import('yjs').Map<unknown>
    claims.set('9', { ...grant('alice', 9, forger), at: clock.now() })
    expect(s.tasks.require(t.id).claim?.holder).toBe('bot')
    expect(s.tasks.require(t.id).claim?.token).toBe(3)
    expect(s.tasks.require(t.id).status).toBe('claimed')
    clock.advance(60_000)
    expect(s.tasks.require(t.id).status).toBe('open') // every claim ran out
    s.destroy()
  })

  it('L10: without an arbiter a claim fails fast with a typed error and nothing is recorded', async () => {
    const s = new Space({ id: 'l10' })
    s.join({ id: 'bot', name: 'Bot', kind: 'ai' })
    const t = s.tasks.create({ title: 'x', createdBy: 'bot' })
    await expect(s.tasks.claim(t.id, 'bot')).rejects.toMatchObject({ code: 'lease_unavailable' })
    expect(s.tasks.require(t.id).status).toBe('open')
    s.destroy()
  })
})

describe('presence', () => {
  it('shows online, idle and offline across replicas, with last seen', async () => {
    const clock = new ManualClock()
    const net = new MemoryNetwork({ seed: 3 })
    const a = new Space({ id: 'presence', clock, idleAfterMs: 60_000 })
    const b = new Space({ id: 'presence', clock, idleAfterMs: 60_000 })
    const ca = await connectSpace(a, (d) => (d.doc === a.doc ? net.transport('a') : undefined))
    await connectSpace(b, (d) => (d.doc === b.doc ? net.transport('b') : undefined))
    a.join({ id: 'alice', name: 'Alice', kind: 'human' })
    net.deliverAll()
    expect(b.presence.status('alice').status).toBe('online')
    expect(b.presence.status('alice').lastSeen).toBe(clock.now())
    clock.advance(60_001)
    expect(b.presence.status('alice').status).toBe('idle')
    a.member('alice').send('back')
    net.deliverAll()
    expect(b.presence.status('alice').status).toBe('online')
    await ca.stop() // a's connection closes: its awareness states leave b
    net.deliverAll()
    expect(b.presence.status('alice').status).toBe('offline')
    expect(b.presence.status('alice').lastSeen).toBeGreaterThan(0)
    a.destroy()
    b.destroy()
  })
})
