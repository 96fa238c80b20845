/**
 * Chorus over real libp2p nodes on loopback TCP: documents converge across topologies, through a partition and
 * its healing, a late joiner catches up from one peer, non-members get nothing of a document (checked on the
 * wire), and the size limits hold. Nothing is mocked; every wait is for a condition, re-checked as documents change
 * (or polled where nothing announces it), with a generous safety deadline.
 */
import { afterEach, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import type { Stream } from '@libp2p/interface'
import { answerSyncMessage, encodeSyncStep1, encodeSyncUpdate, generateSecretKey, isChorusError, messageSync } from '@chorus/sync'
import {
  documentKey,
  documentSecrets,
  ephemeralPeerKey,
  issueCredential,
  MAX_GOSSIP_BYTES,
  MAX_MESSAGE_BYTES,
  SYNC_PROTOCOL,
  type ChorusPeer,
  type Membership,
} from '@chorus/p2p'
import {
  bytesEqual,
  Cluster,
  connectionsBetween,
  containsBytes,
  content,
  describeDocs,
  DOC,
  frame,
  frames,
  gossipMeshed,
  holdsAll,
  identical,
  link,
  membership,
  meshPeers,
  Partition,
  peerIdFromString,
  randomEdits,
  relayKey,
  relaySecret,
  stateVector,
  tcpAddress,
  type EditLog,
  type Member,
} from './p2p-helpers.ts'
import { seeded } from '../support/random.ts'
import { emits, nextTurn, until, updates } from '../support/wait.ts'

let cluster = new Cluster()

afterEach(async () => {
  await cluster.stop()
  cluster = new Cluster()
})

const NAMES = ['A', 'B', 'C', 'D', 'E']

async function members(n: number, presence = false): Promise<Member[]> {
  const out: Member[] = []
  for (const name of NAMES.slice(0, n)) out.push(await cluster.member(name, presence ? { presence: { name } } : {}))
  return out
}

const at = <T>(list: readonly T[], i: number): T => {
  const item = list[i]
  if (item === undefined) throw new Error(`no item ${i}`)
  return item
}

/** Every member edits concurrently: `rounds` bursts of `perRound` edits each, with one I/O turn between bursts. */
async function concurrentEdits(
  group: readonly Member[],
  random: () => number,
  rounds: number,
  perRound: number,
  logs: Map<string, EditLog>,
  phase = '',
): Promise<void> {
  for (let round = 0; round < rounds; round++) {
    for (const m of group) {
      // Each phase writes its own keys, so what a later phase overwrites is not expected to survive.
      const editor = `${m.name}${phase}`
      const log = logs.get(editor) ?? { textChars: 0, own: new Map<string, string>() }
      logs.set(editor, randomEdits(m.doc, random, editor, perRound, log))
    }
    await nextTurn()
  }
}

async function converged(group: readonly Member[], logs: readonly EditLog[], what: string): Promise<void> {
  const docs = group.map((m) => m.doc)
  await until(() => identical(docs) && docs.every((d) => holdsAll(d, logs)), () => `${what}: ${describeDocs(group)}`, { on: updates(...docs) })
  const [first, ...rest] = group
  if (first === undefined) return
  for (const m of rest) {
    expect(Y.encodeStateVector(m.doc), `state vector of ${m.name}`).toEqual(Y.encodeStateVector(first.doc))
    expect(content(m.doc), `content of ${m.name}`).toEqual(content(first.doc))
  }
  for (const m of group) expect(holdsAll(m.doc, logs), `${m.name} holds every edit`).toBe(true)
}

const clientsIn = (doc: Y.Doc): number[] => [...Y.decodeStateVector(Y.encodeStateVector(doc)).keys()].sort((x, y) => x - y)

describe('members converge over libp2p', () => {
  const topologies: Array<{ name: string; n: number; edges: Array<[number, number]> }> = [
    { name: 'a chain A-B-C-D-E (only forwarding reaches the ends)', n: 5, edges: [[0, 1], [1, 2], [2, 3], [3, 4]] },
    {
      name: 'a full mesh of 5',
      n: 5,
      edges: [[0, 1], [0, 2], [0, 3], [0, 4], [1, 2], [1, 3], [1, 4], [2, 3], [2, 4], [3, 4]],
    },
    { name: 'a star of 3 (B in the middle)', n: 3, edges: [[1, 0], [1, 2]] },
  ]

  for (const topology of topologies) {
    it(`${topology.name}: concurrent map and text edits on every peer end identical, presence included`, () =>
      seeded(async (random) => {
        const group = await members(topology.n, true)
        for (const [i, j] of topology.edges) await link(at(group, i), at(group, j))
        // The topology is what was dialled: peers without an edge have no connection (nothing is discovered).
        for (let i = 0; i < group.length; i++) {
          for (let j = i + 1; j < group.length; j++) {
            const edge = topology.edges.some(([x, y]) => (x === i && y === j) || (x === j && y === i))
            expect(connectionsBetween(at(group, i).peer, at(group, j).peer) > 0, `${i}-${j} connected`).toBe(edge)
          }
        }
        // No wait for gossipsub's mesh: edits start while it is still being grafted.
        const logs = new Map<string, EditLog>()
        await concurrentEdits(group, random, 6, 8, logs)
        await converged(group, [...logs.values()], 'all docs to converge')
        const clients = group.map((m) => m.doc.clientID).sort((x, y) => x - y)
        for (const m of group) expect(clientsIn(m.doc)).toEqual(clients)
        // Presence travels the same paths (gossip, forwarding): everyone sees everyone.
        await until(
          () => group.every((m) => group.every((o) => (m.awareness.getStates().get(o.awareness.clientID) as { name?: string } | undefined)?.name === o.name)),
          () => `every presence everywhere: ${group.map((m) => `${m.name} sees ${m.awareness.getStates().size}`).join(', ')}`,
          { on: group.map((m) => emits(m.awareness, 'update')) },
        )
        // And a second, single edit at one end still reaches the other end.
        const first = at(group, 0)
        const last = at(group, group.length - 1)
        first.doc.getMap('m').set('after', 'the last edit')
        await until(() => last.doc.getMap('m').get('after') === 'the last edit', 'the last edit to cross the whole topology', { on: updates(last.doc) })
        await converged(group, [...logs.values()], 'all docs to converge again')
        for (const m of group) expect(m.replicator.stats.malformed).toBe(0)
      }))
  }

  it('an edit forwarded by gossip right after a peer links, before gossipsub grafts it into its mesh, still reaches it', async () => {
    // A-B are linked and meshed; C links to B only. Until a heartbeat grafts C into B's mesh (up to 1 s),
    // gossipsub at B forwards A's messages to nobody, and C, once grafted, is not offered them by IHAVE either:
    // only B's replicator can get them to C, over the direct link.
    const a = await cluster.member('A')
    const b = await cluster.member('B')
    await link(a, b)
    await gossipMeshed([[a, b]])
    const topic = a.transport.secrets.topic
    const pubsub = b.peer.node.services.pubsub
    let caught: { c: Member; key: string } | undefined
    const tried: string[] = []
    for (let attempt = 0; attempt < 5 && caught === undefined; attempt++) {
      const c = await cluster.member(`C${attempt}`)
      const key = `edit-${attempt}`
      // How B stood towards C at the moment it received A's edit by gossip (and forwarded it, synchronously).
      const atB: Array<{ subscribed: boolean; meshed: boolean }> = []
      const onMessage = (event: CustomEvent<{ topic: string; type: string; from?: { toString(): string } }>): void => {
        const m = event.detail
        if (m.topic !== topic || m.type !== 'signed' || m.from?.toString() !== a.peer.peerId) return
        atB.push({ subscribed: pubsub.getSubscribers(topic).some((p) => p.toString() === c.peer.peerId), meshed: meshPeers(b).includes(c.peer.peerId) })
      }
      pubsub.addEventListener('message', onMessage)
      await link(b, c)
      await until(() => pubsub.getSubscribers(topic).some((p) => p.toString() === c.peer.peerId), `B to see ${c.name} on the topic`)
      a.doc.getMap('m').set(key, 'from A')
      await until(() => b.doc.getMap('m').get(key) === 'from A', `B to get ${key}`, { on: updates(b.doc) })
      pubsub.removeEventListener('message', onMessage)
      tried.push(JSON.stringify(atB))
      // The case in question: B knew C was on the topic (so its transport left C to gossip) but had not meshed it.
      if (atB.length > 0 && atB.every((s) => s.subscribed && !s.meshed)) caught = { c, key }
    }
    if (caught === undefined) throw new Error(`no attempt caught C outside B's mesh: ${tried.join(' ')}`)
    const { c, key } = caught
    await until(() => c.doc.getMap('m').get(key) === 'from A', `${c.name} to get ${key}, which B got by gossip before C was in its mesh`, { on: updates(c.doc) })
  })
})

describe('a partition and its healing', () => {
  it('two groups split by hangUp and a gater diverge on concurrent edits, then heal over one bridge to identical docs', () =>
    seeded(async (random) => {
      const partition = new Partition()
      const group: Member[] = []
      for (const name of NAMES) {
        const key = await ephemeralPeerKey()
        const peer = await cluster.peer({ key, connectionGater: partition.gater(key.peerId) })
        group.push(await cluster.member(name, { peer }))
      }
      const left = group.slice(0, 2)
      const right = group.slice(2)
      partition.assign(0, ...left.map((m) => m.peer.peerId))
      partition.assign(1, ...right.map((m) => m.peer.peerId))
      const pairs: Array<readonly [Member, Member]> = []
      for (let i = 0; i < group.length; i++) for (let j = i + 1; j < group.length; j++) pairs.push([at(group, i), at(group, j)])
      for (const [x, y] of pairs) await link(x, y)
      const logs = new Map<string, EditLog>()
      await concurrentEdits(group, random, 2, 5, logs)
      await converged(group, [...logs.values()], 'the whole mesh before the split')

      // Split: the gaters refuse cross-group dials and connections; every cross-group connection is closed.
      partition.split = true
      for (const l of left) for (const r of right) await l.peer.hangUp(r.peer.peerId)
      await until(
        () => left.every((l) => right.every((r) => connectionsBetween(l.peer, r.peer) === 0 && connectionsBetween(r.peer, l.peer) === 0)),
        'no connection across the partition',
      )
      await until(
        () => left.every((l) => right.every((r) => !l.transport.peers.has(r.peer.peerId) && !r.transport.peers.has(l.peer.peerId))),
        'no document link across the partition',
      )
      await expect(at(left, 0).peer.dial(tcpAddress(at(right, 0).peer))).rejects.toThrow()
      await expect(at(right, 1).peer.dial(tcpAddress(at(left, 1).peer))).rejects.toThrow()
      expect(partition.refused).toBeGreaterThanOrEqual(2)

      // Concurrent edits on both sides, each side converging on its own.
      const leftLogs = new Map<string, EditLog>()
      const rightLogs = new Map<string, EditLog>()
      for (let round = 0; round < 4; round++) {
        await concurrentEdits(left, random, 1, 6, leftLogs, '-split')
        await concurrentEdits(right, random, 1, 6, rightLogs, '-split')
      }
      at(left, 0).doc.getMap('m').set('side', 'left')
      at(right, 0).doc.getMap('m').set('side', 'right')
      at(left, 1).doc.getText('t').insert(0, '[left was here]')
      at(right, 2).doc.getText('t').insert(0, '[right was here]')
      const leftAll = [...logs.values(), ...leftLogs.values(), { textChars: '[left was here]'.length, own: new Map() }]
      const rightAll = [...logs.values(), ...rightLogs.values(), { textChars: '[right was here]'.length, own: new Map() }]
      await converged(left, leftAll, 'the left group on its own')
      await converged(right, rightAll, 'the right group on its own')
      // They really diverged: neither side has anything of the other's.
      const l0 = at(left, 0)
      const r0 = at(right, 0)
      expect(l0.doc.getMap('m').get('side')).toBe('left')
      expect(r0.doc.getMap('m').get('side')).toBe('right')
      expect(l0.doc.getText('t').toJSON()).not.toContain('[right was here]')
      expect(r0.doc.getText('t').toJSON()).not.toContain('[left was here]')
      expect(stateVector(l0.doc)).not.toBe(stateVector(r0.doc))
      for (const r of right) expect(Y.decodeStateVector(Y.encodeStateVector(l0.doc)).has(r.doc.clientID)).toBe(true) // from before the split
      for (const l of left) for (const r of right) expect(connectionsBetween(l.peer, r.peer)).toBe(0)

      // Heal: allow again and dial a single bridge (B to C); everything crosses it.
      partition.split = false
      await link(at(left, 1), at(right, 0))
      const all = [...logs.values(), ...leftLogs.values(), ...rightLogs.values(), { textChars: '[left was here]'.length + '[right was here]'.length, own: new Map() }]
      await converged(group, all, 'everyone after healing')
      const text = l0.doc.getText('t').toJSON()
      expect(text).toContain('[left was here]')
      expect(text).toContain('[right was here]')
      const side = l0.doc.getMap('m').get('side')
      expect(['left', 'right']).toContain(side)
      for (const m of group) expect(m.doc.getMap('m').get('side')).toBe(side)
    }))
})

describe('a late joiner', () => {
  it('catches up on a 2,000-edit document from the one peer it is connected to', () =>
    seeded(async (random) => {
      const source = await cluster.member('source')
      const log = randomEdits(source.doc, random, 'source', 2000, undefined, 80)
      const snapshot = Y.encodeStateAsUpdate(source.doc)
      // Bigger than a gossip message: only the direct stream can carry this catch-up.
      expect(snapshot.length).toBeGreaterThan(MAX_GOSSIP_BYTES)
      const joiner = await cluster.member('joiner')
      expect(joiner.doc.getText('t').length).toBe(0)
      await link(joiner, source)
      expect(joiner.peer.node.getPeers().map(String)).toEqual([source.peer.peerId])
      await joiner.replicator.whenSynced(source.peer.peerId)
      await converged([source, joiner], [log], 'the joiner to catch up')
      expect(joiner.doc.getText('t').length).toBe(log.textChars)
      expect(joiner.peer.node.getPeers().map(String)).toEqual([source.peer.peerId])
    }))
})

/** A raw `/chorus/sync/1.0.0` stream: records every byte it receives and how it ended. */
class Wire {
  readonly stream: Stream
  private readonly chunks: Uint8Array[] = []
  closed = false
  closeError: Error | undefined

  constructor(stream: Stream) {
    this.stream = stream
    stream.addEventListener('message', (event) => this.chunks.push(event.data.subarray()))
    stream.addEventListener('close', (event) => {
      this.closed = true
      this.closeError = (event as Event & { error?: Error }).error
    })
  }

  static async open(from: ChorusPeer, to: ChorusPeer): Promise<Wire> {
    await from.dial(tcpAddress(to))
    return new Wire(await from.node.dialProtocol(peerIdFromString(to.peerId), SYNC_PROTOCOL))
  }

  get bytes(): Uint8Array {
    return new Uint8Array(Buffer.concat(this.chunks))
  }

  send(bytes: Uint8Array): void {
    this.stream.send(bytes)
  }
}

/**
 * A peer that holds no document and replaces the stock sync handler with one that records every stream the
 * member opens to it (a member dials each new connection for its documents).
 */
async function stranger(): Promise<{ peer: ChorusPeer; inbound: Wire[] }> {
  const peer = await cluster.peer()
  const inbound: Wire[] = []
  await peer.node.unhandle(SYNC_PROTOCOL)
  await peer.node.handle(SYNC_PROTOCOL, (stream) => {
    inbound.push(new Wire(stream))
  })
  return { peer, inbound }
}

const json = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value))

describe('a non-member gets nothing of the document', () => {
  /** A member whose document has content, and an outsider's peer with a recording sync handler. */
  async function setup(recording = false): Promise<{ member: Member; outsider: ChorusPeer; inbound: Wire[]; credentialFrame: Uint8Array }> {
    const member = await cluster.member('member')
    member.doc.getText('t').insert(0, 'the secret plan')
    member.doc.getMap('m').set('launch', 'tuesday')
    // Without `recording`, the outsider keeps the stock handler, which resets the member's own stream to it
    // at once (it holds no document by that tag).
    const { peer: outsider, inbound } = recording ? await stranger() : { peer: await cluster.peer(), inbound: [] }
    return { member, outsider, inbound, credentialFrame: frame(json(member.membership.credential)) }
  }

  it('the member dials a connected stranger with its stream tag only, and never links it', async () => {
    const { member, outsider, inbound } = await setup(true)
    await outsider.dial(tcpAddress(member.peer))
    const tag = member.transport.secrets.streamTag(member.peer.peerId, outsider.peerId)
    await until(() => inbound.length === 1 && inbound[0]?.bytes.length === frame(tag).length, 'the member to dial the stranger')
    const wire = at(inbound, 0)
    // A stream tag says nothing of the document to someone without its key; nothing follows it until the
    // listener shows a credential.
    expect(wire.bytes).toEqual(frame(tag))
    wire.stream.abort(new Error('stranger hangs up'))
    await until(() => wire.closed, 'the stream to close')
    expect(member.transport.peers.has(outsider.peerId)).toBe(false)
    expect(member.transport.stats.refused).toBe(0)
    // The tag is bound to the pair and its direction: sent back to the member, it names nothing, so the
    // stranger does not get the member's credential (which would name the space) either.
    const replay = await Wire.open(outsider, member.peer)
    replay.send(frame(tag))
    await until(() => replay.closed, 'the member to reset the replayed tag')
    expect(replay.bytes).toEqual(new Uint8Array(0))
    expect(replay.stream.status).toBe('reset')
  })

  it('a raw stream with a random tag gets no byte back and is reset', async () => {
    const { member, outsider } = await setup()
    const wire = await Wire.open(outsider, member.peer)
    wire.send(frame(new Uint8Array(Buffer.from(generateSecretKey()))))
    await until(() => wire.closed, 'the member to close the stream')
    expect(wire.bytes).toEqual(new Uint8Array(0))
    expect(wire.stream.status).toBe('reset')
    expect(wire.closeError?.name).toBe('StreamResetError')
    expect(member.transport.stats.refused).toBe(0) // refused by the router: no document was even named
    expect(member.transport.peers.has(outsider.peerId)).toBe(false)
  })

  it('a raw stream with an oversized length prefix after the right tag is reset without a read', async () => {
    const { member, outsider, credentialFrame } = await setup()
    const wire = await Wire.open(outsider, member.peer)
    wire.send(frame(member.transport.secrets.streamTag(outsider.peerId, member.peer.peerId)))
    await until(() => wire.bytes.length >= credentialFrame.length, 'the member to show its credential')
    // A varint claiming 2^40 bytes: over MAX_MESSAGE_BYTES, refused on the header alone.
    wire.send(new Uint8Array([0x80, 0x80, 0x80, 0x80, 0x80, 0x20]))
    await until(() => wire.closed, 'the member to close the stream')
    expect(wire.bytes).toEqual(credentialFrame)
    expect(wire.stream.status).toBe('reset')
    expect(wire.closeError?.name).toBe('StreamResetError')
    expect(member.transport.peers.has(outsider.peerId)).toBe(false)
  })

  const badCredentials: Array<{ name: string; credential: (outsider: string, member: Member) => Uint8Array; reason: RegExp }> = [
    {
      name: 'a credential for another document',
      credential: (outsider) => json(membership('other-space', outsider).credential),
      reason: /for other-space, not team/,
    },
    {
      name: 'a credential signed by an untrusted key',
      credential: (outsider) => json(issueCredential({ doc: DOC, peer: outsider, participant: 'rogue', kind: 'ai' }, generateSecretKey())),
      reason: /does not trust/,
    },
    {
      name: "a member's credential for another peer id",
      credential: (_outsider, member) => json(member.membership.credential),
      reason: /another peer/,
    },
    {
      name: 'a credential with a forged field',
      credential: (outsider) => json({ ...membership(DOC, outsider).credential, participant: 'someone-else' }),
      reason: /bad signature/,
    },
    { name: 'bytes that are not a credential', credential: () => new Uint8Array(Buffer.from(generateSecretKey())), reason: /malformed/ },
  ]

  for (const bad of badCredentials) {
    it(`a raw stream with the right tag and ${bad.name} gets exactly the member's credential, then a reset`, async () => {
      const { member, outsider, credentialFrame } = await setup()
      const reasons: string[] = []
      const wire = await Wire.open(outsider, member.peer)
      wire.send(frame(member.transport.secrets.streamTag(outsider.peerId, member.peer.peerId)))
      await until(() => wire.bytes.length >= credentialFrame.length, 'the member to show its credential')
      wire.send(frame(bad.credential(outsider.peerId, member)))
      await until(() => member.transport.stats.refused >= 1 && wire.closed, 'the member to refuse the credential and reset the stream')
      expect(member.transport.stats.refused).toBe(1)
      for (const e of cluster.errors) if (e.context === 'membership') reasons.push(String(e.error))
      expect(reasons.some((r) => bad.reason.test(r)), `refusal reasons: ${reasons.join('; ')}`).toBe(true)
      // All it ever got: the member's (public) credential, as one frame; no sync message, no awareness.
      expect(wire.bytes).toEqual(credentialFrame)
      expect(frames(wire.bytes)).toHaveLength(1)
      expect(wire.stream.status).toBe('reset')
      expect(wire.closeError?.name).toBe('StreamResetError')
      expect(member.transport.peers.has(outsider.peerId)).toBe(false)
      expect(member.replicator.stats.received).toBe(0)
    })
  }

  it('the same raw stream with a valid credential does get the document (the probe can see data)', async () => {
    const { member, outsider, credentialFrame } = await setup()
    const wire = await Wire.open(outsider, member.peer)
    wire.send(frame(member.transport.secrets.streamTag(outsider.peerId, member.peer.peerId)))
    await until(() => wire.bytes.length >= credentialFrame.length, 'the member to show its credential')
    wire.send(frame(json(membership(DOC, outsider.peerId).credential)))
    wire.send(frame(encodeSyncStep1(new Y.Doc())))
    const copy = cluster.doc()
    const apply = (): boolean => {
      const [first, ...rest] = frames(wire.bytes)
      if (first === undefined || !bytesEqual(first, json(member.membership.credential))) return false
      for (const f of rest) {
        const decoder = decoding.createDecoder(f)
        if (decoding.readVarUint(decoder) === messageSync) answerSyncMessage(decoder, copy, 'wire')
      }
      return copy.getText('t').toJSON() === 'the secret plan'
    }
    await until(() => wire.bytes.length > credentialFrame.length && safe(apply), 'the document over the raw stream')
    expect(content(copy)).toEqual(content(member.doc))
    expect(member.transport.peers.has(outsider.peerId)).toBe(true)
    expect(member.transport.stats.refused).toBe(0)
  })

  describe('through the public DocumentTransport', () => {
    async function intruderWith(make: (peer: string) => Membership, trustMembersRelay: boolean): Promise<Member> {
      const peer = await cluster.peer()
      return cluster.member('intruder', {
        peer,
        membership: make(peer.peerId),
        transport: trustMembersRelay ? { trusted: [relayKey] } : {},
      })
    }

    /**
     * The dialer of a stream links once the listener's credential checks out, so an intruder that trusts the
     * member's relay links for a moment, until the member's refusal (a reset) reaches it.
     */
    const expectNothing = async (intruder: Member): Promise<void> => {
      await until(() => intruder.transport.peers.size === 0, 'the intruder to drop its side of the refused streams')
      expect(intruder.replicator.stats.received).toBe(0)
      expect(intruder.doc.getText('t').length).toBe(0)
      expect(intruder.doc.getMap('m').size).toBe(0)
      expect(Y.encodeStateVector(intruder.doc)).toEqual(Y.encodeStateVector(new Y.Doc()))
    }

    it('an intruder with the key but a credential signed by an untrusted key is refused by the member', async () => {
      const { member } = await setup()
      const rogue = generateSecretKey()
      const intruder = await intruderWith(
        (peer) => ({ credential: issueCredential({ doc: DOC, peer, participant: 'rogue', kind: 'ai' }, rogue), key: documentKey(relaySecret, DOC) }),
        true,
      )
      await intruder.peer.dial(tcpAddress(member.peer))
      // Each side opens a stream on the new connection: the member refuses the credential on both.
      await until(() => member.transport.stats.refused >= 2, 'the member to refuse both streams of the intruder')
      expect(member.transport.stats.refused).toBe(2)
      expect(intruder.transport.stats.refused).toBe(0) // the intruder trusts the member's relay
      expect(member.transport.peers.has(intruder.peer.peerId)).toBe(false)
      await expectNothing(intruder)
    })

    it('an intruder with the key but a forged credential is refused by the member', async () => {
      const { member } = await setup()
      const intruder = await intruderWith(
        (peer) => {
          const real = membership(DOC, peer)
          return { ...real, credential: { ...real.credential, expiresAt: null, participant: 'admin' } }
        },
        false,
      )
      await intruder.peer.dial(tcpAddress(member.peer))
      await until(() => member.transport.stats.refused >= 2, 'the member to refuse both streams of the intruder')
      expect(member.transport.stats.refused).toBe(2)
      expect(member.transport.peers.has(intruder.peer.peerId)).toBe(false)
      await expectNothing(intruder)
    })

    it('an intruder with the key but a credential for another document gets nothing (it refuses the member first)', async () => {
      const { member } = await setup()
      const intruder = await intruderWith((peer) => ({ ...membership('other-space', peer), key: documentKey(relaySecret, DOC) }), false)
      expect(intruder.transport.secrets.streamTag('a', 'b')).toEqual(member.transport.secrets.streamTag('a', 'b'))
      await intruder.peer.dial(tcpAddress(member.peer))
      // On the member's stream the member refuses the intruder's credential; on the intruder's, the reverse.
      await until(
        () => intruder.transport.stats.refused >= 1 && member.transport.stats.refused >= 1,
        () => `both to refuse (member ${member.transport.stats.refused}, intruder ${intruder.transport.stats.refused})`,
      )
      expect([member.transport.stats.refused, intruder.transport.stats.refused]).toEqual([1, 1])
      expect(member.transport.peers.has(intruder.peer.peerId)).toBe(false)
      await expectNothing(intruder)
    })

    it('a transport cannot even be opened with a credential for another peer id', async () => {
      const { member } = await setup()
      const peer = await cluster.peer()
      let error: unknown
      try {
        peer.document(member.membership)
      } catch (e) {
        error = e
      }
      expect(isChorusError(error) && error.code === 'invalid_input').toBe(true)
    })
  })

  it("a stranger on the document's gossip topic sees only sealed bytes it cannot open", () =>
    seeded(async (random, seed) => {
      const member = await cluster.member('member')
      const other = await cluster.member('other')
      await link(member, other)
      const outsider = await cluster.peer()
      const topic = member.transport.secrets.topic
      const seen: Uint8Array[] = []
      outsider.node.services.pubsub.addEventListener('message', (event) => {
        if (event.detail.topic === topic) seen.push(event.detail.data)
      })
      outsider.node.services.pubsub.subscribe(topic)
      await outsider.dial(tcpAddress(member.peer))
      await until(() => member.peer.node.services.pubsub.getSubscribers(topic).some((p) => p.toString() === outsider.peerId), 'the member to see the stranger on the topic')

      const updates: Uint8Array[] = []
      member.doc.on('update', (update: Uint8Array) => updates.push(update))
      const marker = `PLAINTEXT-${seed}-${random().toString(36).slice(2)}`
      const text = member.doc.getText('t')
      for (let i = 0; i < 20; i++) {
        if (i % 2 === 0) text.insert(text.length, `${marker}/${i} `)
        else member.doc.getMap('m').set(`k${i}`, `${marker}:${i}`)
      }
      await until(() => seen.length >= updates.length, () => `the stranger to get ${updates.length} gossip messages (has ${seen.length})`, {
        on: emits(outsider.node.services.pubsub, 'message'),
      })
      await until(() => other.doc.getText('t').toJSON() === text.toJSON(), 'the member next door to get the edits', { on: emits(other.doc, 'update') })

      const right = documentSecrets(member.membership.key)
      const wrong = [documentSecrets(documentKey(relaySecret, 'other-space')), documentSecrets(Buffer.from(generateSecretKey()).toString('base64url'))]
      const markerBytes = new TextEncoder().encode(marker)
      const messages = updates.map((u) => encodeSyncUpdate(u))
      for (const sealed of seen) {
        expect(containsBytes(sealed, markerBytes)).toBe(false)
        for (const u of updates) expect(containsBytes(sealed, u)).toBe(false)
        for (const key of wrong) expect(key.open(sealed)).toBeUndefined()
        // Sanity: with the key these are the member's credential and exactly its updates.
        const opened = right.open(sealed) ?? new Uint8Array()
        const decoder = decoding.createDecoder(opened)
        expect(JSON.parse(new TextDecoder().decode(decoding.readVarUint8Array(decoder)))).toEqual(member.membership.credential)
        const message = opened.subarray(decoder.pos)
        expect(messages.some((m) => bytesEqual(m, message))).toBe(true)
      }
      expect(member.transport.peers.has(outsider.peerId)).toBe(false)

      // What the stranger publishes on the topic is dropped unread.
      const before = member.transport.stats.unreadable
      await outsider.node.services.pubsub.publish(topic, new Uint8Array(Buffer.from(generateSecretKey())))
      await outsider.node.services.pubsub.publish(topic, at(wrong, 0).seal(encodeSyncUpdate(updates[0] ?? new Uint8Array())))
      await until(() => member.transport.stats.unreadable >= before + 2, 'the member to drop both')
      expect(member.replicator.stats.malformed).toBe(0)

      // Holding the key is not enough to write: sealed right, but with no valid credential of the publisher's own
      // (one signed by an untrusted key, or a member's credential for another peer), it is dropped unapplied.
      const forgedDoc = new Y.Doc()
      forgedDoc.getMap('m').set('injected', true)
      const injected = encodeSyncUpdate(Y.encodeStateAsUpdate(forgedDoc))
      const sealedWith = (credential: unknown): Uint8Array =>
        right.seal(encoding.encode((e) => {
          encoding.writeVarUint8Array(e, json(credential))
          encoding.writeUint8Array(e, injected)
        }))
      const unauthorized = member.transport.stats.unauthorized
      await outsider.node.services.pubsub.publish(topic, sealedWith(issueCredential({ doc: DOC, peer: outsider.peerId, participant: 'rogue', kind: 'ai' }, generateSecretKey())))
      await outsider.node.services.pubsub.publish(topic, sealedWith(member.membership.credential))
      await until(() => member.transport.stats.unauthorized >= unauthorized + 2, 'the member to drop both writes')
      expect(member.doc.getMap('m').has('injected')).toBe(false)
      expect(other.doc.getMap('m').has('injected')).toBe(false)
      expect(member.doc.getMap('m').has('k1')).toBe(true)
    }))
})

describe('message sizes', () => {
  it(`send refuses a message over MAX_MESSAGE_BYTES with too_large, and the link stays usable`, async () => {
    const a = await cluster.member('A')
    const b = await cluster.member('B')
    await link(a, b)
    // Zero-filled and never written, so the OS does not commit its pages; refused on its length alone.
    const huge = new Uint8Array(MAX_MESSAGE_BYTES + 1)
    const thrown = (f: () => void): unknown => {
      try {
        f()
      } catch (e) {
        return e
      }
      return undefined
    }
    const sent = thrown(() => a.transport.send(b.peer.peerId, huge))
    expect(isChorusError(sent) && sent.code === 'too_large', String(sent)).toBe(true)
    const broadcast = thrown(() => a.transport.broadcast(huge))
    expect(isChorusError(broadcast) && broadcast.code === 'too_large', String(broadcast)).toBe(true)
    a.doc.getMap('m').set('still', 'linked')
    await until(() => b.doc.getMap('m').get('still') === 'linked', 'an edit after the refusals', { on: updates(b.doc) })
    expect(a.transport.peers.has(b.peer.peerId)).toBe(true)
  })

  it('a 200 KiB update (over MAX_GOSSIP_BYTES) reaches a chain A-B-C over direct streams, not gossip', () =>
    seeded(async (random) => {
      const [a, b, c] = [await cluster.member('A'), await cluster.member('B'), await cluster.member('C')]
      if (a === undefined || b === undefined || c === undefined) throw new Error('unreachable')
      await link(a, b)
      await link(b, c)
      expect(connectionsBetween(a.peer, c.peer)).toBe(0)
      await gossipMeshed([[a, b], [b, c]])
      // Gossip is live: a small edit goes out by gossip.
      a.doc.getMap('m').set('small', 'first')
      await until(() => c.doc.getMap('m').get('small') === 'first', 'a small edit at C', { on: updates(c.doc) })
      await until(() => a.transport.stats.gossipSent >= 1, 'the small edit to be gossiped')
      const gossip = (): number[] => [a.transport.stats.gossipSent, b.transport.stats.gossipReceived, c.transport.stats.gossipReceived, b.transport.stats.gossipSent]
      const before = gossip()

      const big = Array.from({ length: 200 * 1024 }, () => String.fromCharCode(97 + Math.floor(random() * 26))).join('')
      let size = 0
      a.doc.once('update', (update: Uint8Array) => {
        size = update.length
      })
      a.doc.getText('t').insert(0, big)
      expect(size).toBeGreaterThan(MAX_GOSSIP_BYTES)
      await until(() => c.doc.getText('t').toJSON() === big, 'the 200 KiB update at C', { on: updates(c.doc) })
      expect(b.doc.getText('t').toJSON()).toBe(big)
      expect(gossip()).toEqual(before)
      for (const m of [a, b, c]) expect(m.replicator.stats.malformed + m.replicator.stats.sendErrors).toBe(0)
    }))
})

/** Runs `f`, treating a throw (a frame still arriving) as "not yet". */
function safe(f: () => boolean): boolean {
  try {
    return f()
  } catch {
    return false
  }
}
