/**
 * The members one process hosts for the p2p benchmark (bench/p2p.ts), driven by `Call`s (p2p-protocol.ts):
 * in a child process through p2p-peer-child.ts, or in the bench process itself with `--peers=inproc`.
 *
 * A member is a Y.Doc with a `Replicator` on one transport: a `ChorusPeer` document (a direct peer on loopback
 * TCP, or a circuit-only peer reachable only through the relay), or a `WebSocketTransport` to the relay's
 * `/sync/<space>`. Writers set one key per stamp `{ b, w, s, t, m }` (block, writer, seq, send time, measured)
 * in the map `stamps`; every member observes the map and records the first arrival of each stamp.
 */
import { readFileSync } from 'node:fs'
import type { Socket } from 'node:net'
import { monitorEventLoopDelay, performance, PerformanceObserver, type ELDHistogram } from 'node:perf_hooks'
import * as Y from 'yjs'
import { Awareness } from 'y-protocols/awareness'
import type { MultiaddrConnection } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Multiaddr } from '@multiformats/multiaddr'
import { Replicator, Space, WebSocketTransport, type PeerId, type Transport, type TransportListener } from '@chorus/sync'
import { ChorusPeer, peerKeyFromSeed, type DocumentTransport } from '@chorus/p2p'
import { nowAbs, sleep } from './measure.ts'
import type { Call, CatchUpResult, Collected, Health, Sample, Status } from './p2p-protocol.ts'

/** Polls `condition` every few ms; throws with `what()` after `timeoutMs`. */
export const until = async (condition: () => boolean, what: () => string, timeoutMs: number): Promise<void> => {
  const deadline = performance.now() + timeoutMs
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what()}`)
    await sleep(5)
  }
}

/** The space id the catch-up replicas are opened with (any valid id: only the content is compared). */
const CATCHUP_SPACE_ID = 'bench-space'
/** Room for a catch-up of a large space in one message (the WebSocketTransport default is 16 MiB). */
const CATCHUP_MAX_MESSAGE_BYTES = 512 * 1024 * 1024
const MAP = 'stamps'
const MAX_REPORTED = 20
/** gossipsub's Dlo: it grafts peers into a topic's mesh only while the mesh is smaller than this. */
const MESH_LOW = 4

interface Stamp {
  /** Block: a late stamp of an earlier block is never counted in a later one. */
  b: number
  w: number
  s: number
  /** Send time (nowAbs). */
  t: number
  /** Measured phase (false: warm-up). */
  m: boolean
}

const isStamp = (v: unknown): v is Stamp => typeof v === 'object' && v !== null && typeof (v as Stamp).t === 'number' && typeof (v as Stamp).b === 'number'

interface Arrival {
  w: number
  s: number
  t: number
  at: number
  gossip: boolean
}

interface Member {
  readonly doc: Y.Doc
  readonly replicator: Replicator
  readonly transport: Transport
  readonly peer: ChorusPeer | undefined
  readonly document: DocumentTransport | undefined
  /** Connections of its peer that closed (libp2p 'connection:close'), with the last one's remote address and status. */
  closed: { count: number; last: string }
  /** Arrivals of measured stamps, by block. */
  readonly arrivals: Map<number, Arrival[]>
}

/** Counts the y-protocols bytes a transport carries each way. */
class Counting implements Transport {
  bytesIn = 0
  bytesOut = 0
  private readonly inner: Transport

  constructor(inner: Transport) {
    this.inner = inner
  }

  get peers(): ReadonlySet<PeerId> {
    return this.inner.peers
  }

  start(listener: TransportListener): Promise<void> {
    return this.inner.start({
      ...listener,
      message: (peer, message) => {
        this.bytesIn += message.length
        listener.message(peer, message)
      },
    })
  }

  send(peer: PeerId, message: Uint8Array): void {
    this.bytesOut += message.length
    this.inner.send(peer, message)
  }

  broadcast(message: Uint8Array): void {
    this.bytesOut += message.length * this.inner.peers.size
    this.inner.broadcast(message)
  }

  stop(): Promise<void> {
    return this.inner.stop()
  }
}

/** The TCP socket under a libp2p connection, as the TCP transport hands it to the connection gater. */
const socketOf = (maConn: MultiaddrConnection): Socket | undefined => (maConn as unknown as { socket?: Socket }).socket

/** Whether state vector `have` holds at least every clock of `want` (hex): every update `want` names. */
export const covers = (have: Uint8Array, want: string): boolean => {
  const mine = Y.decodeStateVector(have)
  for (const [client, clock] of Y.decodeStateVector(Buffer.from(want, 'hex'))) if ((mine.get(client) ?? 0) < clock) return false
  return true
}

export class PeerHost {
  private readonly members = new Map<string, Member>()
  private readonly peers = new Set<ChorusPeer>()
  private reported = 0
  private loop: ELDHistogram | undefined
  private gc: PerformanceObserver | undefined
  private gcMax = 0
  private gcTotal = 0
  private readonly label: string

  constructor(label: string) {
    this.label = label
  }

  async handle(call: Call): Promise<unknown> {
    switch (call.op) {
      case 'clock':
        return nowAbs()
      case 'peer':
        return this.startPeer(call)
      case 'dial': {
        const member = this.member(call.name)
        await Promise.all(call.addrs.map((a) => (member.peer as ChorusPeer).dial(a)))
        return null
      }
      case 'ready':
        return this.ready(call.name, call.peers, call.timeoutMs)
      case 'ws': {
        const transport = new WebSocketTransport({ url: call.url })
        const member = await this.attach(call.name, transport, undefined, undefined)
        await withTimeout(member.replicator.whenSynced(transport.peer), 30_000, `${call.name}: sync with the relay`)
        return null
      }
      case 'write':
        return this.write(call)
      case 'collect':
        return this.collect(call)
      case 'monitor':
        return this.monitor(call.on)
      case 'status':
        return this.status(call.name)
      case 'hold':
        return this.hold(call.file, call.seed, call.membership)
      case 'join':
        return this.join(call)
      case 'stop':
        await this.stop()
        return null
    }
  }

  private member(name: string): Member {
    const m = this.members.get(name)
    if (m === undefined) throw new Error(`${this.label}: no member ${name}`)
    return m
  }

  private async newPeer(mode: 'direct' | 'circuit', seed: string, relay?: { addr: string; peerId: string }, sockets?: Socket[]): Promise<ChorusPeer> {
    const key = await peerKeyFromSeed(Buffer.from(seed, 'base64'))
    // Refused streams, failed publishes: none expected; shown on stderr (the first few) if they happen.
    const onError = (error: unknown, context: string): void => {
      if (++this.reported <= MAX_REPORTED) {
        process.stderr.write(`${this.label}: ${context}: ${error instanceof Error ? error.message : String(error)}\n`)
      }
    }
    const common = { key, mdns: false, pubsubDiscovery: false, onError }
    let peer: ChorusPeer
    if (mode === 'direct') {
      peer = await ChorusPeer.start({
        ...common,
        listen: ['/ip4/127.0.0.1/tcp/0'],
        // Never denies: it only notes the TCP socket of each outbound connection (for its byte counters).
        connectionGater: {
          denyOutboundConnection: (_peer, maConn) => {
            const socket = socketOf(maConn)
            if (socket !== undefined) sockets?.push(socket)
            return false
          },
        },
      })
    } else {
      if (relay === undefined) throw new Error('a circuit-only peer needs the relay')
      peer = await ChorusPeer.start({
        ...common,
        listen: [],
        listenViaRelay: true,
        bootstrap: [relay.addr],
        // Nothing is dialled directly but the relay: every other peer only through its circuit.
        connectionGater: {
          denyDialMultiaddr: (ma: Multiaddr) => {
            const s = ma.toString()
            return !s.includes('/p2p-circuit') && !s.includes(relay.peerId)
          },
        },
      })
    }
    this.peers.add(peer)
    return peer
  }

  private async attach(name: string, transport: Transport, peer: ChorusPeer | undefined, document: DocumentTransport | undefined): Promise<Member> {
    if (this.members.has(name)) throw new Error(`${this.label}: member ${name} exists`)
    const doc = new Y.Doc()
    const awareness = new Awareness(doc)
    // No presence: the links carry document updates only.
    awareness.setLocalState(null)
    const replicator = new Replicator(doc, awareness)
    const member: Member = { doc, replicator, transport, peer, document, closed: { count: 0, last: '' }, arrivals: new Map() }
    peer?.node.addEventListener('connection:close', (event) => {
      member.closed.count++
      member.closed.last = `${event.detail.status} ${event.detail.remoteAddr.toString()}`
    })
    this.members.set(name, member)
    const map = doc.getMap<Stamp>(MAP)
    map.observe((event) => {
      if (event.transaction.local) return
      const at = nowAbs()
      const gossip = document?.deliveringGossip ?? false
      for (const key of event.keysChanged as Set<string>) {
        const v = map.get(key)
        if (!isStamp(v) || !v.m) continue
        let list = member.arrivals.get(v.b)
        if (list === undefined) member.arrivals.set(v.b, (list = []))
        list.push({ w: v.w, s: v.s, t: v.t, at, gossip })
      }
    })
    await replicator.attach(transport)
    return member
  }

  private async startPeer(call: Extract<Call, { op: 'peer' }>): Promise<{ peerId: string; addrs: string[] }> {
    const peer = await this.newPeer(call.mode, call.seed, call.relay)
    const document = peer.document(call.membership)
    await this.attach(call.name, document, peer, document)
    if (call.mode === 'circuit') {
      // Reachable once the relay has granted a reservation: the circuit address appears.
      await until(() => peer.multiaddrs.some((a) => a.includes('/p2p-circuit')), () => `${call.name}: a circuit reservation on the relay`, 30_000)
      return { peerId: peer.peerId, addrs: peer.multiaddrs.filter((a) => a.includes('/p2p-circuit')) }
    }
    return { peerId: peer.peerId, addrs: peer.multiaddrs.filter((a) => a.includes('/tcp/') && !a.includes('/ws')) }
  }

  /**
   * Linked to every one of `peers`, each known as a subscriber of the document's topic, and the gossipsub mesh of
   * the topic grown to what gossipsub keeps by itself: all subscribers, or at least `MESH_LOW` of them (gossipsub
   * grafts more only when its mesh is under that; with the relay's node subscribed too, a circuit peer sees 5).
   */
  private async ready(name: string, peers: readonly string[], timeoutMs: number): Promise<{ links: Array<{ peer: string; addrs: string[] }>; mesh: number; subscribers: number }> {
    const member = this.member(name)
    const document = member.document as DocumentTransport
    const node = (member.peer as ChorusPeer).node
    const pubsub = node.services.pubsub as unknown as { getMeshPeers(topic: string): string[]; getSubscribers(topic: string): Array<{ toString(): string }> }
    const topic = document.secrets.topic
    const subscribers = (): Set<string> => new Set(pubsub.getSubscribers(topic).map(String))
    const meshSize = (): number => pubsub.getMeshPeers(topic).length
    await until(
      () => {
        const subs = subscribers()
        return peers.every((p) => document.peers.has(p) && subs.has(p)) && meshSize() >= Math.min(MESH_LOW, subs.size)
      },
      () =>
        `${name}: ${peers.filter((p) => !document.peers.has(p)).length} of ${peers.length} peers not linked, ` +
        `${peers.filter((p) => !subscribers().has(p)).length} not subscribed, gossip mesh ${meshSize()} of ${subscribers().size} subscribers`,
      timeoutMs,
    )
    return {
      links: peers.map((p) => ({ peer: p, addrs: node.getConnections(peerIdFromString(p)).map((c) => c.remoteAddr.toString()) })),
      mesh: meshSize(),
      subscribers: subscribers().size,
    }
  }

  private async write(call: Extract<Call, { op: 'write' }>): Promise<{ written: number; lateMax: number }> {
    const map = this.member(call.name).doc.getMap<Stamp>(MAP)
    const gap = 1000 / call.rate
    // Writers take turns within each period, evenly spread.
    const offset = (call.writer * gap) / call.writers
    let lateMax = 0
    for (let s = 0; s < call.count; s++) {
      const due = call.startAt + offset + s * gap
      const wait = due - nowAbs()
      if (wait > 0) await sleep(wait)
      const t = nowAbs()
      lateMax = Math.max(lateMax, t - due)
      map.set(`${call.block}:${call.writer}:${s}`, { b: call.block, w: call.writer, s, t, m: call.measured })
    }
    return { written: call.count, lateMax }
  }

  private async collect(call: Extract<Call, { op: 'collect' }>): Promise<Collected> {
    const member = this.member(call.name)
    const want = call.expected * (call.writers - 1)
    const got = (): number => member.arrivals.get(call.block)?.filter((a) => a.w !== call.self).length ?? 0
    const deadline = performance.now() + call.waitMs
    while (got() < want && performance.now() < deadline) await sleep(10)
    const arrivals = (member.arrivals.get(call.block) ?? []).filter((a) => a.w !== call.self)
    member.arrivals.delete(call.block)
    const samples: Sample[] = arrivals.map((a) => ({ latency: a.at - a.t, writer: a.w, seq: a.s, sentAfter: a.t - call.startAt, gossip: a.gossip }))
    return { samples, missing: want - arrivals.length }
  }

  private status(name: string): Status {
    const member = this.member(name)
    const counters: Record<string, number> = { ...member.replicator.stats, connectionsClosed: member.closed.count }
    const document = member.document
    if (document === undefined || member.peer === undefined) {
      return { linked: member.transport.peers.size, linkedPeers: [...member.transport.peers], connections: NaN, mesh: NaN, subscribers: NaN, counters }
    }
    Object.assign(counters, document.stats)
    const pubsub = member.peer.node.services.pubsub as unknown as { getMeshPeers(topic: string): string[]; getSubscribers(topic: string): unknown[] }
    return {
      linked: document.peers.size,
      linkedPeers: [...document.peers],
      connections: member.peer.node.getConnections().length,
      mesh: pubsub.getMeshPeers(document.secrets.topic).length,
      subscribers: pubsub.getSubscribers(document.secrets.topic).length,
      counters,
    }
  }

  private monitor(on: boolean): Health | null {
    if (on) {
      this.loop?.disable()
      this.loop = monitorEventLoopDelay({ resolution: 1 })
      this.loop.enable()
      this.gcMax = 0
      this.gcTotal = 0
      this.gc?.disconnect()
      this.gc = new PerformanceObserver((list) => {
        for (const entry of list.getEntries()) {
          this.gcMax = Math.max(this.gcMax, entry.duration)
          this.gcTotal += entry.duration
        }
      })
      this.gc.observe({ entryTypes: ['gc'] })
      return null
    }
    const loop = this.loop
    this.loop = undefined
    loop?.disable()
    this.gc?.disconnect()
    this.gc = undefined
    const ms = (ns: number): number => ns / 1e6
    return { loopP99: loop === undefined ? NaN : ms(loop.percentile(99)), loopMax: loop === undefined ? NaN : ms(loop.max), gcMax: this.gcMax, gcTotal: this.gcTotal }
  }

  // ---- catch-up ---------------------------------------------------------------------------------------------

  private async hold(file: string, seed: string, membership: Extract<Call, { op: 'hold' }>['membership']): Promise<{ peerId: string; addrs: string[]; sv: string }> {
    const peer = await this.newPeer('direct', seed)
    const document = peer.document(membership)
    const member = await this.attach('holder', document, peer, document)
    Y.applyUpdate(member.doc, readFileSync(file))
    return {
      peerId: peer.peerId,
      addrs: peer.multiaddrs.filter((a) => a.includes('/tcp/') && !a.includes('/ws')),
      sv: Buffer.from(Y.encodeStateVector(member.doc)).toString('hex'),
    }
  }

  /** A late joiner with an empty doc: connect, wait for sync step 2, check it holds everything. Torn down after. */
  private async join(call: Extract<Call, { op: 'join' }>): Promise<CatchUpResult> {
    const sockets: Socket[] = []
    let peer: ChorusPeer | undefined
    let inner: Transport
    if (call.via === 'p2p') {
      peer = await this.newPeer('direct', call.seed, undefined, sockets)
      inner = peer.document(call.membership)
    } else {
      inner = new WebSocketTransport({ url: call.url, maxMessageBytes: CATCHUP_MAX_MESSAGE_BYTES })
    }
    const counting = new Counting(inner)
    const doc = new Y.Doc()
    const awareness = new Awareness(doc)
    awareness.setLocalState(null)
    const replicator = new Replicator(doc, awareness)
    let space: Space | undefined
    try {
      let t0: number
      let synced: Promise<void>
      if (call.via === 'p2p') {
        await replicator.attach(counting)
        synced = replicator.whenSynced(call.holder)
        t0 = nowAbs()
        await (peer as ChorusPeer).dial(call.addr)
      } else {
        synced = replicator.whenSynced('relay')
        t0 = nowAbs()
        // The WebSocket opens when the transport starts.
        await replicator.attach(counting)
      }
      await withTimeout(synced, 120_000, `${this.label}: catch-up over ${call.via}`)
      const t1 = nowAbs()
      const complete = covers(Y.encodeStateVector(doc), call.expect.sv)
      space = new Space({ id: CATCHUP_SPACE_ID, doc })
      const newest = space.messages.recent({ limit: 1 })[0]?.content
      const t2 = nowAbs()
      if (!complete) throw new Error(`${this.label}: the joiner's state vector lacks some of the holder's updates`)
      if (newest !== call.expect.last) throw new Error(`${this.label}: the joiner's newest message is ${JSON.stringify(newest)?.slice(0, 60)}, not the last one written`)
      return {
        syncMs: t1 - t0,
        checkMs: t2 - t1,
        payloadIn: counting.bytesIn,
        payloadOut: counting.bytesOut,
        wireIn: sockets.length === 0 ? NaN : sockets.reduce((n, s) => n + s.bytesRead, 0),
        wireOut: sockets.length === 0 ? NaN : sockets.reduce((n, s) => n + s.bytesWritten, 0),
      }
    } finally {
      space?.destroy()
      await replicator.stop()
      if (peer !== undefined) {
        await peer.stop()
        this.peers.delete(peer)
      }
      doc.destroy()
    }
  }

  async stop(): Promise<void> {
    this.monitor(false)
    const members = [...this.members.values()]
    this.members.clear()
    await Promise.allSettled(members.map((m) => m.replicator.stop()))
    await Promise.allSettled([...this.peers].map((p) => p.stop()))
    this.peers.clear()
    // Destroys the awareness with it (its renewal timer would keep the process alive).
    for (const m of members) m.doc.destroy()
  }
}

const withTimeout = <T>(promise: Promise<T>, ms: number, what: string): Promise<T> => {
  let timer: ReturnType<typeof setTimeout> | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}
