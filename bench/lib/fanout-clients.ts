/**
 * The clients of the fan-out benchmark, all in the bench process, one `ws` socket each. Writers set one key of a
 * Y.Map on a real Y.Doc, carrying `{ phase, writer, seq, sentAt }`; every other client in the space reports the
 * update with its receive time, and latency is `receivedAt - sentAt` (performance.timeOrigin + performance.now()
 * on both sides: one machine, one clock).
 *
 * Two kinds of client speak the same y-websocket protocol to either server:
 * - 'provider': a Y.Doc synced by the stock y-websocket `WebsocketProvider`; receivers observe the map. The
 *   realistic client, but applying an update costs it ~50 µs (a Yjs transaction, plus the 'update' event the
 *   provider listens to, which re-encodes the update), several times what a server spends per delivery: one
 *   client process on a small machine saturates long before either server does.
 * - 'raw': the y-protocols handshake over a bare socket (sync step 1 / step 2), then each incoming update is
 *   decoded (Y.decodeUpdate) just to read its stamp, without applying it. Writers still hold a Y.Doc and send
 *   the updates Yjs encodes for their map sets. A delivery then costs the client about what it costs the server
 *   (mostly socket system calls on both sides), so the two processes share a small machine about evenly.
 *
 * Presence is off for both (providers get an Awareness with a null local state), so the sockets carry document
 * updates only; BroadcastChannel is off too, or providers in one process would sync around the server.
 */
import { performance } from 'node:perf_hooks'
import WebSocket from 'ws'
import * as Y from 'yjs'
import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import { Awareness } from 'y-protocols/awareness'
import * as syncProtocol from 'y-protocols/sync'
import { WebsocketProvider } from 'y-websocket'
import { nowAbs, sleep } from './measure.ts'

export type ClientKind = 'raw' | 'provider'

interface Stamp {
  /** Phase id: a late delivery from an earlier phase is not counted in a later one. */
  p: number
  /** Writer index. */
  w: number
  /** Sequence number within the phase, 0-based. */
  s: number
  /** Send time (nowAbs). */
  t: number
}

const isStamp = (v: unknown): v is Stamp =>
  typeof v === 'object' && v !== null && typeof (v as Stamp).p === 'number' && typeof (v as Stamp).w === 'number' && typeof (v as Stamp).s === 'number'

type Deliver = (stamp: Stamp, at: number) => void
/** A provider saw writer `w` jump from seq `from` to `to` (same phase): the stamps in between arrived with it. */
type Superseded = (p: number, w: number, from: number, to: number, at: number) => void
type WsClass = new (url: string) => WebSocket

const MAP = 'fanout'
const keyOf = (writer: number): string => `w${writer}`

interface Client {
  readonly space: number
  /** Writer index, or -1 for a receiver. */
  readonly writer: number
  readonly synced: boolean
  /** Writers only: set this writer's key (one transaction, sent as one update). */
  write(stamp: Stamp): void
  /** What this client last saw from writer `w` (its own value for itself). */
  last(w: number): Stamp | undefined
  close(): void
}

class ProviderClient implements Client {
  readonly space: number
  readonly writer: number
  private readonly doc = new Y.Doc()
  private readonly map = this.doc.getMap<Stamp>(MAP)
  private readonly provider: WebsocketProvider

  /** Per writer, the last stamp seen. */
  private readonly seen = new Map<number, Stamp>()

  constructor(
    wsBase: string,
    room: string,
    space: number,
    writer: number,
    Ws: WsClass,
    deliver: Deliver,
    onDrop: () => void,
    superseded: Superseded,
  ) {
    this.space = space
    this.writer = writer
    const awareness = new Awareness(this.doc)
    awareness.setLocalState(null)
    const WebSocketPolyfill = Ws as unknown as typeof globalThis.WebSocket
    this.provider = new WebsocketProvider(wsBase, room, this.doc, { WebSocketPolyfill, disableBc: true, awareness })
    this.provider.on('status', ({ status }) => {
      if (status === 'disconnected') onDrop()
    })
    this.map.observe((e) => {
      if (e.transaction.local) return
      const at = nowAbs()
      for (const key of e.keysChanged as Set<string>) {
        const stamp = this.map.get(key)
        if (stamp === undefined) continue
        // A server may merge several updates of a writer into one message: the map shows only the last value,
        // but the earlier ones came in the same message.
        const before = this.seen.get(stamp.w)
        if (before?.p === stamp.p && stamp.s > before.s + 1) superseded(stamp.p, stamp.w, before.s, stamp.s, at)
        this.seen.set(stamp.w, stamp)
        deliver(stamp, at)
      }
    })
  }

  get synced(): boolean {
    return this.provider.synced
  }

  write(stamp: Stamp): void {
    this.map.set(keyOf(this.writer), stamp)
  }

  last(w: number): Stamp | undefined {
    return this.map.get(keyOf(w))
  }

  close(): void {
    this.provider.destroy()
    this.doc.destroy()
  }
}

const EMPTY_UPDATE = Y.encodeStateAsUpdate(new Y.Doc())

class RawClient implements Client {
  readonly space: number
  readonly writer: number
  private readonly ws: WebSocket
  private readonly deliver: Deliver
  /** Writers only. */
  private readonly doc: Y.Doc | undefined
  private readonly seen = new Map<number, Stamp>()
  private isSynced = false
  private closing = false

  constructor(wsBase: string, room: string, space: number, writer: number, Ws: WsClass, deliver: Deliver, onDrop: () => void) {
    this.space = space
    this.writer = writer
    this.deliver = deliver
    if (writer >= 0) {
      const doc = new Y.Doc()
      doc.on('update', (update: Uint8Array) => this.send((e) => syncProtocol.writeUpdate(e, update)))
      this.doc = doc
    }
    this.ws = new Ws(`${wsBase}/${room}`)
    this.ws.on('open', () => {
      this.send((e) => {
        encoding.writeVarUint(e, syncProtocol.messageYjsSyncStep1)
        encoding.writeVarUint8Array(e, this.doc === undefined ? new Uint8Array([0]) : Y.encodeStateVector(this.doc))
      })
    })
    this.ws.on('message', (data: Buffer) => this.receive(data))
    // 'close' follows every 'error'.
    this.ws.on('error', () => undefined)
    this.ws.on('close', () => {
      if (!this.closing) onDrop()
    })
  }

  get synced(): boolean {
    return this.isSynced
  }

  /** One sync message (type 0) with the body `write` encodes. */
  private send(write: (e: encoding.Encoder) => void): void {
    if (this.ws.readyState !== WebSocket.OPEN) return
    this.ws.send(
      encoding.encode((e) => {
        encoding.writeVarUint(e, 0)
        write(e)
      }),
    )
  }

  private receive(data: Buffer): void {
    const at = nowAbs()
    const decoder = decoding.createDecoder(data)
    if (decoding.readVarUint(decoder) !== 0) return // awareness and the rest: not used here
    switch (decoding.readVarUint(decoder)) {
      case syncProtocol.messageYjsSyncStep1: {
        const sv = decoding.readVarUint8Array(decoder)
        const reply = this.doc === undefined ? EMPTY_UPDATE : Y.encodeStateAsUpdate(this.doc, sv)
        this.send((e) => {
          encoding.writeVarUint(e, syncProtocol.messageYjsSyncStep2)
          encoding.writeVarUint8Array(e, reply)
        })
        break
      }
      case syncProtocol.messageYjsSyncStep2:
        this.isSynced = true
        break
      case syncProtocol.messageYjsUpdate: {
        for (const struct of Y.decodeUpdate(decoding.readVarUint8Array(decoder)).structs) {
          if (!(struct instanceof Y.Item && struct.content instanceof Y.ContentAny)) continue
          for (const value of struct.content.arr) {
            // The stock server echoes an update to its sender too.
            if (!isStamp(value) || value.w === this.writer) continue
            this.seen.set(value.w, value)
            this.deliver(value, at)
          }
        }
        break
      }
    }
  }

  write(stamp: Stamp): void {
    this.doc?.getMap<Stamp>(MAP).set(keyOf(this.writer), stamp)
  }

  last(w: number): Stamp | undefined {
    return w === this.writer ? this.doc?.getMap<Stamp>(MAP).get(keyOf(w)) : this.seen.get(w)
  }

  close(): void {
    this.closing = true
    this.ws.close()
    this.doc?.destroy()
  }
}

interface Writer {
  index: number
  client: Client
  /** Receivers of each of its updates: the other clients in its space. */
  fanout: number
}

export interface FleetShape {
  spaces: number
  clientsPerSpace: number
  writersPerSpace: number
}

export interface PhaseResult {
  updates: number
  deliveries: number
  /** First send to last delivery (ms). */
  wallMs: number
  /** First send to last send (ms). */
  sendMs: number
  /** Delivery latencies (ms), sorted ascending. */
  latencies: Float64Array
  /** CPU the server child and this (client) process used during the phase (ms). */
  serverCpuMs: number
  clientCpuMs: number
}

export interface FleetOptions extends FleetShape {
  client: ClientKind
  /** Server URL without the room, as WebsocketProvider takes it: space `i` is at `${wsBase}/${room(i)}`. */
  wsBase: string
  /** Room name of space `i`. */
  room: (i: number) => string
  /** Rejects when the server under test dies: every wait checks it. */
  failed: Promise<never>
  serverCpuMs: () => number
  /** Clients that connect at once (each batch waits until it synced). */
  connectBatch?: number
  onProgress?: (msg: string) => void
}

class Phase {
  readonly id: number
  readonly expected: number
  readonly latencies: Float64Array
  private readonly updatesPerWriter: number
  /** Send time of writer w's update s at [w * updatesPerWriter + s]. */
  readonly sentAt: Float64Array
  count = 0
  lastDelivery = 0

  constructor(id: number, writers: readonly Writer[], updatesPerWriter: number) {
    this.id = id
    this.updatesPerWriter = updatesPerWriter
    this.expected = writers.reduce((n, w) => n + w.fanout * updatesPerWriter, 0)
    this.latencies = new Float64Array(this.expected)
    this.sentAt = new Float64Array(writers.length * updatesPerWriter)
  }

  sent(w: number, s: number, t: number): void {
    this.sentAt[w * this.updatesPerWriter + s] = t
  }

  record(stamp: Stamp, at: number): void {
    if (stamp.p !== this.id || this.count >= this.expected) return
    this.latencies[this.count++] = at - stamp.t
    this.lastDelivery = at
  }

  /** Writer `w`'s updates after `from` and before `to`, all received at `at`. */
  recordBetween(w: number, from: number, to: number, at: number): void {
    for (let s = from + 1; s < to; s++) this.record({ p: this.id, w, s, t: this.sentAt[w * this.updatesPerWriter + s] as number }, at)
  }
}

export class Fleet {
  private readonly options: FleetOptions
  private readonly clients: Client[] = []
  private readonly writers: Writer[] = []
  private readonly sockets = new Set<WebSocket>()
  private phase: Phase | undefined
  private phases = 0
  /** Connections that dropped (other than by `close()`): each one means missing deliveries. */
  disconnects = 0
  private live = false
  /** Set once the server under test is gone (`options.failed` rejected). */
  private failure: Error | undefined

  constructor(options: FleetOptions) {
    this.options = options
    options.failed.catch((e: unknown) => {
      this.failure = e instanceof Error ? e : new Error(String(e))
    })
  }

  private async until(condition: () => boolean, what: string, timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs
    for (;;) {
      if (this.failure !== undefined) throw this.failure
      try {
        if (condition()) return
        if (performance.now() > deadline) throw new Error(`timed out after ${(timeoutMs / 1000).toFixed(0)} s waiting for ${what}`)
      } catch (e) {
        // Dropped sockets and missing deliveries are often a dead server: let its exit (and stderr) be the message.
        await sleep(500)
        throw this.failure ?? e
      }
      await sleep(5)
    }
  }

  /** Opens every client, `connectBatch` at a time, and waits until all of them synced. */
  async connect(timeoutMs = 60_000): Promise<void> {
    const { spaces, clientsPerSpace, writersPerSpace, wsBase, room, client: kind } = this.options
    const sockets = this.sockets
    // Tracks every socket the clients open, so teardown can wait for (or force) each one's close.
    class TrackedWebSocket extends WebSocket {
      constructor(address: string, protocols?: string | string[]) {
        super(address, protocols)
        sockets.add(this)
        this.once('close', () => sockets.delete(this))
      }
    }
    // Every provider adds a process 'exit' listener.
    if (kind === 'provider') process.setMaxListeners(process.getMaxListeners() + spaces * clientsPerSpace)
    const deliver: Deliver = (stamp, at) => this.phase?.record(stamp, at)
    const superseded: Superseded = (p, w, from, to, at) => {
      if (this.phase?.id === p) this.phase.recordBetween(w, from, to, at)
    }
    const onDrop = (): void => {
      if (this.live) this.disconnects++
    }
    const batch = this.options.connectBatch ?? 100
    const order: Array<{ space: number; slot: number }> = []
    for (let slot = 0; slot < clientsPerSpace; slot++) for (let space = 0; space < spaces; space++) order.push({ space, slot })
    const deadline = performance.now() + timeoutMs
    this.live = true
    for (let start = 0; start < order.length; start += batch) {
      const fresh: Client[] = []
      for (const { space, slot } of order.slice(start, start + batch)) {
        const writer = slot < writersPerSpace ? this.writers.length : -1
        const client =
          kind === 'provider'
            ? new ProviderClient(wsBase, room(space), space, writer, TrackedWebSocket, deliver, onDrop, superseded)
            : new RawClient(wsBase, room(space), space, writer, TrackedWebSocket, deliver, onDrop)
        this.clients.push(client)
        fresh.push(client)
        if (writer >= 0) this.writers.push({ index: writer, client, fanout: clientsPerSpace - 1 })
      }
      await this.until(
        () => {
          if (this.disconnects > 0) throw new Error(`${this.disconnects} client connections dropped while connecting (closed by the server?)`)
          return fresh.every((c) => c.synced)
        },
        `${this.clients.length} clients to connect and sync`,
        Math.max(1, deadline - performance.now()),
      )
      this.options.onProgress?.(`${this.clients.length}/${order.length} clients synced`)
    }
  }

  /**
   * One phase: every writer sends `updatesPerWriter` updates at `perWriterPerSecond`; resolves when every other
   * client in each writer's space has seen every one of them. Fails when no delivery arrives for `stallMs`.
   */
  async run(updatesPerWriter: number, perWriterPerSecond: number, stallMs = 10_000): Promise<PhaseResult> {
    const writers = this.writers
    const id = ++this.phases
    const sent = new Int32Array(writers.length)
    let firstSend = NaN
    let lastSend = NaN
    const phase = new Phase(id, writers, updatesPerWriter)
    const send = (w: number): void => {
      const writer = writers[w] as Writer
      const s = sent[w] as number
      sent[w] = s + 1
      const t = nowAbs()
      if (Number.isNaN(firstSend)) firstSend = t
      lastSend = t
      phase.sent(w, s, t)
      writer.client.write({ p: id, w, s, t })
    }

    const cpu0 = process.cpuUsage()
    const server0 = this.options.serverCpuMs()
    this.phase = phase
    // One schedule for all writers: update j goes at t0 + j * gap, from writer j % W (writers interleave evenly).
    // A tick that comes late sends everything due, so a busy event loop delays sends but does not drop them.
    const total = writers.length * updatesPerWriter
    const gap = 1000 / (perWriterPerSecond * writers.length)
    const t0 = performance.now()
    let j = 0
    const tick = (): void => {
      if (this.phase !== phase) return
      const due = Math.min(total, Math.floor((performance.now() - t0) / gap) + 1)
      while (j < due) send(j++ % writers.length)
      if (j < total) setTimeout(tick, Math.max(0, t0 + j * gap - performance.now()))
    }
    tick()
    // Fails when no delivery arrived for `stallMs` (sends may still be going on: a stuck server is a failure too).
    let lastCount = -1
    let lastProgress = performance.now()
    try {
      await this.until(
        () => {
          // Raw clients do not reconnect, and a provider that does resyncs without the intermediate updates.
          if (this.disconnects > 0) throw new Error(`${this.disconnects} client connections dropped during the run (closed by the server?)`)
          if (phase.count !== lastCount) {
            lastCount = phase.count
            lastProgress = performance.now()
          } else if (performance.now() - lastProgress > stallMs) {
            throw new Error(
              `deliveries missing: ${phase.count} of ${phase.expected} arrived, none in the last ${(stallMs / 1000).toFixed(0)} s` +
                ` (${this.disconnects} connection drops during the run)`,
            )
          }
          return phase.count === phase.expected
        },
        `${phase.expected} deliveries`,
        Infinity,
      )
    } finally {
      this.phase = undefined
    }
    const cpu = process.cpuUsage(cpu0)
    const serverCpuMs = this.options.serverCpuMs() - server0
    this.verify(id, updatesPerWriter)
    return {
      updates: writers.length * updatesPerWriter,
      deliveries: phase.count,
      wallMs: phase.lastDelivery - firstSend,
      sendMs: lastSend - firstSend,
      latencies: phase.latencies.sort(),
      serverCpuMs,
      clientCpuMs: (cpu.user + cpu.system) / 1000,
    }
  }

  /** Every client holds the last update of every writer in its space. */
  private verify(id: number, updatesPerWriter: number): void {
    for (const w of this.writers) {
      for (const c of this.clients) {
        if (c.space !== w.client.space) continue
        const stamp = c.last(w.index)
        if (stamp?.p !== id || stamp.s !== updatesPerWriter - 1) {
          throw new Error(`client in space ${c.space} holds ${JSON.stringify(stamp)} for writer ${w.index}, expected phase ${id} seq ${updatesPerWriter - 1}`)
        }
      }
    }
  }

  /** Closes every client, then waits for each socket to close (terminating stragglers). */
  async close(timeoutMs = 5_000): Promise<void> {
    this.live = false
    const opened = this.clients.length
    for (const c of this.clients.splice(0)) c.close()
    this.writers.length = 0
    if (this.options.client === 'provider') process.setMaxListeners(Math.max(10, process.getMaxListeners() - opened))
    const deadline = performance.now() + timeoutMs
    while (this.sockets.size > 0 && performance.now() < deadline) await sleep(10)
    for (const ws of this.sockets) ws.terminate()
    this.sockets.clear()
  }
}
