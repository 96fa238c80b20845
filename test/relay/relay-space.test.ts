/**
 * Chorus replicas on a relay with its leases: claims and locks arbitrated between processes' replicas, renewed
 * while held, lost with an event when the relay ends them, and fenced afterwards (L6, L9).
 */
import { afterEach, describe, expect, it } from 'vitest'
import { CollaborationHub, isChorusError, ManualClock, openRelaySpace, type ChorusEvent, type RelaySpace } from '@chorus/sync'
import { fixturePerTest } from '../support/relay.ts'
import { spaceUpdates, until } from '../support/wait.ts'

const f = fixturePerTest()
const opened: RelaySpace[] = []
afterEach(async () => {
  for (const s of opened.splice(0)) await s.close()
})

async function agent(url: string, id: string, kind: 'ai' | 'human' = 'ai'): Promise<RelaySpace> {
  const s = await openRelaySpace({ relay: url, space: 'team', participant: { id, kind }, transport: { backoffBaseMs: 20 } })
  opened.push(s)
  await s.synced()
  s.space.join({ id, name: id, kind })
  return s
}

describe('replicas with the relay as arbiter', () => {
  it('two replicas race for one task: one claim, and the loser sees the winner', async () => {
    const { url } = await f.startRelay()
    const a = await agent(url, 'ann')
    const b = await agent(url, 'bob')
    const task = a.space.tasks.create({ title: 'ship it', createdBy: 'ann' })
    await until(() => b.space.tasks.get(task.id) !== undefined, 'b sees the task', { on: spaceUpdates(b.space) })
    const results = await Promise.allSettled([a.space.tasks.claim(task.id, 'ann'), b.space.tasks.claim(task.id, 'bob')])
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1)
    const refused = results.find((r) => r.status === 'rejected')
    expect(isChorusError(refused?.reason, 'conflict')).toBe(true)
    const winner = results[0].status === 'fulfilled' ? 'ann' : 'bob'
    await until(() => a.space.tasks.get(task.id)?.claim?.holder === winner && b.space.tasks.get(task.id)?.claim?.holder === winner, 'both see the winner', { on: spaceUpdates(a.space, b.space) })
    // The relay mirrors the grant into the space's leases map, for everyone to see.
    await until(() => (a.space.doc.getMap('leases').get(`task:${task.id}`) as { holder?: string } | undefined)?.holder === winner, 'the leases mirror', { on: spaceUpdates(a.space) })
    const holder = winner === 'ann' ? a : b
    await holder.space.tasks.complete(task.id, winner)
    await until(() => b.space.tasks.get(task.id)?.status === 'completed', 'b sees it completed', { on: spaceUpdates(b.space) })
    await until(() => !a.space.doc.getMap('leases').has(`task:${task.id}`), 'the released lease leaves the mirror', { on: spaceUpdates(a.space) })
  })

  it('a claim is renewed while held: its recorded grant moves on past the first duration', async () => {
    const { url } = await f.startRelay()
    const a = await agent(url, 'ann')
    const task = a.space.tasks.create({ title: 'long job', createdBy: 'ann' })
    const first = (await a.space.tasks.claim(task.id, 'ann', { duration: 300 })).claim
    if (first === undefined) throw new Error('no claim')
    // Renewed at half of what is left each time; each renewal is recorded with the time its request was sent.
    await until(() => (a.space.tasks.get(task.id)?.claim?.at ?? 0) >= first.at + 300, 'renewals recorded beyond the first grant', { on: spaceUpdates(a.space) })
    const now = a.space.tasks.get(task.id)
    expect(now?.status).toBe('claimed')
    expect(now?.claim?.token).toBe(first.token)
  })

  it('L6, L9: a grant the relay expires is reported lost, and completing under it is fenced', async () => {
    const clock = new ManualClock(Date.now())
    const { relay, url } = await f.startRelay({ clock })
    const a = await agent(url, 'ann')
    const task = a.space.tasks.create({ title: 'slow', createdBy: 'ann' })
    const lost: ChorusEvent[] = []
    a.space.events.on('lease_lost', (e) => lost.push(e))
    await a.space.tasks.claim(task.id, 'ann', { duration: 60_000, renew: false })
    clock.advance(60_001)
    await relay.leases.sweep()
    await until(() => lost.length === 1, 'the lease_lost event', { on: (wake) => a.space.events.on('lease_lost', wake) })
    expect(lost[0]?.data).toMatchObject({ key: `task:${task.id}`, reason: 'expired' })
    // The replica's own clock says the claim still runs, but it was told: the write is refused.
    await expect(a.space.tasks.complete(task.id, 'ann')).rejects.toMatchObject({ code: 'fenced' })
  })

  it('the collaboration hub connected to a relay: a lock taken in one process refuses the other', async () => {
    const { url } = await f.startRelay()
    const one = await CollaborationHub.connect({ hubId: 'hub', relay: url })
    const two = await CollaborationHub.connect({ hubId: 'hub', relay: url })
    try {
      const alice = one.addParticipant('Alice', 'human', {}, 'alice')
      const inst = two.addParticipant('Instance 1', 'ai_instance', {}, 'inst-1')
      const file = one.createResource('main.py', alice, 'print(1)')
      await until(() => two.space.resources.get(file) !== undefined && two.space.participants.get(alice) !== undefined, 'two sees the file', { on: spaceUpdates(two.space) })
      await until(() => one.space.participants.get(inst) !== undefined, 'one sees the instance', { on: spaceUpdates(one.space) })
      expect(await one.lockResource(file, alice, 60)).toBe(true)
      // Even before the lock record reaches `two`, the relay refuses it: it holds the lease.
      expect(await two.lockResource(file, inst, 60)).toBe(false)
      expect(one.editResource(file, alice, 'print(2)')).toBe(true)
      expect(await one.unlockResource(file, alice)).toBe(true)
      expect(await two.lockResource(file, inst, 60)).toBe(true)
    } finally {
      await one.close()
      await two.close()
    }
  })
})
