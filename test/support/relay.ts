/**
 * Relays in the test's own process: on 127.0.0.1 port 0 with a temporary data folder, with stock y-websocket
 * providers and raw `ws` clients to talk to them, all stopped and removed by `teardown()`.
 */
import { beforeEach, onTestFinished } from 'vitest'
import { WebSocket as WsClient, type ClientOptions } from 'ws'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { Relay, silentLogger, type RelayHealth, type RelayOptions } from '@chorus/relay'
import { forwarding } from './forwarding.ts'
import { makeTempDir } from './temp.ts'
import { nextEvent } from './wait.ts'

export interface Fixture {
  dir: string
  startRelay(options?: RelayOptions): Promise<{ relay: Relay; url: string }>
  provider(url: string, space: string, doc?: Y.Doc, params?: Record<string, string>): WebsocketProvider
  raw(url: string, path: string, options?: ClientOptions): WsClient
  teardown(): Promise<void>
}

export function fixture(): Fixture {
  const temp = makeTempDir('chorus-relay-')
  const dir = temp.path
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
      temp.remove()
    },
  }
}

/** A fixture torn down when the running test has finished (after its afterEach hooks). Call it in the test. */
export function fixtureForTest(): Fixture {
  const f = fixture()
  onTestFinished(() => f.teardown())
  return f
}

/**
 * A fresh fixture for each test of the calling file (or `describe`), torn down once the test and all its
 * afterEach hooks have run, so those hooks can still stop what used its relays.
 */
export function fixturePerTest(): Fixture {
  let current: Fixture | undefined
  beforeEach(() => {
    current = fixtureForTest()
  })
  return forwarding(() => {
    if (current === undefined) throw new Error('the relay fixture is there only while a test runs')
    return current
  })
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
export async function closed(ws: WsClient): Promise<{ code: number; reason: string }> {
  if (ws.readyState === ws.CLOSED) throw new Error('already closed')
  const [code, reason] = await nextEvent<[number, Buffer]>(ws, 'close')
  return { code, reason: reason.toString() }
}
