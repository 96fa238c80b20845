/**
 * Invites on the wire: a member vouches for a newcomer with its own peer key, and the newcomer syncs with members
 * that trust only the relay's key, a chain back to it being enough; a forged chain is not. (Expiry and depth:
 * membership.test.ts.)
 */
import { afterEach, describe, expect, it } from 'vitest'
import { ephemeralPeerKey, invite } from '@chorus/p2p'
import { until, updates } from '../support/wait.ts'
import { Cluster, DOC, link, membership, tcpAddress } from './p2p-helpers.ts'

const cluster = new Cluster()
afterEach(async () => {
  await cluster.stop()
})

describe('invites', () => {
  it("a newcomer invited by a member syncs with members that trust only the relay's key", async () => {
    const aliceKey = await ephemeralPeerKey()
    const alice = await cluster.member('alice', { peer: await cluster.peer({ key: aliceKey }) })
    const bob = await cluster.member('bob')
    const carolKey = await ephemeralPeerKey()
    // Alice vouches for Carol: signed with Alice's peer key, chained to Alice's relay-signed credential.
    const invited = invite(alice.membership, { peer: carolKey.peerId, participant: 'carol', kind: 'ai' }, aliceKey.seed)
    expect(invited.key).toBe(alice.membership.key)
    const carol = await cluster.member('carol', { peer: await cluster.peer({ key: carolKey }), membership: invited })
    alice.doc.getMap('m').set('from', 'alice')
    carol.doc.getMap('m').set('from-carol', 'hello')
    // Carol meets Bob, who never heard of Alice's invite: the chain to the relay's key is what he checks.
    await link(carol, bob)
    await link(carol, alice)
    await until(() => bob.doc.getMap('m').get('from-carol') === 'hello' && bob.doc.getMap('m').get('from') === 'alice', 'bob to get both edits', { on: updates(bob.doc) })
    expect(bob.transport.stats.refused).toBe(0)
  })

  it("an invite chained to a member's credential altered to name the forger gets no link", async () => {
    const aliceKey = await ephemeralPeerKey()
    const alice = await cluster.member('alice', { peer: await cluster.peer({ key: aliceKey }), membership: membership(DOC, aliceKey.peerId, 'alice') })
    const bob = await cluster.member('bob')
    const malloryKey = await ephemeralPeerKey()
    // Mallory takes Alice's (public) credential and signs an invite for himself with his own key.
    const forged = invite({ ...alice.membership, credential: { ...alice.membership.credential, peer: malloryKey.peerId } }, { peer: malloryKey.peerId, participant: 'mallory', kind: 'ai' }, malloryKey.seed)
    const mallory = await cluster.member('mallory', { peer: await cluster.peer({ key: malloryKey }), membership: forged })
    await mallory.peer.dial(tcpAddress(bob.peer))
    await until(() => bob.transport.stats.refused >= 1, 'bob to refuse the forged invite')
    expect(bob.transport.peers.has(malloryKey.peerId)).toBe(false)
    expect(mallory.doc.getMap('m').size).toBe(0)
  })
})
