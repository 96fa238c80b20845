/**
 * An in-memory network whose delivery the test controls, after yjs's `TestConnector`: messages wait in a
 * queue per directed link until the test releases them, in a seeded random order, so convergence under
 * reordering, duplication, partitions and reconnects is tested without timers and replays from its seed.
 *
 * ```ts
 * const net = new MemoryNetwork({ seed: 42 })
 * await replicaA.attach(net.transport('a'))
 * await replicaB.attach(net.transport('b'))
 * net.deliverAll()
 * ```
 */
import * as prng from 'lib0/prng'
import * as random from 'lib0/random'
import { ChorusError } from '../errors.ts'
import type { PeerId, Transport, TransportListener } from '../transports/transport.ts'

export interface MemoryNetworkOptions {
  /** Seed of every random choice; random (and readable as `network.seed`) when omitted. */
  seed?: number
  /** Deliver every message on its own, in send order, from a microtask: a network that just works. */
  autoDeliver?: boolean
  /** Deliver each link's messages in send order; by default any pending message of a link may go next. */
  inOrder?: boolean
  /** deliverAll() throws after this many deliveries, which means the peers never go quiet. */
  maxDeliveries?: number
}

interface Envelope {
  readonly seq: number
  readonly message: Uint8Array
}

interface Link {
  readonly from: MemoryTransport
  readonly to: MemoryTransport
  readonly queue: Envelope[]
}

export class MemoryNetwork {
  readonly seed: number
  private readonly gen: prng.PRNG
  private readonly autoDeliver: boolean
  private readonly inOrder: boolean
  private readonly maxDeliveries: number
  private readonly nodes = new Map<string, MemoryTransport>()
  private readonly links = new Map<string, Link>()
  private readonly blocked = new Set<string>()
  private readonly disconnected = new Set<string>()
  private seq = 0
  private flushScheduled = false

  constructor(options: MemoryNetworkOptions = {}) {
    this.seed = options.seed ?? random.uint32()
    this.gen = prng.create(this.seed)
    this.autoDeliver = options.autoDeliver ?? false
    this.inOrder = options.inOrder ?? this.autoDeliver
    this.maxDeliveries = options.maxDeliveries ?? 1_000_000
  }

  /** A node's transport; `name` is the PeerId the other nodes see it as. */
  transport(name: string): MemoryTransport {
    const existing = this.nodes.get(name)
    if (existing !== undefined && existing.state !== 'stopped') {
      throw new ChorusError('invalid_input', `a node named ${name} is already on this network`)
    }
    const node = new MemoryTransport(this, name)
    this.nodes.set(name, node)
    return node
  }

  /** Messages waiting on all links. */
  get pending(): number {
    let n = 0
    for (const link of this.links.values()) n += link.queue.length
    return n
  }

  /** Deliver one pending message from a random link; false when nothing is pending. */
  deliverRandom(): boolean {
    const busy = [...this.links.values()].filter((l) => l.queue.length > 0)
    if (busy.length === 0) return false
    const link = prng.oneOf(this.gen, busy)
    const index = this.inOrder ? 0 : prng.uint32(this.gen, 0, link.queue.length - 1)
    const [envelope] = link.queue.splice(index, 1)
    if (envelope !== undefined) this.deliver(link, envelope)
    return true
  }

  /** Deliver until nothing is pending; returns how many messages were delivered. */
  deliverAll(): number {
    let delivered = 0
    while (this.autoDeliver ? this.deliverOldest() : this.deliverRandom()) {
      if (++delivered > this.maxDeliveries) {
        throw new Error(`MemoryNetwork (seed ${this.seed}): still not quiet after ${this.maxDeliveries} deliveries`)
      }
    }
    return delivered
  }

  /** Queue a second copy of a random pending message on its link; false when nothing is pending. */
  duplicateRandom(): boolean {
    const busy = [...this.links.values()].filter((l) => l.queue.length > 0)
    if (busy.length === 0) return false
    const link = prng.oneOf(this.gen, busy)
    const envelope = prng.oneOf(this.gen, link.queue)
    link.queue.push({ seq: this.seq++, message: envelope.message.slice() })
    return true
  }

  /** Cut every link between the two groups: queued messages across are lost and both sides see peerLeft. */
  partition(groupA: readonly string[], groupB: readonly string[]): void {
    for (const a of groupA) for (const b of groupB) if (a !== b) this.blocked.add(pairKey(a, b))
    this.update()
  }

  /** Restore every link (partitions and disconnected nodes); both sides see peerJoined and catch up. */
  heal(): void {
    this.blocked.clear()
    this.disconnected.clear()
    this.update()
  }

  /** Cut one node off from all others until reconnect(name) or heal(). */
  disconnect(name: string): void {
    this.disconnected.add(name)
    this.update()
  }

  reconnect(name: string): void {
    this.disconnected.delete(name)
    this.update()
  }

  /** @internal */
  enqueue(from: MemoryTransport, to: string, message: Uint8Array): void {
    const target = this.nodes.get(to)
    if (target === undefined || !this.isUp(from, target)) return
    const key = linkKey(from.name, to)
    let link = this.links.get(key)
    if (link === undefined) {
      link = { from, to: target, queue: [] }
      this.links.set(key, link)
    }
    // A copy, so a sender reusing its buffer cannot change what is in flight.
    link.queue.push({ seq: this.seq++, message: message.slice() })
    if (this.autoDeliver && !this.flushScheduled) {
      this.flushScheduled = true
      queueMicrotask(() => {
        this.flushScheduled = false
        this.deliverAll()
      })
    }
  }

  /** @internal Recompute who is connected to whom after a node or link changed, and tell both ends. */
  update(): void {
    const nodes = [...this.nodes.values()]
    const joins: Array<[MemoryTransport, string]> = []
    const leaves: Array<[MemoryTransport, string]> = []
    for (const a of nodes) {
      for (const b of nodes) {
        if (a === b) continue
        const up = this.isUp(a, b)
        if (up && !a.peerSet.has(b.name)) {
          a.peerSet.add(b.name)
          joins.push([a, b.name])
        } else if (!up && a.peerSet.has(b.name)) {
          a.peerSet.delete(b.name)
          this.links.delete(linkKey(a.name, b.name))
          if (a.state === 'started') leaves.push([a, b.name])
        }
      }
    }
    // Peer sets are final before any listener runs, so a listener may send from inside its callback.
    for (const [node, peer] of leaves) node.listener?.peerLeft(peer)
    for (const [node, peer] of joins) node.listener?.peerJoined(peer)
  }

  /** @internal */
  remove(node: MemoryTransport): void {
    if (this.nodes.get(node.name) === node) this.nodes.delete(node.name)
    for (const [key, link] of this.links) if (link.from === node || link.to === node) this.links.delete(key)
  }

  private isUp(a: MemoryTransport, b: MemoryTransport): boolean {
    return (
      a.state === 'started' &&
      b.state === 'started' &&
      this.nodes.get(a.name) === a &&
      this.nodes.get(b.name) === b &&
      !this.disconnected.has(a.name) &&
      !this.disconnected.has(b.name) &&
      !this.blocked.has(pairKey(a.name, b.name))
    )
  }

  private deliverOldest(): boolean {
    let oldest: Link | undefined
    for (const link of this.links.values()) {
      const head = link.queue[0]
      if (head !== undefined && (oldest === undefined || head.seq < (oldest.queue[0]?.seq ?? Infinity))) oldest = link
    }
    const envelope = oldest?.queue.shift()
    if (oldest === undefined || envelope === undefined) return false
    this.deliver(oldest, envelope)
    return true
  }

  private deliver(link: Link, envelope: Envelope): void {
    link.to.listener?.message(link.from.name, envelope.message)
  }
}

/** One node of a MemoryNetwork. */
export class MemoryTransport implements Transport {
  readonly name: string
  /** @internal */
  readonly peerSet = new Set<PeerId>()
  /** @internal */
  listener: TransportListener | null = null
  /** @internal */
  state: 'new' | 'started' | 'stopped' = 'new'
  private readonly network: MemoryNetwork

  constructor(network: MemoryNetwork, name: string) {
    this.network = network
    this.name = name
  }

  get peers(): ReadonlySet<PeerId> {
    return this.peerSet
  }

  start(listener: TransportListener): Promise<void> {
    if (this.state !== 'new') return Promise.reject(new ChorusError('invalid_input', `${this.name} was already started`))
    this.listener = listener
    this.state = 'started'
    listener.status?.('connected')
    this.network.update()
    return Promise.resolve()
  }

  send(peer: PeerId, message: Uint8Array): void {
    if (this.state === 'started' && this.peerSet.has(peer)) this.network.enqueue(this, peer, message)
  }

  broadcast(message: Uint8Array): void {
    for (const peer of this.peerSet) this.send(peer, message)
  }

  stop(): Promise<void> {
    if (this.state === 'started') {
      const listener = this.listener
      this.state = 'stopped'
      this.listener = null
      this.peerSet.clear()
      this.network.update()
      this.network.remove(this)
      listener?.status?.('disconnected')
    }
    this.state = 'stopped'
    return Promise.resolve()
  }
}

const pairKey = (a: string, b: string): string => (a < b ? `${a}\u0000${b}` : `${b}\u0000${a}`)
const linkKey = (from: string, to: string): string => `${from}\u0000${to}`
