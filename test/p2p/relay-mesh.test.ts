/**
 * The relay in the mesh: memberships over REST, the relay's node as bootstrap peer and replica, peers syncing
 * while the relay is down and the relay catching up when it is back, and a peer reachable only through the
 * relay's circuit. Real relay, real libp2p nodes on loopback TCP.
 */
import { createServer } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { Awareness } from 'y-protocols/awareness'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { Replicator } from '@chorus/sync'
import { ChorusPeer, ephemeralPeerKey, parseMembership, type Membership } from '@chorus/p2p'
import type { RelayCapabilities } from '@chorus/relay'
import { fixturePerTest } from '../support/relay.ts'
import { emits, until, updates } from '../support/wait.ts'
import { hub, type Reply } from '../relay/rest-helpers.ts'

const f = fixturePerTest()
const peers: ChorusPeer[] = []
const replicators: Replicator[] = []
afterEach(async () => {
  for (const r of replicators.splice(0)) await r.stop()
  for (const p of peers.splice(0)) await p.stop()
})

const freePort = async (): Promise<number> => {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

const post = (url: string, path: string, body: unknown): Promise<Reply> => hub(url).post(path, body)

interface Member {
  peer: ChorusPeer
  doc: Y.Doc
  replicator: Replicator
}

/** Registers `id` in `space`, gets its memberships from the relay, and starts a peer syncing the main document. */
async function member(url: string, space: string, id: string, options: { bootstrap: string[]; circuitOnly?: boolean; relayPeer?: string }): Promise<Member> {
  expect((await post(url, `/spaces/${space}/entities/register`, { entity_id: id, entity_type: 'ai_agent', name: id })).status).toBe(200)
  const key = await ephemeralPeerKey()
  const got = await post(url, `/spaces/${space}/p2p/membership`, { peer_id: key.peerId, entity_id: id })
  expect(got.status).toBe(200)
  const memberships = (got.body.memberships as unknown[]).map(parseMembership)
  expect(memberships.map((m) => m.credential.doc)).toEqual([space, `${space}#ai-only`])
  const relayPeer = options.relayPeer
  const peer = await ChorusPeer.start({
    key,
    bootstrap: options.bootstrap,
    mdns: false,
    discoveryIntervalMs: 250,
    ...(options.circuitOnly === true
      ? {
          listen: [],
          listenViaRelay: true,
          // Dial nothing directly but the relay: every other peer only through its circuit.
          connectionGater: { denyDialMultiaddr: (ma: Multiaddr) => !ma.toString().includes('/p2p-circuit') && !ma.toString().includes(relayPeer ?? '-') },
        }
      : {}),
  })
  peers.push(peer)
  const doc = new Y.Doc()
  const replicator = new Replicator(doc, new Awareness(doc))
  replicators.push(replicator)
  await replicator.attach(peer.document(memberships[0] as Membership))
  return { peer, doc, replicator }
}

const json = (m: Member): unknown => m.doc.getMap('m').toJSON()

describe('the relay in the libp2p mesh', () => {
  it('bootstraps peers, syncs with them and its WebSocket clients; peers go on without it, and it catches up', async () => {
    const [httpPort, tcpPort, wsPort] = [await freePort(), await freePort(), await freePort()]
    const p2p = { listen: [`/ip4/127.0.0.1/tcp/${tcpPort}`, `/ip4/127.0.0.1/tcp/${wsPort}/ws`] }
    let { relay, url } = await f.startRelay({ port: httpPort, p2p })
    const caps = (await (await fetch(`${url}/capabilities`)).json()) as RelayCapabilities
    expect(caps.p2p?.protocols).toEqual(['/chorus/sync/1.0.0'])
    expect(caps.p2p?.multiaddrs.some((a) => a.includes(`/tcp/${tcpPort}/p2p/`))).toBe(true)
    const bootstrap = (caps.p2p?.multiaddrs ?? []).filter((a) => !a.includes('/ws'))

    const members = await Promise.all(['a', 'b', 'c'].map((id) => member(url, 'mesh', id, { bootstrap })))
    // Found each other through the relay (pubsub peer discovery) and connected directly.
    await until(() => members.every((m) => m.peer.node.getPeers().length >= 3), 'every peer connected to the relay and both others', { on: members.map((m) => emits(m.peer.node, 'peer:connect')) })
    members.forEach((m, i) => m.doc.getMap('m').set(`with-relay-${i}`, i))
    const viaWebSocket = new Y.Doc()
    f.provider(url, 'mesh', viaWebSocket)
    await until(() => viaWebSocket.getMap('m').size === 3, 'a WebSocket client of the relay sees every peer edit', { on: updates(viaWebSocket) })
    viaWebSocket.getMap('m').set('from-websocket', true)
    await until(() => members.every((m) => m.doc.getMap('m').get('from-websocket') === true), 'peers see the WebSocket edit', { on: updates(...members.map((m) => m.doc)) })

    await relay.stop()
    members.forEach((m, i) => m.doc.getMap('m').set(`without-relay-${i}`, i))
    await until(() => members.every((m) => m.doc.getMap('m').size === 7), 'peers converge with the relay down', { on: updates(...members.map((m) => m.doc)) })
    for (const m of members) expect(json(m)).toEqual(json(members[0] as Member))

    ;({ relay, url } = await f.startRelay({ port: httpPort, p2p }))
    const after = new Y.Doc()
    f.provider(url, 'mesh', after)
    await until(() => after.getMap('m').size === 7, 'the restarted relay caught up with what peers wrote while it was down', { on: updates(after), timeoutMs: 40_000 })
    expect(after.getMap('m').toJSON()).toEqual(json(members[0] as Member))
  })

  it('a peer reachable only through the relay circuit syncs with the others', async () => {
    const { url } = await f.startRelay()
    const caps = (await (await fetch(`${url}/capabilities`)).json()) as RelayCapabilities
    const bootstrap = (caps.p2p?.multiaddrs ?? []).filter((a) => !a.includes('/ws'))
    const relayPeer = caps.p2p?.peerId as string
    const open = await Promise.all(['a', 'b'].map((id) => member(url, 'circuit', id, { bootstrap })))
    const hidden = await member(url, 'circuit', 'hidden', { bootstrap, circuitOnly: true, relayPeer })
    // The hidden peer listens on no address of its own, only on the relay's circuit.
    await until(() => hidden.peer.multiaddrs.some((a) => a.includes('/p2p-circuit')), 'a circuit reservation on the relay')
    expect(hidden.peer.multiaddrs.every((a) => a.includes('/p2p-circuit'))).toBe(true)
    // The others reach it through the circuit (dial it explicitly, as discovery would).
    const circuit = hidden.peer.multiaddrs.find((a) => a.includes('/p2p-circuit')) as string
    for (const m of open) await m.peer.node.dial(multiaddr(circuit))
    hidden.doc.getMap('m').set('hidden', 1)
    open.forEach((m, i) => m.doc.getMap('m').set(`open-${i}`, i))
    await until(() => [...open, hidden].every((m) => m.doc.getMap('m').size === 3), 'all three converge', { on: updates(...[...open, hidden].map((m) => m.doc)) })
    const hiddenId = hidden.peer.peerId
    for (const m of open) {
      const connections = m.peer.node.getConnections().filter((c) => c.remotePeer.toString() === hiddenId)
      expect(connections.length).toBeGreaterThan(0)
      expect(connections.every((c) => c.remoteAddr.toString().includes('/p2p-circuit'))).toBe(true)
    }
  })

  it('refuses memberships with clear errors', async () => {
    const { url } = await f.startRelay()
    const key = await ephemeralPeerKey()
    expect((await post(url, '/spaces/x/p2p/membership', { peer_id: key.peerId, entity_id: 'nobody' })).status).toBe(404)
    await post(url, '/spaces/x/entities/register', { entity_id: 'h', entity_type: 'human', name: 'H' })
    const bad = await post(url, '/spaces/x/p2p/membership', { peer_id: 'not-a-peer', entity_id: 'h' })
    expect(bad).toMatchObject({ status: 400, body: { error: 'invalid_input' } })
    const human = await post(url, '/spaces/x/p2p/membership', { peer_id: key.peerId, entity_id: 'h' })
    expect((human.body.memberships as Membership[]).map((m) => m.credential.doc)).toEqual(['x', 'x#human-only'])
  })
})
