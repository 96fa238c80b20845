/** Edge cases of replicas merging: each test names what could go wrong and checks that it does not. */
import * as Y from 'yjs'
import { describe, expect, it } from 'vitest'
import { ChorusError, CollaborationHub, LocalLeaseClient, ManualClock, Space, type ChorusEvent, type Json } from '@chorus/sync'

/** Two replicas joined by hand: `sync()` exchanges everything both ways. */
const twin = (clock = new ManualClock(), leases?: LocalLeaseClient): { a: Space; b: Space; sync: () => void } => {
  const opts = { id: 'twin', clock, leases }
  const a = new Space(opts)
  const b = new Space(opts)
  const sync = (): void => {
    Y.applyUpdate(b.doc, Y.encodeStateAsUpdate(a.doc, Y.encodeStateVector(b.doc)))
    Y.applyUpdate(a.doc, Y.encodeStateAsUpdate(b.doc, Y.encodeStateVector(a.doc)))
  }
  return { a, b, sync }
}

describe('edge cases', () => {
  it('mutating objects passed in or read out never changes a document behind the CRDT', () => {
    const { a, b, sync } = twin()
    a.join({ id: 'ann', name: 'Ann', kind: 'human' })
    const value = { n: 1 }
    a.state.set('cfg', value, { by: 'ann' })
    value.n = 99
    ;(a.state.get('cfg') as { n: number }).n = 2
    sync()
    expect(a.state.get('cfg')).toEqual({ n: 1 })
    expect(b.state.get('cfg')).toEqual({ n: 1 })
    expect(Y.encodeStateAsUpdate(a.doc)).toEqual(Y.encodeStateAsUpdate(b.doc))
  })

  it('a second arbiter cannot replace the space key and void the grants already recorded', async () => {
    const clock = new ManualClock()
    const hub1 = new CollaborationHub({ hubId: 'one', clock })
    const ann = hub1.addParticipant('Ann', 'human', {}, 'ann')
    const spec = hub1.createResource('spec', ann, 'v0')
    expect(await hub1.lockResource(spec, ann, 60)).toBe(true)
    expect(hub1.editResource(spec, ann, 'v1')).toBe(true)
    const other = new Space({ id: 'one', doc: hub1.space.doc, clock, leases: new LocalLeaseClient({ clock }) })
    await expect(other.resources.lock(spec, 'ann')).rejects.toMatchObject({ code: 'lease_unavailable' })
    expect(hub1.getResource(spec)).toMatchObject({ version: 2, data: 'v1', lockedBy: 'ann' })
    other.destroy()
    hub1.destroy()
  })

  it('L1: after unlock or release, an older grant of the same holder does not come back', async () => {
    const clock = new ManualClock()
    const s = new Space({ id: 'l1', clock, leases: new LocalLeaseClient({ clock }) })
    s.join({ id: 'ann', name: 'Ann', kind: 'human' })
    s.join({ id: 'bo', name: 'Bo', kind: 'human' })
    const r = s.resources.create({ name: 'x', owner: 'ann', data: '' })
    await s.resources.lock(r.id, 'ann')
    await s.resources.lock(r.id, 'ann')
    await s.resources.unlock(r.id, 'ann')
    expect(s.resources.require(r.id).lock).toBeUndefined()
    await s.resources.lock(r.id, 'bo')
    const t = s.tasks.create({ title: 't', createdBy: 'ann' })
    await s.tasks.claim(t.id, 'ann')
    await s.tasks.claim(t.id, 'ann')
    await s.tasks.release(t.id, 'ann')
    expect(s.tasks.require(t.id).status).toBe('open')
    s.destroy()
  })

  it('concurrent merges into a new key keep every field; concurrent acks never re-deliver', () => {
    const { a, b, sync } = twin()
    a.join({ id: 'ann', name: 'Ann', kind: 'human' })
    a.join({ id: 'bob', name: 'Bob', kind: 'ai' })
    const m1 = a.messages.send({ from: 'ann', content: 'one', to: 'bob' })
    a.messages.send({ from: 'ann', content: 'two', to: 'bob' })
    sync()
    a.state.set('cfg', { x: 1 }, { by: 'ann', mode: 'merge' })
    b.state.set('cfg', { y: 2 }, { by: 'bob', mode: 'merge' })
    a.messages.ack('bob', [m1])
    b.messages.ack('bob')
    sync()
    expect(a.state.get('cfg')).toEqual({ x: 1, y: 2 })
    expect(b.state.get('cfg')).toEqual({ x: 1, y: 2 })
    expect(a.messages.inbox('bob')).toEqual([])
    expect(b.messages.inbox('bob')).toEqual([])
  })

  it('L3/L9: a completion written after the claim ran out does not count', async () => {
    const clock = new ManualClock()
    const leases = new LocalLeaseClient({ clock })
    const s = new Space({ id: 'l9', clock, leases })
    s.join({ id: 'ann', name: 'Ann', kind: 'human' })
    const t = s.tasks.create({ title: 't', createdBy: 'ann' })
    await s.tasks.claim(t.id, 'ann', { duration: 1000 })
    const claim = s.tasks.require(t.id).claim
    expect(claim?.at).toBe(clock.now()) // counted from when it was asked for
    // Forge a late completion straight into the document: views must ignore it.
    clock.advance(1000)
    const task = s.doc.getMap<Y.Map<unknown>>('tasks').get(t.id) as Y.Map<unknown>
    ;(task.get('completions') as Y.Map<unknown>).set(String(claim?.token), { by: 'ann', at: clock.now(), token: claim?.token })
    expect(s.tasks.require(t.id).status).toBe('open')
    s.destroy()
  })

  it('a vote that arrives after the deadline does not change the outcome', () => {
    const clock = new ManualClock()
    const { a, b, sync } = twin(clock)
    a.join({ id: 'ann', name: 'Ann', kind: 'human' })
    a.join({ id: 'bo', name: 'Bo', kind: 'human' })
    const p = a.proposals.create({ title: 'p', proposer: 'ann', quorum: 2, deadline: clock.now() + 100 })
    a.proposals.vote(p.id, 'ann', 'for')
    sync()
    clock.advance(100)
    expect(a.proposals.require(p.id).status).toBe('expired')
    // bo's replica runs behind: it believes the vote is still open and writes it after the deadline.
    const votes = (b.doc.getMap<Y.Map<unknown>>('proposals').get(p.id) as Y.Map<unknown>).get('votes') as Y.Map<unknown>
    votes.set('bo', { vote: 'for', at: clock.now() + 5 })
    sync()
    expect(a.proposals.require(p.id).status).toBe('expired')
    expect(b.proposals.require(p.id).status).toBe('expired')
  })

  it('ids with surrounding whitespace are refused, not trimmed into another id', () => {
    const s = new Space({ id: 'ids' })
    s.join({ id: 'bob', name: 'Bob', kind: 'human' })
    const p = s.proposals.create({ title: 'p', proposer: 'bob' })
    expect(() => s.proposals.vote(p.id, ' bob', 'for')).toThrow(ChorusError)
    expect(() => s.proposals.vote(` ${p.id}`, 'bob', 'for')).toThrow(/whitespace/)
    expect(() => s.messages.inbox('bob ')).toThrow(/whitespace/)
    expect(s.proposals.require(p.id).tally.for).toBe(0)
    s.destroy()
  })

  it('replays from an event that was since overwritten, and after+limit gives the oldest after the point', () => {
    const clock = new ManualClock()
    const s = new Space({ id: 'replay', clock })
    s.join({ id: 'ann', name: 'Ann', kind: 'human' })
    clock.advance(1)
    s.state.set('k', 1, { by: 'ann' })
    const point = s.events.history().at(-1) as ChorusEvent
    for (let i = 0; i < 5; i++) {
      clock.advance(1)
      s.messages.send({ from: 'ann', content: `n${i}` })
    }
    clock.advance(1)
    s.state.set('k', 2, { by: 'ann' }) // replaces the event at `point`
    expect(() => s.events.history({ after: point.id })).toThrow(/no event with id/)
    const after = s.events.history({ after: point, limit: 2 })
    expect(after.map((e) => (e.type === 'message' ? (e as ChorusEvent<'message'>).data.content : e.type))).toEqual(['n0', 'n1'])
    s.destroy()
  })

  it('a concurrent write that lost does not announce the winner twice', () => {
    const { a, b, sync } = twin()
    a.join({ id: 'ann', name: 'Ann', kind: 'human' })
    sync()
    const seen: string[] = []
    b.events.on('state_update', (e) => seen.push(e.id))
    a.state.set('k', 1, { by: 'ann' })
    b.state.set('k', 2, { by: 'ann' })
    sync()
    expect(new Set(seen).size).toBe(seen.length)
    expect(seen.length).toBeLessThanOrEqual(2)
  })

  it('ack never skips a message when the writer clock stepped back', () => {
    const clock = new ManualClock(2_000_000_000_000)
    const s = new Space({ id: 'step', clock })
    s.join({ id: 'x', name: 'X', kind: 'ai' })
    s.join({ id: 'y', name: 'Y', kind: 'ai' })
    s.messages.send({ from: 'x', content: 'first', to: 'y' })
    clock.set(1_900_000_000_000)
    s.messages.send({ from: 'x', content: 'second', to: 'y' })
    const [shown] = s.messages.inbox('y')
    expect(shown?.content).toBe('second') // earlier in time, later from the writer
    // Acking only 'second' would, with a plain per-writer maximum, also hide 'first'.
    expect(s.messages.ack('y', [shown as { id: string }])).toBe(0)
    expect(s.messages.inbox('y').map((m) => m.content)).toEqual(['second', 'first'])
    expect(s.messages.ack('y')).toBe(2)
    expect(s.messages.inbox('y')).toEqual([])
    s.destroy()
  })

  it('JSON values round-trip as stored', () => {
    const s = new Space({ id: 'json' })
    s.join({ id: 'ann', name: 'Ann', kind: 'human' })
    const value: Json = { list: [1, 'two', { three: null }], ok: true }
    s.state.set('v', value, { by: 'ann' })
    expect(s.state.get('v')).toEqual(value)
    s.destroy()
  })
})
