/**
 * WebSocketTransport against the stock y-websocket server (`@y/websocket-server`), over real sockets on
 * 127.0.0.1. Nothing sleeps: every wait is for an event, with a safety deadline.
 */
import { once } from 'node:events'
import { createServer, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import { isDeepStrictEqual } from 'node:util'
import { afterEach, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { Awareness } from 'y-protocols/awareness'
import { WebSocketServer, type WebSocket as ServerSocket } from 'ws'
import { setupWSConnection } from '@y/websocket-server/utils'
import { WebsocketProvider } from 'y-websocket'
import {
  backoffDelay,
  connectSpace,
  encodeSyncStep1,
  encodeSyncStep2,
  isChorusError,
  Replicator,
  Space,
  syncUrl,
  WebSocketTransport,
  type Timers,
  type TransportStatus,
  type WebSocketTransportOptions,
} from '@chorus/sync'
import { Signal } from '@chorus/sync/testing'
import { signalled, until } from '../support/wait.ts'

const connectTimeoutMs = 5_000

let rooms = 0
/** The stock server keeps every document in a module-level map, so each test uses its own room. */
const room = (name: string): string => `ws-${name}-${++rooms}-${process.pid}`

interface StockServer {
  /** `ws://127.0.0.1:<port>` */
  base: string
  /** Open server-side sockets. */
  readonly connections: Set<ServerSocket>
  /** Upgrades to refuse (socket destroyed), by the `client` query parameter. */
  readonly refuse: Map<string, number>
  /** Wakes on every server-side connect and close. */
  readonly signal: Signal
  terminateAll(): void
  close(): Promise<void>
}

/** The stock server, wired as in @y/websocket-server/src/server.js. */
const startStockServer = async (): Promise<StockServer> => {
  const wss = new WebSocketServer({ noServer: true })
  const connections = new Set<ServerSocket>()
  const refuse = new Map<string, number>()
  const signal = new Signal()
  wss.on('connection', (ws: ServerSocket, request: IncomingMessage) => {
    connections.add(ws)
    ws.on('close', () => {
      connections.delete(ws)
      signal.notify()
    })
    setupWSConnection(ws, request)
    signal.notify()
  })
  const server = createServer((_request, response) => {
    response.writeHead(200, { 'Content-Type': 'text/plain' })
    response.end('okay')
  })
  server.on('upgrade', (request: IncomingMessage, socket, head) => {
    const client = new URL(request.url ?? '/', 'http://x').searchParams.get('client') ?? ''
    const left = refuse.get(client) ?? 0
    if (left > 0) {
      refuse.set(client, left - 1)
      socket.destroy()
      signal.notify()
      return
    }
    wss.handleUpgrade(request, socket, head, (ws) => wss.emit('connection', ws, request))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  return {
    base: `ws://127.0.0.1:${port}`,
    connections,
    refuse,
    signal,
    terminateAll: () => {
      for (const ws of connections) ws.terminate()
    },
    close: async () => {
      for (const ws of connections) ws.terminate()
      wss.close()
      server.closeAllConnections()
      const closed = once(server, 'close')
      server.close()
      await closed
    },
  }
}

/** Real timers that record every delay asked for; while `held`, new timers wait for `release()`. */
class RecordingTimers implements Timers {
  readonly delays: number[] = []
  /** Timers scheduled and neither fired nor cleared. */
  readonly pending = new Set<{ handle: ReturnType<typeof setTimeout> | null }>()
  held = false
  private readonly heldBack: Array<() => void> = []

  setTimeout(callback: () => void, ms: number): unknown {
    this.delays.push(ms)
    const entry: { handle: ReturnType<typeof setTimeout> | null } = { handle: null }
    this.pending.add(entry)
    const arm = (): void => {
      if (!this.pending.has(entry)) return
      entry.handle = setTimeout(() => {
        this.pending.delete(entry)
        callback()
      }, ms)
    }
    if (this.held) this.heldBack.push(arm)
    else arm()
    return entry
  }

  clearTimeout(handle: unknown): void {
    const entry = handle as { handle: ReturnType<typeof setTimeout> | null }
    if (entry.handle !== null) clearTimeout(entry.handle)
    this.pending.delete(entry)
  }

  release(): void {
    this.held = false
    for (const arm of this.heldBack.splice(0)) arm()
  }
}

/** A transport whose status changes are recorded and wake `signal`. */
const transport = (
  signal: Signal,
  options: WebSocketTransportOptions,
): { t: WebSocketTransport; statuses: TransportStatus[] } => {
  const statuses: TransportStatus[] = []
  const t = new WebSocketTransport({
    connectTimeoutMs,
    ...options,
    onStatus: (status) => {
      statuses.push(status)
      signal.notify()
    },
  })
  return { t, statuses }
}

/** A replicator for `doc` (a fresh, empty one by default). */
const newReplicator = (doc = new Y.Doc()): Replicator => {
  return new Replicator(doc, new Awareness(doc))
}

const stateVectorsEqual = (a: Y.Doc, b: Y.Doc): boolean =>
  isDeepStrictEqual(Y.encodeStateVector(a), Y.encodeStateVector(b))

const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

const server = async (): Promise<StockServer> => {
  const s = await startStockServer()
  cleanups.push(() => s.close())
  return s
}

/** A space connected to the server over a WebSocketTransport, with one participant joined. */
const connectedSpace = async (
  s: StockServer,
  id: string,
  participant: string,
  signal: Signal,
  options: Partial<WebSocketTransportOptions> = {},
): Promise<{ space: Space; t: WebSocketTransport; statuses: TransportStatus[] }> => {
  const space = new Space({ id })
  space.join({ id: participant, name: participant, kind: 'human' })
  space.doc.on('update', signal.notify)
  space.presence.awareness.on('update', signal.notify)
  const { t, statuses } = transport(signal, { url: syncUrl(s.base, id), ...options })
  const connection = await connectSpace(space, (d) => (d.doc === space.doc ? t : undefined))
  cleanups.push(async () => {
    await connection.stop()
    space.destroy()
  })
  return { space, t, statuses }
}

describe('WebSocketTransport against the stock y-websocket server', () => {
  it('converges both ways with a stock WebsocketProvider in the same room', async () => {
    const s = await server()
    const id = room('provider')
    const signal = new Signal()
    const space = new Space({ id })
    const alice = space.join({ id: 'alice', name: 'Alice', kind: 'human' })
    space.doc.on('update', signal.notify)
    const replicator = new Replicator(space.doc, space.presence.awareness)
    const { t } = transport(signal, { url: syncUrl(s.base, id) })
    await replicator.attach(t)
    cleanups.push(async () => {
      await replicator.stop()
      space.destroy()
    })

    const doc = new Y.Doc()
    doc.on('update', signal.notify)
    // disableBc: in one process, BroadcastChannel would let the provider bypass the server.
    const provider = new WebsocketProvider(`${s.base}/sync`, id, doc, { WebSocketPolyfill: WebSocket, disableBc: true })
    provider.awareness.on('update', signal.notify)
    const mirror = new Space({ id, doc, awareness: provider.awareness })
    cleanups.push(() => {
      provider.destroy()
      mirror.destroy()
    })

    alice.send('hello from chorus')
    doc.getMap('notes').set('provider', 'hello from y-websocket')
    await until(
      () =>
        space.doc.getMap('notes').get('provider') === 'hello from y-websocket' &&
        mirror.messages.all().length === 1 &&
        stateVectorsEqual(space.doc, doc),
      'both replicas to converge',
      { on: signalled(signal) },
    )
    expect(mirror.snapshot()).toEqual(space.snapshot())
    expect(mirror.messages.all()[0]?.content).toBe('hello from chorus')
    // Presence reaches the stock client too.
    await until(() => mirror.presence.status('alice').status === 'online', 'alice to be online for the provider', { on: signalled(signal) })
    expect(t.state).toBe('connected')
    expect(t.peers).toEqual(new Set(['relay']))
  })

  it('connects two Chorus spaces through connectSpace, presence included', async () => {
    const s = await server()
    const id = room('spaces')
    const signal = new Signal()
    const a = await connectedSpace(s, id, 'alice', signal)
    const b = await connectedSpace(s, id, 'bob', signal)
    a.space.member('alice').send('hi bob')
    const task = b.space.member('bob').createTask({ title: 'Review main.py' })
    await until(
      () =>
        isDeepStrictEqual(a.space.snapshot(), b.space.snapshot()) &&
        a.space.tasks.get(task.id) !== undefined &&
        b.space.messages.all().length === 1 &&
        a.space.presence.status('bob').status === 'online' &&
        b.space.presence.status('alice').status === 'online',
      'the spaces to converge with presence',
      { on: signalled(signal) },
    )
    expect(a.statuses).toEqual(['connecting', 'connected'])
    expect(b.t.attempts).toBe(0)
  })

  it('reconnects with jittered backoff after the server drops every connection, and resyncs', async () => {
    const s = await server()
    const id = room('reconnect')
    const signal = new Signal()
    const timers = new RecordingTimers()
    const a = await connectedSpace(s, id, 'alice', signal, {
      url: `${syncUrl(s.base, id)}?client=a`,
      random: () => 0.5,
      timers,
    })
    const b = await connectedSpace(s, id, 'bob', signal)
    await until(() => isDeepStrictEqual(a.space.snapshot(), b.space.snapshot()) && a.space.presence.status('bob').status === 'online', 'the first sync', {
      on: signalled(signal),
    })

    // Hold a's retries so the writes below are certainly made while it is disconnected; refuse its next two tries.
    timers.held = true
    s.refuse.set('a', 2)
    const delaysBefore = timers.delays.length
    s.terminateAll()
    await until(() => a.t.state === 'waiting', 'a to report disconnected', { on: signalled(signal) })
    expect(a.t.peers.size).toBe(0)
    a.space.member('alice').send('written while cut off')
    a.space.member('alice').set('mood', 'patient')
    expect(b.space.messages.all()).toHaveLength(0)
    timers.release()

    await until(
      () =>
        a.t.state === 'connected' &&
        b.t.state === 'connected' &&
        isDeepStrictEqual(a.space.snapshot(), b.space.snapshot()) &&
        b.space.messages.all().length === 1 &&
        a.space.presence.status('bob').status === 'online' &&
        b.space.presence.status('alice').status === 'online',
      'a to reconnect and both to resync',
      { on: signalled(signal) },
    )
    expect(b.space.messages.all()[0]?.content).toBe('written while cut off')
    // Three retries in a row (the drop, then two refusals): full jitter over 250, 500, 1000 ms with random 0.5.
    const retries = timers.delays.slice(delaysBefore).filter((ms) => ms !== connectTimeoutMs)
    expect(retries).toEqual([125, 250, 500])
    expect(a.t.attempts).toBe(3)
    expect(a.statuses).toEqual([
      'connecting', 'connected',
      'disconnected', 'connecting',
      'disconnected', 'connecting',
      'disconnected', 'connecting', 'connected',
    ])
  })

  it('gives up when the server closes with a 44xx code', async () => {
    const s = await server()
    const id = room('refused')
    const signal = new Signal()
    const timers = new RecordingTimers()
    const { t, statuses } = transport(signal, { url: syncUrl(s.base, id), timers })
    const replicator = newReplicator()
    cleanups.push(() => replicator.stop())
    await replicator.attach(t)
    await until(() => t.state === 'connected', 'connected', { on: signalled(signal) })
    for (const ws of s.connections) ws.close(4403, 'access revoked')
    await until(() => t.state === 'closed', 'closed for good', { on: signalled(signal) })
    expect(t.lastClose).toEqual({ code: 4403, reason: 'access revoked' })
    expect(statuses).toEqual(['connecting', 'connected', 'disconnected'])
    expect(timers.pending.size).toBe(0)
    expect(t.hasTimers).toBe(false)
  })

  it('makes no attempt while isOnline says no, drops its link on dropConnection, and retryNow connects at once', async () => {
    const s = await server()
    const signal = new Signal()
    let online = false
    let asked = 0
    const isOnline = (): boolean => {
      asked++
      signal.notify()
      return online
    }
    const { t, statuses } = transport(signal, { url: syncUrl(s.base, room('online')), isOnline, random: () => 0 })
    const replicator = newReplicator()
    cleanups.push(() => replicator.stop())
    await replicator.attach(t)
    // Offline from the start: asked once, no socket, no timer; it waits to be told.
    expect([t.state, asked, s.connections.size, t.hasTimers]).toEqual(['waiting', 1, 0, false])

    online = true
    t.retryNow()
    await until(() => t.state === 'connected' && s.connections.size === 1, 'connected', { on: signalled(signal, s.signal) })
    await replicator.whenSynced('relay')

    // The platform says the network is gone while the socket still looks open: drop it, then retry (random 0:
    // at once), and the retry asks first and makes no attempt.
    online = false
    const askedBefore = asked
    t.dropConnection()
    expect(t.peers.size).toBe(0)
    await until(() => s.connections.size === 0 && asked > askedBefore, 'the server to see the close and the retry to ask', { on: signalled(signal, s.signal) })
    expect(t.state).toBe('waiting')
    expect(t.hasTimers).toBe(false)

    online = true
    t.retryNow()
    await until(() => t.state === 'connected' && s.connections.size === 1, 'connected again', { on: signalled(signal, s.signal) })
    expect(statuses).toEqual(['connecting', 'connected', 'disconnected', 'connecting', 'connected'])
    // retryNow and dropConnection do nothing in states they do not apply to.
    t.retryNow()
    expect(t.state).toBe('connected')
    await t.stop()
    t.dropConnection()
    expect(t.state).toBe('closed')
  })

  it('stop() closes the socket, cancels retries and leaves no handle open', async () => {
    const s = await server()
    const id = room('stop')
    const signal = new Signal()
    const sockets = (): number => process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length
    const baseline = sockets()
    const timers = new RecordingTimers()
    let created = 0
    class CountingWebSocket extends WebSocket {
      constructor(url: string) {
        super(url)
        created++
      }
    }
    const options = { url: syncUrl(s.base, id), timers, WebSocket: CountingWebSocket }

    // Connected, then stopped.
    const one = transport(signal, options)
    const replicator = newReplicator()
    cleanups.push(() => replicator.stop())
    await replicator.attach(one.t)
    await until(() => one.t.state === 'connected' && s.connections.size === 1, 'connected', { on: signalled(signal, s.signal) })
    expect(sockets()).toBeGreaterThan(baseline)
    await replicator.detach(one.t)
    expect(one.t.state).toBe('closed')
    expect(one.statuses).toEqual(['connecting', 'connected', 'disconnected'])
    await until(() => s.connections.size === 0, 'the server to see the close', { on: signalled(s.signal) })
    expect(timers.pending.size).toBe(0)
    expect(one.t.hasTimers).toBe(false)

    // Dropped by the server, stopped while waiting to retry: the retry never happens.
    const two = transport(signal, options)
    await two.t.start({ peerJoined: () => {}, peerLeft: () => {}, message: () => {} })
    await until(() => two.t.state === 'connected' && s.connections.size === 1, 'connected', { on: signalled(signal, s.signal) })
    timers.held = true
    s.terminateAll()
    await until(() => two.t.state === 'waiting', 'waiting to retry', { on: signalled(signal) })
    expect(two.t.hasTimers).toBe(true)
    const createdBefore = created
    await two.t.stop()
    expect(two.t.hasTimers).toBe(false)
    expect(timers.pending.size).toBe(0)
    timers.release() // what was held back was cleared, so nothing runs
    expect(created).toBe(createdBefore)
    await expect(two.t.start({ peerJoined: () => {}, peerLeft: () => {}, message: () => {} })).rejects.toThrow()

    // Stopped while the socket is still opening.
    const three = transport(signal, options)
    await three.t.start({ peerJoined: () => {}, peerLeft: () => {}, message: () => {} })
    expect(three.t.state).toBe('connecting')
    await three.t.stop()
    expect(three.t.state).toBe('closed')
    expect(timers.pending.size).toBe(0)

    await until(() => s.connections.size === 0, 'the server to see every close', { on: signalled(s.signal) })
    expect(sockets()).toBe(baseline)
  })

  it('refuses to send a message over maxMessageBytes', async () => {
    const s = await server()
    const signal = new Signal()
    // The limit is the size of the server's sync step 2 for an empty document.
    const empty = new Y.Doc()
    const step2 = encodeSyncStep2(empty)
    const errors: Error[] = []
    const { t } = transport(signal, {
      url: syncUrl(s.base, room('large')),
      maxMessageBytes: step2.length,
      onError: (e) => {
        errors.push(e)
        signal.notify()
      },
    })
    cleanups.push(() => t.stop())
    const refused = (f: () => void): boolean => {
      try {
        f()
      } catch (error) {
        return isChorusError(error, 'too_large')
      }
      return false
    }
    const over = new Uint8Array(step2.length + 1)
    // Not started: the limit holds whether or not the link is up.
    expect(refused(() => t.send('relay', over))).toBe(true)
    const received: Uint8Array[] = []
    const listener = {
      peerJoined: () => {},
      peerLeft: () => {},
      message: (_peer: string, m: Uint8Array) => {
        received.push(m)
        signal.notify()
      },
    }
    await t.start(listener)
    await until(() => t.state === 'connected', 'connected', { on: signalled(signal) })
    expect(refused(() => t.send('relay', over))).toBe(true)
    expect(refused(() => t.broadcast(new Uint8Array(100)))).toBe(true)
    // At the limit a message goes out; the server applies the (empty) update and stays connected.
    expect(() => t.send('relay', step2)).not.toThrow()
    // Sync step 1 draws the server's step 2, exactly at the limit, so it is accepted.
    t.send('relay', encodeSyncStep1(empty))
    await until(() => received.some((m) => m[0] === 0 && m[1] === 1), 'the server to answer', { on: signalled(signal) })
    expect(errors).toEqual([])
    expect(t.state).toBe('connected')
  })

  it('closes and reconnects when the server sends a message over maxMessageBytes', async () => {
    const s = await server()
    const signal = new Signal()
    const errors: Error[] = []
    const id = room('large-in')
    // Fill the server's document so its sync step 2 is big.
    const big = new Y.Doc()
    big.getMap('m').set('blob', 'x'.repeat(1000))
    const seeder = newReplicator(big)
    seeder.on('synced', signal.notify)
    cleanups.push(() => seeder.stop())
    const seed = transport(signal, { url: syncUrl(s.base, id) })
    await seeder.attach(seed.t)
    await until(() => seeder.isSynced('relay'), 'the seed to be synced', { on: signalled(signal) })
    const { t, statuses } = transport(signal, {
      url: syncUrl(s.base, id),
      maxMessageBytes: 500,
      random: () => 0.1,
      onError: (e) => {
        errors.push(e)
        signal.notify()
      },
    })
    // The replicator sends sync step 1 on every connect, which draws the server's big step 2.
    const replicator = newReplicator()
    cleanups.push(() => replicator.stop())
    await replicator.attach(t)
    await until(() => errors.filter((e) => isChorusError(e, 'too_large')).length >= 2, 'the big message to be refused twice', { on: signalled(signal) })
    expect(statuses.slice(0, 4)).toEqual(['connecting', 'connected', 'disconnected', 'connecting'])
    expect(t.attempts).toBeGreaterThanOrEqual(2)
  })
})

describe('backoff and URLs', () => {
  it('backoffDelay is full jitter: random × min(cap, base·2^attempt)', () => {
    const values = [0, 0.5, 0.25, 0.999]
    for (const r of values) {
      for (let attempt = 0; attempt < 12; attempt++) {
        expect(backoffDelay(attempt, () => r)).toBe(r * Math.min(10_000, 250 * 2 ** attempt))
      }
    }
    expect([0, 1, 2, 3, 4, 5, 6, 40, 2000].map((n) => backoffDelay(n, () => 0.5))).toEqual([
      125, 250, 500, 1000, 2000, 4000, 5000, 5000, 5000,
    ])
    expect(backoffDelay(3, () => 1, 100, 500)).toBe(500)
  })

  it('syncUrl builds the relay endpoint with the space as one encoded path segment', () => {
    expect(syncUrl('ws://127.0.0.1:8550', 'demo')).toBe('ws://127.0.0.1:8550/sync/demo')
    expect(syncUrl('ws://127.0.0.1:8550/', 'a b#ai-only')).toBe('ws://127.0.0.1:8550/sync/a%20b%23ai-only')
    expect(syncUrl('https://relay.example/chorus/', 'x/y?')).toBe('wss://relay.example/chorus/sync/x%2Fy%3F')
    expect(syncUrl('http://localhost:8550', 'demo')).toBe('ws://localhost:8550/sync/demo')
    expect(() => new WebSocketTransport({ url: 'http://127.0.0.1:1/sync/x' })).toThrow()
  })
})
