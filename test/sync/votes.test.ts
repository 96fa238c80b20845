import * as prng from 'lib0/prng'
import { describe, expect, it } from 'vitest'
import { connectSpace, ManualClock, Space, type Vote } from '@chorus/sync'
import { MemoryNetwork } from '@chorus/sync/testing'

describe('concurrent voting', () => {
  it('100 voters on 10 replicas, some changing their vote: every replica shows the exact tally', async () => {
    const seed = 1234
    const gen = prng.create(seed)
    const clock = new ManualClock()
    const network = new MemoryNetwork({ seed })
    const replicas: Space[] = []
    for (let i = 0; i < 10; i++) {
      const space = new Space({ id: 'votes', clock })
      await connectSpace(space, (d) => (d.doc === space.doc ? network.transport(`r${i}`) : undefined))
      replicas.push(space)
    }
    const first = replicas[0] as Space
    first.join({ id: 'chair', name: 'Chair', kind: 'human' })
    const proposal = first.proposals.create({ title: 'Adopt Chorus', proposer: 'chair', quorum: 100 })
    network.deliverAll()

    // Each replica hosts 10 voters; nobody sees anyone else's vote until the end.
    const finalVote = new Map<string, Vote>()
    const choices: Vote[] = ['for', 'against', 'abstain']
    replicas.forEach((space, r) => {
      for (let v = 0; v < 10; v++) {
        const voter = `voter-${r}-${v}`
        space.join({ id: voter, name: voter, kind: v % 2 === 0 ? 'ai' : 'human' })
        let vote = prng.oneOf(gen, choices)
        space.proposals.vote(proposal.id, voter, vote)
        if (prng.bool(gen)) {
          vote = prng.oneOf(gen, choices)
          clock.advance(1)
          space.proposals.vote(proposal.id, voter, vote)
        }
        finalVote.set(voter, vote)
      }
    })
    network.deliverAll()

    const expected = { for: 0, against: 0, abstain: 0 }
    for (const v of finalVote.values()) expected[v]++
    expect(expected.for + expected.against + expected.abstain).toBe(100)
    for (const [i, space] of replicas.entries()) {
      const p = space.proposals.require(proposal.id)
      expect({ for: p.tally.for, against: p.tally.against, abstain: p.tally.abstain }, `replica ${i} (seed ${seed})`).toEqual(expected)
      expect(Object.keys(p.votes)).toHaveLength(100)
      expect(p.votes).toEqual(Object.fromEntries([...finalVote].sort(([a], [b]) => (a < b ? -1 : 1))))
      expect(p.status).toBe(first.proposals.require(proposal.id).status)
    }
    for (const s of replicas) s.destroy()
  })

  it('derives status from threshold, quorum and deadline the same way everywhere', () => {
    const clock = new ManualClock()
    const space = new Space({ id: 'status', clock })
    for (const id of ['a', 'b', 'c', 'd']) space.join({ id, name: id, kind: 'human' })
    const p = space.proposals.create({ title: 'x', proposer: 'a', quorum: 3, deadline: clock.now() + 1000 })
    space.proposals.vote(p.id, 'a', 'for')
    space.proposals.vote(p.id, 'b', 'for')
    expect(space.proposals.require(p.id).status).toBe('open') // below quorum
    space.proposals.vote(p.id, 'c', 'for')
    expect(space.proposals.require(p.id).status).toBe('approved')
    space.proposals.vote(p.id, 'd', 'against') // 3/4 = 0.75 still meets the default threshold
    expect(space.proposals.require(p.id).tally.ratio).toBe(0.75)
    expect(space.proposals.require(p.id).status).toBe('approved')
    space.proposals.vote(p.id, 'c', 'against') // 2/4 falls below
    expect(space.proposals.require(p.id).status).toBe('open')
    clock.advance(1000)
    expect(space.proposals.require(p.id).status).toBe('rejected')
    expect(() => space.proposals.vote(p.id, 'c', 'for')).toThrow(/closed/)
    const lonely = space.proposals.create({ title: 'y', proposer: 'a', quorum: 2, deadline: clock.now() + 10 })
    space.proposals.vote(lonely.id, 'a', 'for')
    clock.advance(10)
    expect(space.proposals.require(lonely.id).status).toBe('expired')
    space.destroy()
  })
})
