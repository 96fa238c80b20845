/**
 * `openMeshSpace`: agents that join a space over libp2p through a real relay, with the typed API: messages,
 * restricted channels by kind, claims as leases over libp2p, and what happens while the relay is down.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { openMeshSpace, type MeshSpace } from '@chorus/p2p'
import { codeOf } from '../support/errors.ts'
import { fixturePerTest } from '../support/relay.ts'
import { emits, spaceUpdates, until } from '../support/wait.ts'

const f = fixturePerTest()
const opened: MeshSpace[] = []
afterEach(async () => {
  for (const m of opened.splice(0)) await m.close()
})

async function join(url: string, id: string, kind: 'ai' | 'human'): Promise<MeshSpace> {
  const m = await openMeshSpace({
    relay: url,
    space: 'crew',
    participant: { id, name: id.toUpperCase(), kind },
    peer: { mdns: false, discoveryIntervalMs: 250 },
  })
  opened.push(m)
  await m.synced()
  return m
}

describe('openMeshSpace', () => {
  it('agents and a human talk over libp2p; ai-only stays with the ai; one claim wins; without the relay they still talk', async () => {
    const { relay, url } = await f.startRelay()
    const [ada, bob, hal] = [await join(url, 'ada', 'ai'), await join(url, 'bob', 'ai'), await join(url, 'hal', 'human')]
    expect([...ada.memberships.keys()]).toEqual(['crew', 'crew#ai-only'])
    expect([...hal.memberships.keys()]).toEqual(['crew', 'crew#human-only'])
    // The three find each other through the relay and connect directly.
    await until(() => [ada, bob, hal].every((m) => m.peer.node.getPeers().length >= 3), 'every peer connected to the two others and the relay', {
      on: [ada, bob, hal].map((m) => emits(m.peer.node, 'peer:connect')),
    })

    ada.space.messages.send({ from: 'ada', channel: 'general', content: 'hello crew' })
    ada.space.messages.send({ from: 'ada', channel: 'ai-only', content: 'for bots only' })
    hal.space.messages.send({ from: 'hal', channel: 'general', content: 'hi ada', to: 'ada' })
    await until(() => bob.space.messages.recent({ channel: 'ai-only' }).length === 1, 'bob gets the ai-only message', { on: spaceUpdates(bob.space) })
    await until(() => ada.space.messages.inbox('ada').some((m) => m.content === 'hi ada'), 'ada gets the direct message', { on: spaceUpdates(ada.space) })
    await until(() => hal.space.messages.recent({ channel: 'general' }).some((m) => m.content === 'hello crew'), 'hal gets the broadcast', { on: spaceUpdates(hal.space) })
    // The human holds no ai-only document at all: nothing of it reached him.
    expect(hal.space.messages.recent({ channel: 'ai-only' })).toEqual([])
    expect(hal.memberships.has('crew#ai-only')).toBe(false)

    // A claim is a lease from the relay over libp2p: of two racing agents exactly one wins.
    const task = ada.space.tasks.create({ title: 'deploy', createdBy: 'ada' })
    await until(() => bob.space.tasks.get(task.id) !== undefined, 'bob sees the task', { on: spaceUpdates(bob.space) })
    const results = await Promise.all([codeOf(ada.space.tasks.claim(task.id, 'ada')), codeOf(bob.space.tasks.claim(task.id, 'bob'))])
    expect([...results].sort()).toEqual(['conflict', 'ok'])
    const winner = results[0] === 'ok' ? 'ada' : 'bob'
    await until(() => hal.space.tasks.get(task.id)?.claim?.holder === winner, 'the claim reaches the human', { on: spaceUpdates(hal.space) })

    await relay.stop()
    bob.space.messages.send({ from: 'bob', channel: 'general', content: 'relay is gone, still here' })
    await until(() => hal.space.messages.recent({ channel: 'general' }).some((m) => m.content === 'relay is gone, still here'), 'messages flow without the relay', { on: spaceUpdates(hal.space) })
    // Without the arbiter no new claim can be granted (L10).
    const other = bob.space.tasks.create({ title: 'later', createdBy: 'bob' })
    expect(await codeOf(bob.space.tasks.claim(other.id, 'bob'))).toBe('lease_unavailable')
  })

  it('fails with a clear error when the relay is not there, or refuses the participant', async () => {
    expect(await codeOf(openMeshSpace({ relay: 'http://127.0.0.1:9', space: 'crew', participant: { id: 'x', name: 'X', kind: 'ai' } }))).toBe('lease_unavailable')
    const { url } = await f.startRelay()
    expect(await codeOf(openMeshSpace({ relay: url, space: 'bad name!', participant: { id: 'x', name: 'X', kind: 'ai' } }))).toBe('invalid_input')
  })
})
