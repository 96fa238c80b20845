/**
 * The stock y-websocket client (`WebsocketProvider`, Node's global WebSocket) against an in-process relay:
 * documents converge, awareness travels (and is echoed to its sender), and departed clients leave no ghosts.
 */
import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import * as decoding from 'lib0/decoding'
import { Awareness } from 'y-protocols/awareness'
import { encodeAwarenessMessage, encodeSyncStep1, messageAwareness } from '@chorus/sync'
import { fixturePerTest, health, opened, synced } from '../support/relay.ts'
import { emits, until, updates } from '../support/wait.ts'

const f = fixturePerTest()

/** Client ids and presence in an awareness message, or null for any other message. */
function awarenessClients(frame: Uint8Array): { client: number; present: boolean }[] | null {
  const decoder = decoding.createDecoder(frame)
  if (decoding.readVarUint(decoder) !== messageAwareness) return null
  const update = decoding.createDecoder(decoding.readVarUint8Array(decoder))
  const out: { client: number; present: boolean }[] = []
  const count = decoding.readVarUint(update)
  for (let i = 0; i < count; i++) {
    const client = decoding.readVarUint(update)
    decoding.readVarUint(update)
    out.push({ client, present: decoding.readVarString(update) !== 'null' })
  }
  return out
}

describe('relay with stock y-websocket providers', () => {
  it('two providers on one space converge through the relay', async () => {
    const { url } = await f.startRelay()
    const a = f.provider(url, 'team')
    const b = f.provider(url, 'team')
    await Promise.all([synced(a), synced(b)])

    a.doc.getText('notes').insert(0, 'hello')
    b.doc.getMap('state').set('build', 'green')
    await until(() => b.doc.getText('notes').toJSON() === 'hello', 'b sees a’s text', { on: updates(b.doc) })
    await until(() => a.doc.getMap('state').get('build') === 'green', 'a sees b’s map entry', { on: updates(a.doc) })

    // Concurrent edits on both sides merge the same way everywhere.
    a.doc.getArray<string>('log').push(['from a'])
    b.doc.getArray<string>('log').push(['from b'])
    await until(() => a.doc.getArray('log').length === 2 && b.doc.getArray('log').length === 2, 'both logs have 2 entries', { on: updates(a.doc, b.doc) })
    expect(a.doc.getArray('log').toJSON()).toEqual(b.doc.getArray('log').toJSON())
    expect(Y.encodeStateVector(a.doc)).toEqual(Y.encodeStateVector(b.doc))
    expect(await health(url)).toEqual({ status: 'ok', spaces: 1, connections: 2 })
  })

  it('a late joiner receives everything written before it connected', async () => {
    const { url } = await f.startRelay()
    const a = f.provider(url, 'team')
    await synced(a)
    for (let i = 0; i < 50; i++) a.doc.getArray<number>('n').push([i])
    const b = f.provider(url, 'team')
    await synced(b)
    await until(() => b.doc.getArray('n').length === 50, 'b has all 50 entries', { on: updates(b.doc) })
  })

  it('keeps spaces apart, including restricted-channel documents like team#ai-only', async () => {
    const { url } = await f.startRelay()
    const team = f.provider(url, 'team')
    await synced(team)
    // An open relay serves team#ai-only to a client naming an ai participant of team (`?participant=`).
    const bot = new Y.Map<unknown>()
    team.doc.getMap('participants').set('bot', bot)
    bot.set('kind', 'ai')
    // The stock client puts the room name into the URL as is, so `#` has to be encoded by the caller.
    const aiOnly = f.provider(url, encodeURIComponent('team#ai-only'), new Y.Doc(), { participant: 'bot' })
    const aiOnly2 = f.provider(url, encodeURIComponent('team#ai-only'), new Y.Doc(), { participant: 'bot' })
    await Promise.all([synced(aiOnly), synced(aiOnly2)])
    aiOnly.doc.getMap('state').set('secret', 1)
    await until(() => aiOnly2.doc.getMap('state').get('secret') === 1, 'the other ai-only replica sees it', { on: updates(aiOnly2.doc) })
    expect(team.doc.getMap('state').has('secret')).toBe(false)
    expect((await health(url)).spaces).toBe(2)
  })

  it('carries awareness both ways, and a provider that leaves disappears from the others', async () => {
    const { url } = await f.startRelay()
    const a = f.provider(url, 'team')
    const b = f.provider(url, 'team')
    await Promise.all([synced(a), synced(b)])
    a.awareness.setLocalStateField('user', { name: 'Ada' })
    b.awareness.setLocalStateField('user', { name: 'Bot' })
    const nameOf = (p: typeof a, client: number): unknown =>
      (p.awareness.getStates().get(client) as { user?: { name?: string } } | undefined)?.user?.name
    await until(() => nameOf(b, a.doc.clientID) === 'Ada', 'b sees Ada', { on: emits(b.awareness, 'update') })
    await until(() => nameOf(a, b.doc.clientID) === 'Bot', 'a sees Bot', { on: emits(a.awareness, 'update') })

    a.destroy()
    await until(() => !b.awareness.getStates().has(a.doc.clientID), 'Ada is gone from b', { on: emits(b.awareness, 'update') })
  })

  it('a provider that reconnects is visible again at once, not after its next 15 s renewal', async () => {
    const { url } = await f.startRelay()
    const a = f.provider(url, 'team')
    const b = f.provider(url, 'team')
    await Promise.all([synced(a), synced(b)])
    a.awareness.setLocalStateField('user', { name: 'Ada' })
    await until(() => b.awareness.getStates().has(a.doc.clientID), 'b sees Ada', { on: emits(b.awareness, 'update') })

    a.disconnect()
    await until(() => !b.awareness.getStates().has(a.doc.clientID), 'Ada is gone from b', { on: emits(b.awareness, 'update') })
    // A renewal is a's own update of its state ('local'); Ada has to be back on b without one.
    let renewals = 0
    a.awareness.on('update', (_changes: unknown, origin: unknown) => void (origin === 'local' && renewals++))
    a.connect()
    await synced(a)
    await until(() => b.awareness.getStates().has(a.doc.clientID), 'Ada is back on b', { on: emits(b.awareness, 'update') })
    expect(renewals).toBe(0)
  })

  it('removes the awareness states of a connection that drops without a goodbye (no ghosts)', async () => {
    const { url } = await f.startRelay()
    const b = f.provider(url, 'team')
    await synced(b)

    const ghostDoc = new Y.Doc()
    const ghost = new Awareness(ghostDoc)
    ghost.setLocalState({ user: { name: 'Ghost' } })
    const raw = f.raw(url, '/sync/team')
    await opened(raw)
    raw.send(encodeSyncStep1(ghostDoc))
    raw.send(encodeAwarenessMessage(ghost, [ghostDoc.clientID]))
    await until(() => b.awareness.getStates().has(ghostDoc.clientID), 'b sees the raw client', { on: emits(b.awareness, 'update') })

    raw.terminate() // no closing handshake, no awareness removal from the client
    await until(() => !b.awareness.getStates().has(ghostDoc.clientID), 'the raw client is gone from b', { on: emits(b.awareness, 'update') })
    await until(async () => (await health(url)).connections === 1, 'the relay counts one connection')
    ghost.destroy()
  })

  it('drops a connection that stops answering pings, and its awareness with it', async () => {
    // Heartbeats 10 times a second: soon enough for a short test, and a pause of a busy machine between a ping and
    // its pong still does not cost the healthy provider its connection.
    const { url } = await f.startRelay({ pingIntervalMs: 100 })
    const b = f.provider(url, 'team')
    await synced(b)
    const doc = new Y.Doc()
    const awareness = new Awareness(doc)
    awareness.setLocalState({ user: { name: 'Silent' } })
    const raw = f.raw(url, '/sync/team', { autoPong: false }) // a half-open peer: nothing comes back
    await opened(raw)
    raw.send(encodeAwarenessMessage(awareness, [doc.clientID]))
    await until(() => b.awareness.getStates().has(doc.clientID), 'b sees the silent client', { on: emits(b.awareness, 'update') })
    await until(() => !b.awareness.getStates().has(doc.clientID), 'the silent client is dropped', { on: emits(b.awareness, 'update') })
    expect((await health(url)).connections).toBe(1)
    awareness.destroy()
  })

  it('echoes an awareness update to its sender too', async () => {
    const { url } = await f.startRelay()
    const doc = new Y.Doc()
    const awareness = new Awareness(doc)
    awareness.setLocalState({ user: { name: 'Echo' } })
    const raw = f.raw(url, '/sync/team')
    const echoed = new Promise<void>((resolve) => {
      raw.on('message', (data: Buffer) => {
        const clients = awarenessClients(new Uint8Array(data))
        if (clients?.some((c) => c.client === doc.clientID && c.present) === true) resolve()
      })
    })
    await opened(raw)
    raw.send(encodeAwarenessMessage(awareness, [doc.clientID]))
    await echoed
    awareness.destroy()
  })
})
