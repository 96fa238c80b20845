import { afterEach, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { Awareness } from 'y-protocols/awareness'
import * as encoding from 'lib0/encoding'
import * as prng from 'lib0/prng'
import { MemoryNetwork } from '@chorus/sync/testing'
import {
  encodeAwarenessMessage,
  encodeQueryAwareness,
  encodeSyncStep1,
  messageAwareness,
  messageSync,
  PeerOrigin,
  Replicator,
  type PeerId,
  type TransportListener,
} from '@chorus/sync'

interface Replica {
  name: string
  doc: Y.Doc
  awareness: Awareness
  replicator: Replicator
  errors: unknown[]
}

const live: Replica[] = []

afterEach(async () => {
  for (const r of live.splice(0)) {
    await r.replicator.stop()
    r.awareness.destroy()
    r.doc.destroy()
  }
})

const replica = async (name: string, ...nets: MemoryNetwork[]): Promise<Replica> => {
  const doc = new Y.Doc()
  const awareness = new Awareness(doc)
  awareness.setLocalState({ name })
  const errors: unknown[] = []
  const replicator = new Replicator(doc, awareness, { onError: (e) => errors.push(e) })
  const r = { name, doc, awareness, replicator, errors }
  live.push(r)
  for (const net of nets) await replicator.attach(net.transport(name))
  return r
}

/** A raw node on the network that sends whatever bytes a test gives it. */
const rawNode = async (net: MemoryNetwork, name: string): Promise<{ send: (to: PeerId, m: Uint8Array) => void }> => {
  const t = net.transport(name)
  const ignore: TransportListener = { peerJoined: () => {}, peerLeft: () => {}, message: () => {} }
  await t.start(ignore)
  return { send: (to, m) => t.send(to, m) }
}

/** An awareness message carrying one client's state as this exact text (clock 1). */
const awarenessOf = (client: number, state: string): Uint8Array =>
  encoding.encode((e) => {
    encoding.writeVarUint(e, messageAwareness)
    encoding.writeVarUint8Array(
      e,
      encoding.encode((u) => {
        encoding.writeVarUint(u, 1)
        encoding.writeVarUint(u, client)
        encoding.writeVarUint(u, 1)
        encoding.writeVarString(u, state)
      }),
    )
  })

const content = (doc: Y.Doc): unknown => ({
  map: doc.getMap('map').toJSON(),
  list: doc.getArray('list').toJSON(),
  text: doc.getText('text').toJSON(),
})

const expectConverged = (replicas: readonly Replica[], seed: number): void => {
  const [first, ...rest] = replicas
  if (first === undefined) return
  for (const r of rest) {
    expect(content(r.doc), `${r.name} vs ${first.name}, seed ${seed}`).toEqual(content(first.doc))
    expect(Y.encodeStateVector(r.doc), `state vector of ${r.name}, seed ${seed}`).toEqual(
      Y.encodeStateVector(first.doc),
    )
  }
}

const randomEdit = (gen: prng.PRNG, doc: Y.Doc): void => {
  const text = doc.getText('text')
  const list = doc.getArray<number>('list')
  switch (prng.uint32(gen, 0, 4)) {
    case 0:
      doc.getMap('map').set(prng.oneOf(gen, ['k1', 'k2', 'k3']), prng.word(gen))
      break
    case 1:
      list.insert(prng.uint32(gen, 0, list.length), [prng.uint32(gen, 0, 1000)])
      break
    case 2:
      if (list.length > 0) list.delete(prng.uint32(gen, 0, list.length - 1), 1)
      break
    case 3:
      text.insert(prng.uint32(gen, 0, text.length), prng.word(gen, 1, 4))
      break
    default:
      if (text.length > 0) text.delete(prng.uint32(gen, 0, text.length - 1), 1)
  }
}

/** Edit at random, deliver and duplicate at random, then let the network go quiet. */
const churn = (gen: prng.PRNG, net: MemoryNetwork, replicas: readonly Replica[], steps: number): void => {
  for (let i = 0; i < steps; i++) {
    const roll = prng.uint32(gen, 0, 9)
    if (roll < 3) randomEdit(gen, prng.oneOf(gen, [...replicas]).doc)
    else if (roll < 4) net.duplicateRandom()
    else net.deliverRandom()
  }
}

const awarenessNames = (r: Replica): string[] =>
  [...r.awareness.getStates().values()].map((s) => String((s as { name?: unknown }).name)).sort()

const seeds = Array.from({ length: 25 }, (_, i) => 1000 + i)

describe('Replicator', () => {
  it('two replicas converge under random order and duplication', async () => {
    for (const seed of seeds) {
      const gen = prng.create(seed)
      const net = new MemoryNetwork({ seed })
      const replicas = [await replica('a'), await replica('b')]
      for (let i = 0; i < 5; i++) for (const r of replicas) randomEdit(gen, r.doc)
      for (const r of replicas) await r.replicator.attach(net.transport(r.name))
      churn(gen, net, replicas, 300)
      net.deliverAll()
      expectConverged(replicas, seed)
      for (const r of replicas) expect(r.replicator.stats.malformed, `seed ${seed}`).toBe(0)
    }
  })

  it('three replicas converge under random order, duplication, partitions and reconnects', async () => {
    for (const seed of seeds) {
      const gen = prng.create(seed)
      const net = new MemoryNetwork({ seed })
      const replicas = [await replica('a', net), await replica('b', net), await replica('c', net)]
      churn(gen, net, replicas, 100)
      net.partition(['a'], ['b', 'c'])
      churn(gen, net, replicas, 100)
      net.heal()
      net.disconnect('b')
      churn(gen, net, replicas, 100)
      net.reconnect('b')
      churn(gen, net, replicas, 100)
      net.deliverAll()
      expectConverged(replicas, seed)
      for (const r of replicas) expect(awarenessNames(r), `${r.name}, seed ${seed}`).toEqual(['a', 'b', 'c'])
    }
  })

  it('emits synced per peer and resolves whenSynced', async () => {
    const net = new MemoryNetwork({ seed: 3 })
    const a = await replica('a', net)
    const seen: PeerId[] = []
    a.replicator.on('synced', (peer) => seen.push(peer))
    const b = await replica('b', net)
    b.doc.getMap('map').set('x', 1)
    const synced = a.replicator.whenSynced('b')
    expect(a.replicator.isSynced('b')).toBe(false)
    net.deliverAll()
    await synced
    expect(seen).toEqual(['b'])
    expect(b.replicator.isSynced('a')).toBe(true)
    expect(a.doc.getMap('map').get('x')).toBe(1)
  })

  it('rejects whenSynced when stopped', async () => {
    const net = new MemoryNetwork({ seed: 4 })
    const a = await replica('a', net)
    const waiting = a.replicator.whenSynced('nobody')
    await a.replicator.stop()
    await expect(waiting).rejects.toMatchObject({ code: 'closed' })
  })

  it('counts and ignores malformed messages, and sync continues', async () => {
    const net = new MemoryNetwork({ seed: 5 })
    const a = await replica('a', net)
    const b = await replica('b', net)
    const evil = await rawNode(net, 'evil')
    net.deliverAll()
    const bad = [
      new Uint8Array([]), // no type
      new Uint8Array([9]), // unknown type
      new Uint8Array([messageSync, 7]), // unknown sync step
      new Uint8Array([messageSync, 2, 50, 1, 2]), // update shorter than its length
      new Uint8Array([messageSync, 1, 4, 255, 255, 255, 255]), // step 2 with garbage update
      awarenessOf(77, '{not json'),
      awarenessOf(78, '42'),
    ]
    for (const m of bad) evil.send('a', m)
    net.deliverAll()
    expect(a.replicator.stats.malformed).toBe(bad.length)
    expect(a.errors).toHaveLength(bad.length)
    expect(a.awareness.getStates().has(77)).toBe(false)
    expect(a.awareness.getStates().has(78)).toBe(false)

    const gen = prng.create(5)
    for (let i = 0; i < 300; i++) evil.send(prng.oneOf(gen, ['a', 'b']), prng.uint8Array(gen, prng.uint32(gen, 0, 64)))
    expect(() => net.deliverAll()).not.toThrow()
    expect(a.replicator.stats.malformed + b.replicator.stats.malformed).toBeGreaterThan(bad.length)

    a.doc.getText('text').insert(0, 'still syncing')
    b.doc.getMap('map').set('k', 'v')
    net.deliverAll()
    expect(b.doc.getText('text').toJSON()).toBe('still syncing')
    expect(a.doc.getMap('map').get('k')).toBe('v')
  })

  it('answers query-awareness with every known state and ignores auth', async () => {
    const net = new MemoryNetwork({ seed: 6 })
    const a = await replica('a', net)
    const got: Uint8Array[] = []
    const t = net.transport('probe')
    await t.start({ peerJoined: () => {}, peerLeft: () => {}, message: (_p, m) => got.push(m) })
    net.deliverAll()
    got.length = 0
    t.send('a', encodeQueryAwareness())
    t.send('a', new Uint8Array([2, 0]))
    net.deliverAll()
    expect(got).toEqual([encodeAwarenessMessage(a.awareness, [a.awareness.clientID])])
    expect(a.replicator.stats.malformed).toBe(0)
  })

  it('sends sync step 1 and its awareness to a peer that joins', async () => {
    const net = new MemoryNetwork({ seed: 7 })
    const a = await replica('a', net)
    a.doc.getMap('map').set('x', 1)
    const got: Uint8Array[] = []
    await net.transport('probe').start({ peerJoined: () => {}, peerLeft: () => {}, message: (_p, m) => got.push(m) })
    net.deliverAll()
    expect(got).toContainEqual(encodeSyncStep1(a.doc))
    expect(got).toContainEqual(encodeAwarenessMessage(a.awareness, [a.awareness.clientID]))
  })

  it('removes the awareness states of a peer that left, and only those', async () => {
    const net = new MemoryNetwork({ seed: 8 })
    const [a, b, c] = [await replica('a', net), await replica('b', net), await replica('c', net)]
    if (!a || !b || !c) throw new Error('unreachable')
    net.deliverAll()
    for (const r of [a, b, c]) expect(awarenessNames(r)).toEqual(['a', 'b', 'c'])

    net.disconnect('b')
    net.deliverAll()
    expect(awarenessNames(a)).toEqual(['a', 'c'])
    expect(awarenessNames(c)).toEqual(['a', 'c'])
    expect(awarenessNames(b)).toEqual(['b'])

    net.reconnect('b')
    net.deliverAll()
    for (const r of [a, b, c]) expect(awarenessNames(r)).toEqual(['a', 'b', 'c'])

    // b is still reachable through c: a drops it at first, but b re-asserts itself and a sees it again.
    net.partition(['a'], ['b'])
    net.deliverAll()
    for (const r of [a, b, c]) expect(awarenessNames(r)).toEqual(['a', 'b', 'c'])

    await b.replicator.stop()
    net.deliverAll()
    expect(awarenessNames(a)).toEqual(['a', 'c'])
    expect(awarenessNames(c)).toEqual(['a', 'c'])
  })

  it('forwards doc updates and awareness between transports it bridges', async () => {
    const left = new MemoryNetwork({ seed: 9 })
    const right = new MemoryNetwork({ seed: 10 })
    const a = await replica('a', left)
    const bridge = await replica('bridge', left, right)
    const c = await replica('c', right)
    const origins: unknown[] = []
    c.doc.on('update', (_u: Uint8Array, origin: unknown) => origins.push(origin))
    const quiet = (): void => {
      while (left.deliverRandom() || right.deliverRandom()) {
        /* until both are quiet */
      }
    }
    a.doc.getText('text').insert(0, 'from a')
    quiet()
    expect(c.doc.getText('text').toJSON()).toBe('from a')
    expect(origins.every((o) => o instanceof PeerOrigin && o.peer === 'bridge')).toBe(true)
    c.doc.getMap('map').set('from', 'c')
    quiet()
    expect(a.doc.getMap('map').get('from')).toBe('c')
    expect(awarenessNames(c)).toEqual(['a', 'bridge', 'c'])
    expect(awarenessNames(a)).toEqual(['a', 'bridge', 'c'])

    left.disconnect('a')
    quiet()
    expect(awarenessNames(c)).toEqual(['bridge', 'c'])
    expect(bridge.replicator.stats.malformed).toBe(0)
  })

  it('shows clients behind a bridge again as soon as the bridge link comes back', async () => {
    const nets = [new MemoryNetwork({ seed: 13 }), new MemoryNetwork({ seed: 14 }), new MemoryNetwork({ seed: 15 })]
    const [n1, n2, n3] = nets
    if (!n1 || !n2 || !n3) throw new Error('unreachable')
    const quiet = (): void => {
      while (nets.some((n) => n.deliverRandom())) {
        /* until every network is quiet */
      }
    }
    // y —n1— r —n2— q —n3— z: z never reconnects itself, so only re-admission (not its renewal) brings it back.
    const y = await replica('y', n1)
    const r = await replica('r', n1, n2)
    const q = await replica('q', n2, n3)
    const z = await replica('z', n3)
    quiet()
    expect(awarenessNames(y)).toEqual(['q', 'r', 'y', 'z'])
    n2.disconnect('q')
    quiet()
    expect(awarenessNames(y)).toEqual(['r', 'y'])
    expect(awarenessNames(z)).toEqual(['q', 'z'])
    n2.reconnect('q')
    quiet()
    for (const x of [y, r, q, z]) expect(awarenessNames(x), x.name).toEqual(['q', 'r', 'y', 'z'])
  })

  it('does not send an update back to the peer it came from', async () => {
    const net = new MemoryNetwork({ seed: 11 })
    const a = await replica('a', net)
    const b = await replica('b', net)
    net.deliverAll()
    const sentBefore = b.replicator.stats.sent
    a.doc.getMap('map').set('x', 1)
    net.deliverAll()
    expect(b.doc.getMap('map').get('x')).toBe(1)
    expect(b.replicator.stats.sent).toBe(sentBefore)
    expect(net.pending).toBe(0)
  })

  it('detach removes what was learned through that transport', async () => {
    const net = new MemoryNetwork({ seed: 12 })
    const a = await replica('a')
    const t = net.transport('a')
    await a.replicator.attach(t)
    await replica('b', net)
    net.deliverAll()
    expect(awarenessNames(a)).toEqual(['a', 'b'])
    await a.replicator.detach(t)
    expect(awarenessNames(a)).toEqual(['a'])
    expect(t.peers.size).toBe(0)
  })
})
