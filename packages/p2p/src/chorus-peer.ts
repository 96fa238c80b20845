/**
 * A participant's libp2p node and the documents it syncs over it.
 *
 * The node: TCP and WebSockets, noise, yamux, identify, ping and gossipsub; the circuit-relay transport, so it
 * can dial peers through a relay and (with `listenViaRelay`) be reached through one; discovery by bootstrap
 * (the relay's multiaddrs), pubsub peer discovery and mDNS (each can be switched off). Every discovered peer is
 * dialled. A relay node adds the circuit-relay server with raised limits (`relayServer`).
 *
 * Documents: `document(membership)` gives the `Transport` of one document (`DocumentTransport`). This class
 * routes to them: sync streams by the tag their dialer sends first, gossip messages by topic, and every new
 * connection to each document, which then opens its sync stream over it.
 */
import { createHash } from 'node:crypto'
import { createLibp2p, type Libp2p, type Libp2pOptions } from 'libp2p'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { bootstrap } from '@libp2p/bootstrap'
import { circuitRelayServer, circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { gossipsub, type GossipSub } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import type { Connection, ConnectionGater, PeerDiscovery, Stream } from '@libp2p/interface'
import { mdns } from '@libp2p/mdns'
import { peerIdFromString } from '@libp2p/peer-id'
import { ping } from '@libp2p/ping'
import { pubsubPeerDiscovery } from '@libp2p/pubsub-peer-discovery'
import { tcp } from '@libp2p/tcp'
import { webSockets } from '@libp2p/websockets'
import { multiaddr } from '@multiformats/multiaddr'
import { ChorusError } from '@chorus/sync'
import {
  DocumentTransport,
  HANDSHAKE_MS,
  STREAM_LIMITS,
  SYNC_PROTOCOL,
  type DocumentHost,
  type DocumentTransportOptions,
} from './document-transport.ts'
import { FramedStream } from './framed-stream.ts'
import type { Membership } from './membership.ts'
import type { PeerKey } from './peer-key.ts'

/** The relay's circuit limits: a relayed connection may stay up a day and carry 1 GiB (libp2p: 2 min, 128 KiB). */
export const RELAY_LIMITS = { durationMs: 24 * 60 * 60 * 1000, dataBytes: 1n << 30n, maxReservations: 1024 }

export interface ChorusPeerOptions {
  key: PeerKey
  /** Multiaddrs to listen on. Default: TCP and WebSockets on 127.0.0.1, ports chosen by the system. */
  listen?: string[]
  /** Bootstrap multiaddrs, e.g. the relay's from its `/capabilities`. */
  bootstrap?: string[]
  /** Also be reachable through the circuit of a relay this peer is connected to. Default false. */
  listenViaRelay?: boolean
  /** Find peers on the LAN by mDNS. Default true. */
  mdns?: boolean
  /** Find peers through pubsub peer discovery (needs a common peer, such as the relay). Default true. */
  pubsubDiscovery?: boolean
  /** How often pubsub peer discovery announces this peer (ms). Default 10 s. */
  discoveryIntervalMs?: number
  /** Run a circuit-relay-v2 server with `RELAY_LIMITS` (the relay's node). */
  relayServer?: boolean
  /** Refuse some connections (e.g. to split a mesh in a test). */
  connectionGater?: ConnectionGater
  /**
   * Asked for the document of a sync stream whose tag no open document has (the relay opens a space's document
   * on demand this way): return it started, or undefined to refuse the stream.
   */
  resolveDocument?: (tag: Uint8Array, remotePeer: string) => Promise<DocumentTransport | undefined>
  /** Told about refused streams and failed publishes; default: nothing. */
  onError?: (error: unknown, context: string) => void
  now?: () => number
}

type Services = { identify: unknown; ping: unknown; pubsub: GossipSub; relay?: unknown }

const EMPTY = new Uint8Array(0)

/** How often a peer checks that it is still connected to its bootstrap peers. */
const BOOTSTRAP_REDIAL_MS = 2_000

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && Buffer.from(a).equals(b)

export class ChorusPeer {
  readonly node: Libp2p<Services>
  readonly key: PeerKey
  private readonly byTopic = new Map<string, DocumentTransport>()
  private readonly byDoc = new Map<string, DocumentTransport>()
  private readonly onError: (error: unknown, context: string) => void
  private readonly now: () => number
  private readonly resolveDocument: ChorusPeerOptions['resolveDocument']
  private readonly host: DocumentHost
  private stopped = false
  private redial: ReturnType<typeof setInterval> | undefined

  private constructor(node: Libp2p<Services>, options: ChorusPeerOptions) {
    this.node = node
    this.key = options.key
    this.onError = options.onError ?? (() => undefined)
    this.now = options.now ?? Date.now
    this.resolveDocument = options.resolveDocument
    const pubsub = node.services.pubsub
    this.host = {
      peerId: options.key.peerId,
      connectedPeers: () => node.getPeers().map(String),
      openStream: (peer) => node.dialProtocol(peerIdFromString(peer), SYNC_PROTOCOL, { runOnLimitedConnection: true, signal: AbortSignal.timeout(HANDSHAKE_MS) }),
      subscribe: (transport, on) => this.route(transport, on),
      publish: (topic, data) => {
        pubsub.publish(topic, data).catch((e: unknown) => this.onError(e, 'gossip publish'))
      },
      gossipSubscribers: (topic) => new Set(pubsub.getSubscribers(topic).map(String)),
      // getMeshPeers is on the gossipsub class, not on its exported interface.
      gossipMesh: (topic) => new Set((pubsub as unknown as { getMeshPeers(topic: string): string[] }).getMeshPeers(topic)),
      report: (error, context) => this.onError(error, context),
      now: () => this.now(),
    }
  }

  /** Create and start the node, listening on `options.listen`. */
  static async start(options: ChorusPeerOptions): Promise<ChorusPeer> {
    const listen = options.listen ?? ['/ip4/127.0.0.1/tcp/0', '/ip4/127.0.0.1/tcp/0/ws']
    const discovery: Array<(components: never) => PeerDiscovery> = []
    if (options.bootstrap !== undefined && options.bootstrap.length > 0) {
      for (const address of options.bootstrap) checkMultiaddr(address)
      discovery.push(bootstrap({ list: options.bootstrap, timeout: 0 }))
    }
    if (options.pubsubDiscovery !== false) {
      discovery.push(pubsubPeerDiscovery({ interval: options.discoveryIntervalMs ?? 10_000 }))
    }
    if (options.mdns !== false) discovery.push(mdns())
    const services: Record<string, unknown> = {
      identify: identify(),
      ping: ping(),
      // Publishing with nobody on the topic yet is normal (peers subscribe as they join).
      pubsub: gossipsub({
        allowPublishToZeroTopicPeers: true,
        emitSelf: false,
        // Gossip also crosses relayed (limited) connections, to peers reachable only through a circuit.
        runOnLimitedConnection: true,
        // A peer gets each message from several mesh peers: without this, gossipsub checks the signature of every
        // copy before it looks for a duplicate. Sealed data starts with a random nonce, so equal data is a copy.
        fastMsgIdFn: (message) => createHash('sha256').update(message.data ?? EMPTY).digest('base64'),
      }),
    }
    if (options.relayServer === true) {
      services.relay = circuitRelayServer({
        reservations: {
          maxReservations: RELAY_LIMITS.maxReservations,
          defaultDurationLimit: RELAY_LIMITS.durationMs,
          defaultDataLimit: RELAY_LIMITS.dataBytes,
        },
      })
    }
    const config = {
      privateKey: options.key.privateKey,
      addresses: { listen: options.listenViaRelay === true ? [...listen, '/p2p-circuit'] : listen },
      transports: [tcp(), webSockets(), circuitRelayTransport()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      // libp2p refuses more than 5 inbound connections a second from one address: too few for a relay that peers
      // behind one NAT (or on one machine) reach at once.
      connectionManager: { inboundConnectionThreshold: 100 },
      // libp2p drops a connection whose ping takes over 5 s: a busy peer (or relay) would lose every link, and every
      // circuit through it, at once. Allow 30 s.
      connectionMonitor: { pingTimeout: { minTimeout: 30_000 } },
      peerDiscovery: discovery,
      services,
      connectionGater: options.connectionGater,
    } as unknown as Libp2pOptions<Services>
    const node = await createLibp2p<Services>(config)
    const peer = new ChorusPeer(node, options)
    await peer.wire()
    if (options.bootstrap !== undefined && options.bootstrap.length > 0) peer.keepBootstrap(options.bootstrap)
    return peer
  }

  get peerId(): string {
    return this.key.peerId
  }

  /** The addresses others can dial, each ending in `/p2p/<peer id>`. */
  get multiaddrs(): string[] {
    return this.node.getMultiaddrs().map(String)
  }

  /** The transport of the document `membership` is for; one per document and peer. Start it to sync. */
  document(membership: Membership, options?: DocumentTransportOptions): DocumentTransport {
    if (this.stopped) throw new ChorusError('closed', 'this peer has stopped')
    const existing = this.byDoc.get(membership.credential.doc)
    if (existing?.started === true) throw new ChorusError('conflict', `${membership.credential.doc} is already open on this peer`)
    return new DocumentTransport(this.host, membership, options)
  }

  /** Dial a multiaddr (a peer's or the relay's); resolves once connected. */
  async dial(address: string): Promise<void> {
    await this.node.dial(checkMultiaddr(address), { signal: AbortSignal.timeout(HANDSHAKE_MS) })
  }

  /** Close every connection to `peer`. */
  async hangUp(peer: string): Promise<void> {
    await this.node.hangUp(peerIdFromString(peer))
  }

  async stop(): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    clearInterval(this.redial)
    await Promise.all([...this.byDoc.values()].map((t) => t.stop()))
    await this.node.stop()
  }

  /** Dial the bootstrap peers again whenever not connected (a relay that restarted is found again). */
  private keepBootstrap(addresses: string[]): void {
    const targets = addresses.map((a) => ({ target: multiaddr(a), id: /\/p2p\/([^/]+)$/.exec(a)?.[1] }))
    this.redial = setInterval(() => {
      for (const { target, id } of targets) {
        if (id !== undefined && this.node.getConnections(peerIdFromString(id)).length > 0) continue
        this.node.dial(target, { signal: AbortSignal.timeout(HANDSHAKE_MS) }).catch(() => undefined)
      }
    }, BOOTSTRAP_REDIAL_MS)
    this.redial.unref()
  }

  private route(transport: DocumentTransport, on: boolean): void {
    const { topic } = transport.secrets
    const pubsub = this.node.services.pubsub
    if (on) {
      const other = this.byDoc.get(transport.doc)
      if (other !== undefined && other !== transport && other.started) {
        throw new ChorusError('conflict', `${transport.doc} is already open on this peer`)
      }
      this.byDoc.set(transport.doc, transport)
      this.byTopic.set(topic, transport)
      pubsub.subscribe(topic)
    } else if (this.byDoc.get(transport.doc) === transport) {
      this.byDoc.delete(transport.doc)
      this.byTopic.delete(topic)
      if (!this.stopped) pubsub.unsubscribe(topic)
    }
  }

  private async wire(): Promise<void> {
    const node = this.node
    await node.handle(SYNC_PROTOCOL, (stream: Stream, connection: Connection) => this.inbound(stream, connection), {
      runOnLimitedConnection: true,
      maxInboundStreams: 1024,
    })
    node.addEventListener('peer:connect', (event) => {
      const peer = event.detail.toString()
      for (const transport of this.byDoc.values()) transport.dial(peer)
    })
    node.addEventListener('peer:discovery', (event) => {
      const { id } = event.detail
      if (this.stopped || id.equals(node.peerId) || node.getConnections(id).length > 0) return
      node.dial(id, { signal: AbortSignal.timeout(HANDSHAKE_MS) }).catch(() => undefined)
    })
    node.services.pubsub.addEventListener('message', (event) => {
      const message = event.detail
      const transport = this.byTopic.get(message.topic)
      if (transport === undefined || message.type !== 'signed') return
      transport.gossip(message.from.toString(), message.data)
    })
  }

  /** A sync stream: its first frame names the document (its tag for this pair of peers); a stranger's goes nowhere. */
  private inbound(stream: Stream, connection: Connection): void {
    const framed = new FramedStream(stream, STREAM_LIMITS)
    const timer = setTimeout(() => framed.abort(new Error('no document tag in time')), HANDSHAKE_MS)
    timer.unref?.()
    framed.onClose = () => clearTimeout(timer)
    framed.onMessage = (tag) => {
      clearTimeout(timer)
      framed.onMessage = () => framed.abort(new Error('spoke before its credential was asked for'))
      const remote = connection.remotePeer.toString()
      const known = [...this.byDoc.values()].find((t) => sameBytes(t.secrets.streamTag(remote, this.peerId), tag))
      const found = known !== undefined ? Promise.resolve(known) : (this.resolveDocument?.(tag.slice(), remote) ?? Promise.resolve(undefined))
      found.then(
        (transport) => {
          if (transport === undefined || !transport.started) framed.abort(new Error('unknown document'))
          else if (framed.isOpen) transport.accept(framed, connection)
        },
        (e: unknown) => {
          this.onError(e, 'resolve document')
          framed.abort(new Error('unknown document'))
        },
      )
    }
  }
}

function checkMultiaddr(address: string): ReturnType<typeof multiaddr> {
  try {
    return multiaddr(address)
  } catch (e) {
    throw new ChorusError('invalid_input', `not a multiaddr: ${address} (${(e as Error).message})`)
  }
}
