/**
 * Test helpers for the relay: relays on 127.0.0.1 port 0 with a temporary data folder, stock y-websocket
 * providers, raw `ws` clients, and `until`, which waits for a condition with a deadline instead of sleeping.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { WebSocket as WsClient, type ClientOptions } from 'ws'
import * as Y from 'yjs'
import * as lib0prng from 'lib0/prng'
import { WebsocketProvider } from 'y-websocket'
import { Relay, silentLogger, type RelayHealth, type RelayOptions } from '@chorus/relay'
import { isChorusError } from '@chorus/sync'

/** Polls `condition` every few milliseconds until it holds; fails with `what` after `timeoutMs`. */
export async function until(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await condition()) return
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

/** The ChorusError code `p` rejects with, or 'ok' when it resolves (any other error fails the test). */
export async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p
    return 'ok'
  } catch (e) {
    if (isChorusError(e)) return e.code
    throw e
  }
}

/** Resolves with the first `event` emitted by `emitter`, or fails after `timeoutMs`. */
export function nextEvent<T extends unknown[]>(
  emitter: { once(event: string, f: (...args: T) => void): unknown },
  event: string,
  timeoutMs = 5_000,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${event}`)), timeoutMs)
    emitter.once(event, (...args: T) => {
      clearTimeout(timer)
      resolve(args)
    })
  })
}

export interface Fixture {
  dir: string
  startRelay(options?: RelayOptions): Promise<{ relay: Relay; url: string }>
  provider(url: string, space: string, doc?: Y.Doc, params?: Record<string, string>): WebsocketProvider
  raw(url: string, path: string, options?: ClientOptions): WsClient
  teardown(): Promise<void>
}

export function fixture(): Fixture {
  const dir = mkdtempSync(join(tmpdir(), 'chorus-relay-'))
  const relays: Relay[] = []
  const providers: WebsocketProvider[] = []
  const raws: WsClient[] = []
  return {
    dir,
    async startRelay(options = {}) {
      const relay = new Relay({ port: 0, dataDir: dir, logger: silentLogger, p2p: { listen: ['/ip4/127.0.0.1/tcp/0'] }, ...options })
      relays.push(relay)
      const { url } = await relay.start()
      return { relay, url }
    },
    provider(url, space, doc = new Y.Doc(), params = {}) {
      // disableBc: providers in one process would otherwise sync over BroadcastChannel, bypassing the relay.
      const p = new WebsocketProvider(`${wsUrl(url)}/sync`, space, doc, { disableBc: true, params })
      providers.push(p)
      return p
    },
    raw(url, path, options = {}) {
      const ws = new WsClient(`${wsUrl(url)}${path}`, options)
      ws.on('error', () => undefined)
      raws.push(ws)
      return ws
    },
    async teardown() {
      for (const p of providers.splice(0)) {
        p.destroy()
        p.doc.destroy() // and with it the provider's awareness, whose timer would outlive the test
      }
      for (const ws of raws.splice(0)) ws.terminate()
      for (const relay of relays.splice(0)) await relay.stop()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

export const wsUrl = (url: string): string => url.replace(/^http/, 'ws')

export function synced(provider: WebsocketProvider): Promise<void> {
  if (provider.synced) return Promise.resolve()
  return nextEvent<[boolean]>(provider, 'sync').then(() => undefined)
}

export async function health(url: string): Promise<RelayHealth> {
  const res = await fetch(`${url}/health`)
  return (await res.json()) as RelayHealth
}

/** Waits for the socket to open. */
export async function opened(ws: WsClient): Promise<void> {
  if (ws.readyState === ws.OPEN) return
  await nextEvent(ws, 'open')
}

/** The close code and reason of `ws`. */
export async function closed(ws: WsClient, timeoutMs = 5_000): Promise<{ code: number; reason: string }> {
  if (ws.readyState === ws.CLOSED) throw new Error('already closed')
  const [code, reason] = await nextEvent<[number, Buffer]>(ws, 'close', timeoutMs)
  return { code, reason: reason.toString() }
}

/** A seeded random source in [0, 1) (lib0's PRNG): the same seed gives the same run, so a failure can be replayed. */
export function prng(seed: number): () => number {
  const gen = lib0prng.create(seed)
  return () => lib0prng.real53(gen)
}
