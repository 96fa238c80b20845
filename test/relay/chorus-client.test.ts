/** Chorus replicas (Space + WebSocketTransport) sync through the relay, restricted-channel documents included. */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { connectSpace, Space, syncUrl, WebSocketTransport, type SpaceConnection } from '@chorus/sync'
import { Relay, silentLogger } from '@chorus/relay'

const dir = mkdtempSync(join(tmpdir(), 'chorus-relay-client-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** Resolves once `check` holds, re-checking on every document update; fails after `ms`. */
const until = (space: Space, check: () => boolean, what: string, ms = 10_000): Promise<void> =>
  new Promise((resolve, reject) => {
    const docs = space.documents.map((d) => d.doc)
    const done = (): void => {
      clearTimeout(timer)
      for (const d of docs) d.off('update', onUpdate)
    }
    const onUpdate = (): void => {
      if (check()) {
        done()
        resolve()
      }
    }
    const timer = setTimeout(() => {
      done()
      reject(new Error(`timed out waiting for ${what}`))
    }, ms)
    for (const d of docs) d.on('update', onUpdate)
    onUpdate()
  })

describe('Chorus clients through the relay', () => {
  it('two spaces converge over WebSocketTransport, main and ai-only documents alike', async () => {
    const relay = new Relay({ port: 0, dataDir: dir, logger: silentLogger })
    const { url } = await relay.start()
    const open = async (): Promise<{ space: Space; connection: SpaceConnection }> => {
      const space = new Space({ id: 'crew' })
      // An open relay serves `crew#ai-only` only to a replica acting for an ai participant.
      const connection = await connectSpace(space, (d) => new WebSocketTransport({ url: syncUrl(url, d.name, { participant: 'ada' }), backoffBaseMs: 20 }))
      return { space, connection }
    }
    const a = await open()
    const b = await open()
    // Until ada's join reaches the relay, the ai-only documents are refused with 1008 and retried.
    a.space.join({ id: 'ada', name: 'Ada', kind: 'ai' })
    a.space.messages.send({ from: 'ada', content: 'for machines only', channel: 'ai-only' })
    a.space.messages.send({ from: 'ada', content: 'hello all' })
    await until(b.space, () => b.space.messages.all().length === 2, 'both messages on b')
    expect(b.space.messages.recent({ channel: 'ai-only' }).map((m) => m.content)).toEqual(['for machines only'])
    expect(JSON.stringify(b.space.snapshot())).toBe(JSON.stringify(a.space.snapshot()))
    for (const x of [a, b]) {
      await x.connection.stop()
      x.space.destroy()
    }
    await relay.stop()
  })
})
