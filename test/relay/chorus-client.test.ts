/** Chorus replicas (Space + WebSocketTransport) sync through the relay, restricted-channel documents included. */
import { describe, expect, it } from 'vitest'
import { connectSpace, Space, syncUrl, WebSocketTransport, type SpaceConnection } from '@chorus/sync'
import { fixtureForTest } from '../support/relay.ts'
import { spaceUpdates, until } from '../support/wait.ts'

describe('Chorus clients through the relay', () => {
  it('two spaces converge over WebSocketTransport, main and ai-only documents alike', async () => {
    const { relay, url } = await fixtureForTest().startRelay()
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
    await until(() => b.space.messages.all().length === 2, 'both messages on b', { on: spaceUpdates(b.space) })
    expect(b.space.messages.recent({ channel: 'ai-only' }).map((m) => m.content)).toEqual(['for machines only'])
    expect(JSON.stringify(b.space.snapshot())).toBe(JSON.stringify(a.space.snapshot()))
    for (const x of [a, b]) {
      await x.connection.stop()
      x.space.destroy()
    }
    await relay.stop()
  })
})
