/**
 * Helpers for the libp2p tests: real `ChorusPeer`s on loopback TCP (no mDNS, no pubsub discovery), members
 * holding a `Y.Doc` attached through a `Replicator`, relay-signed memberships, a switchable partition gater, and
 * random edits and what must survive them.
 */
import * as Y from 'yjs'
import { Awareness } from 'y-protocols/awareness'
import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import type { ConnectionGater, PeerId as Libp2pPeerId } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { createGrantSigner, generateSecretKey, Replicator } from '@chorus/sync'
import {
  ChorusPeer,
  documentKey,
  ephemeralPeerKey,
  issueCredential,
  type ChorusPeerOptions,
  type DocumentTransport,
  type DocumentTransportOptions,
  type Membership,
  type PeerKey,
} from '@chorus/p2p'
import { until } from '../support/wait.ts'

/** The relay whose key every member trusts (the root of the credentials). */
export const relaySecret = generateSecretKey()
export const relayKey = createGrantSigner(relaySecret).publicKey
/** The document the tests share. */
export const DOC = 'team'

/** A relay-signed membership of `doc` for `peer` (signed by `secret`, the trusted relay's by default). */
export function membership(doc: string, peer: string, participant = `p-${peer.slice(-6)}`, secret = relaySecret): Membership {
  return {
    credential: issueCredential({ doc, peer, participant, kind: 'ai' }, secret),
    key: documentKey(relaySecret, doc),
  }
}

export const bytesEqual = (x: Uint8Array, y: Uint8Array): boolean => Buffer.from(x).equals(Buffer.from(y))

/** Whether `needle` occurs anywhere inside `haystack`. */
export const containsBytes = (haystack: Uint8Array, needle: Uint8Array): boolean => Buffer.from(haystack).includes(Buffer.from(needle))

/** A length-prefixed frame, as FramedStream writes it (varint length, then the bytes). */
export const frame = (bytes: Uint8Array): Uint8Array => encoding.encode((e) => encoding.writeVarUint8Array(e, bytes))

/** Splits bytes received on a raw stream into whole frames; throws if a frame is cut short. */
export function frames(bytes: Uint8Array): Uint8Array[] {
  const decoder = decoding.createDecoder(bytes)
  const out: Uint8Array[] = []
  while (decoding.hasContent(decoder)) out.push(decoding.readVarUint8Array(decoder))
  return out
}

/** The TCP (not WebSocket) multiaddr of `peer`, with its `/p2p/` id. */
export function tcpAddress(peer: ChorusPeer): string {
  const address = peer.multiaddrs.find((a) => /^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\//.test(a))
  if (address === undefined) throw new Error(`no loopback TCP address among ${peer.multiaddrs.join(', ')}`)
  return address
}

export const connectionsBetween = (a: ChorusPeer, b: ChorusPeer): number => a.node.getConnections(peerIdFromString(b.peerId)).length

/**
 * A network split for tests: while `split`, each peer's gater refuses to dial, or to accept, a peer of another
 * group. Peers not in any group are never refused.
 */
export class Partition {
  split = false
  /** Dials and connections the gaters refused while split. */
  refused = 0
  private readonly groupOf = new Map<string, number>()

  assign(group: number, ...peers: string[]): void {
    for (const p of peers) this.groupOf.set(p, group)
  }

  /** Whether `a` and `b` may not talk right now. */
  apart(a: string, b: string): boolean {
    const ga = this.groupOf.get(a)
    const gb = this.groupOf.get(b)
    return this.split && ga !== undefined && gb !== undefined && ga !== gb
  }

  /** The gater of the peer `self`. */
  gater(self: string): ConnectionGater {
    const deny = (remote: Libp2pPeerId): boolean => {
      const refuse = this.apart(self, remote.toString())
      if (refuse) this.refused++
      return refuse
    }
    return {
      denyDialPeer: deny,
      denyOutboundEncryptedConnection: deny,
      denyInboundEncryptedConnection: deny,
    }
  }
}

export interface Member {
  readonly name: string
  readonly peer: ChorusPeer
  readonly doc: Y.Doc
  readonly awareness: Awareness
  readonly transport: DocumentTransport
  readonly replicator: Replicator
  readonly membership: Membership
}

export interface PeerOptions extends Partial<Omit<ChorusPeerOptions, 'key'>> {
  key?: PeerKey
}

/** Everything one test started; `stop()` (in afterEach) stops all of it. */
export class Cluster {
  readonly peers: ChorusPeer[] = []
  readonly members: Member[] = []
  readonly errors: Array<{ error: unknown; context: string }> = []
  private readonly docs: Y.Doc[] = []

  /** A started peer on loopback TCP, discovery off. */
  async peer(options: PeerOptions = {}): Promise<ChorusPeer> {
    const key = options.key ?? (await ephemeralPeerKey())
    const peer = await ChorusPeer.start({
      listen: ['/ip4/127.0.0.1/tcp/0'],
      mdns: false,
      pubsubDiscovery: false,
      onError: (error, context) => this.errors.push({ error, context }),
      ...options,
      key,
    })
    this.peers.push(peer)
    return peer
  }

  /**
   * A member of `DOC` on `peer` (a new peer when omitted): a fresh Y.Doc, its awareness (no local state unless
   * `presence` is given, so nothing but edits goes out), and a Replicator attached to the document's transport.
   */
  async member(
    name: string,
    options: { peer?: ChorusPeer; membership?: Membership; transport?: DocumentTransportOptions; presence?: Record<string, unknown> } = {},
  ): Promise<Member> {
    const peer = options.peer ?? (await this.peer())
    const m = options.membership ?? membership(DOC, peer.peerId, name)
    const doc = this.doc()
    const awareness = new Awareness(doc)
    awareness.setLocalState(options.presence ?? null)
    const transport = peer.document(m, options.transport)
    const replicator = new Replicator(doc, awareness)
    await replicator.attach(transport)
    const member: Member = { name, peer, doc, awareness, transport, replicator, membership: m }
    this.members.push(member)
    return member
  }

  /** A Y.Doc destroyed (with its awareness) at `stop()`. */
  doc(): Y.Doc {
    const doc = new Y.Doc()
    this.docs.push(doc)
    return doc
  }

  async stop(): Promise<void> {
    await Promise.allSettled(this.members.splice(0).map((m) => m.replicator.stop()))
    await Promise.allSettled(this.peers.splice(0).map((p) => p.stop()))
    for (const d of this.docs.splice(0)) d.destroy()
  }
}

/** Dials `b` from `a` over TCP and waits until the two members' document transports have linked. */
export async function link(a: Member, b: Member): Promise<void> {
  await a.peer.dial(tcpAddress(b.peer))
  await until(
    () => a.transport.peers.has(b.peer.peerId) && b.transport.peers.has(a.peer.peerId),
    `${a.name} and ${b.name} to link`,
  )
}

/** The peers in `m`'s gossipsub mesh for its document's topic: the ones gossipsub forwards what it receives to. */
export const meshPeers = (m: Member): string[] =>
  // The GossipSub class has getMeshPeers; the interface libp2p types the service with does not list it.
  (m.peer.node.services.pubsub as unknown as { getMeshPeers(topic: string): string[] }).getMeshPeers(m.transport.secrets.topic)

/**
 * Waits until gossipsub has grafted each pair into the other's mesh for the document's topic (it does so at a
 * heartbeat, up to a second after they connect). See the mesh test "an edit forwarded by gossip ..." for why.
 */
export async function gossipMeshed(pairs: ReadonlyArray<readonly [Member, Member]>): Promise<void> {
  await until(
    () => pairs.every(([x, y]) => meshPeers(x).includes(y.peer.peerId) && meshPeers(y).includes(x.peer.peerId)),
    () => `gossipsub meshes of ${pairs.map(([x, y]) => `${x.name}-${y.name}`).join(', ')}`,
  )
}

/** What a test compares of two docs besides the state vector (map keys sorted: replicas differ in insertion order). */
export const content = (doc: Y.Doc): { m: Array<[string, unknown]>; t: string } => ({
  m: Object.entries(doc.getMap('m').toJSON()).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)),
  t: doc.getText('t').toJSON(),
})

export const stateVector = (doc: Y.Doc): string => Buffer.from(Y.encodeStateVector(doc)).toString('hex')

/** Whether every doc has the same state vector and content as the first. */
export function identical(docs: readonly Y.Doc[]): boolean {
  const [first, ...rest] = docs
  if (first === undefined) return true
  const sv = stateVector(first)
  const json = JSON.stringify(content(first))
  return rest.every((d) => stateVector(d) === sv && JSON.stringify(content(d)) === json)
}

/** A line per doc, for a failure message. */
export const describeDocs = (members: readonly Member[]): string =>
  members.map((m) => `${m.name}: sv ${stateVector(m.doc)}, text ${m.doc.getText('t').length} chars, ${m.doc.getMap('m').size} keys`).join('; ')

/** `length` random lowercase letters. */
export const word = (random: () => number, length: number): string =>
  String.fromCharCode(...Array.from({ length }, () => 97 + Math.floor(random() * 26)))

/** What `randomEdits` did: the text it inserted (in total) and its last value per key it owns. */
export interface EditLog {
  textChars: number
  own: Map<string, string>
}

/**
 * `count` edits, each its own transaction: sets of shared keys (contended by every editor), sets of keys only
 * `name` writes, and text inserts at random positions. Returns what must survive a merge.
 */
export function randomEdits(
  doc: Y.Doc,
  random: () => number,
  name: string,
  count: number,
  log: EditLog = { textChars: 0, own: new Map() },
  maxWord = 10,
): EditLog {
  const map = doc.getMap<string>('m')
  const text = doc.getText('t')
  for (let i = 0; i < count; i++) {
    const r = random()
    if (r < 0.3) {
      map.set(`shared-${Math.floor(random() * 8)}`, `${name}:${i}`)
    } else if (r < 0.5) {
      const key = `${name}/${Math.floor(random() * 4)}`
      const value = `${i}:${random().toString(36).slice(2, 8)}`
      map.set(key, value)
      log.own.set(key, value)
    } else {
      const insert = `<${name}${i}:${word(random, Math.floor(random() * maxWord))}>`
      text.insert(Math.floor(random() * (text.length + 1)), insert)
      log.textChars += insert.length
    }
  }
  return log
}

/** Whether `doc` holds everything the logs say was written (text length and each editor's own keys). */
export function holdsAll(doc: Y.Doc, logs: readonly EditLog[]): boolean {
  const map = doc.getMap<string>('m')
  const chars = logs.reduce((n, l) => n + l.textChars, 0)
  return doc.getText('t').length === chars && logs.every((l) => [...l.own].every(([k, v]) => map.get(k) === v))
}

export { peerIdFromString }
