/**
 * The relay's store: what a client wrote survives a relay restart on the same data folder, and an idle space is
 * unloaded and loads again, with its content, on the next connection.
 */
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { MemoryStore } from '@chorus/sync'
import { Signal } from '@chorus/sync/testing'
import { SqliteStore } from '@chorus/sync/sqlite'
import { CloseCode, SpaceRegistry, STORE_FILE } from '@chorus/relay'
import { closed, fixturePerTest, health, opened, synced } from '../support/relay.ts'
import { signalled, until, updates } from '../support/wait.ts'

const f = fixturePerTest()

describe('relay durability', () => {
  it('content written through a provider is served by a new relay on the same data folder', async () => {
    const first = await f.startRelay()
    const writer = f.provider(first.url, 'team')
    const witness = f.provider(first.url, 'team')
    await Promise.all([synced(writer), synced(witness)])
    writer.doc.getText('notes').insert(0, 'kept across restarts')
    writer.doc.getMap('state').set('build', 'green')
    // Updates are stored before they are fanned out: once the witness has them, they are on disk.
    await until(() => witness.doc.getMap('state').get('build') === 'green', 'the witness has the write', { on: updates(witness.doc) })
    await first.relay.stop() // with both providers still connected
    writer.destroy()
    witness.destroy()
    expect(existsSync(join(f.dir, STORE_FILE))).toBe(true)

    const second = await f.startRelay()
    const reader = f.provider(second.url, 'team', new Y.Doc())
    await synced(reader)
    await until(() => reader.doc.getMap('state').get('build') === 'green', 'the fresh provider has the map entry', { on: updates(reader.doc) })
    expect(reader.doc.getText('notes').toJSON()).toBe('kept across restarts')
  })

  it('unloads a space idleMs after its last client left and loads it again with its content', async () => {
    const { url } = await f.startRelay({ idleMs: 50 })
    const a = f.provider(url, 'team')
    await synced(a)
    a.doc.getMap('state').set('k', 'v')
    const b = f.provider(url, 'team')
    await synced(b)
    await until(() => b.doc.getMap('state').get('k') === 'v', 'b has the write', { on: updates(b.doc) })
    expect(await health(url)).toMatchObject({ spaces: 1, connections: 2 })

    a.destroy()
    b.destroy()
    await until(async () => (await health(url)).spaces === 0, 'the space is unloaded')
    expect((await health(url)).connections).toBe(0)

    const c = f.provider(url, 'team')
    await synced(c)
    await until(() => c.doc.getMap('state').get('k') === 'v', 'c has the write after the reload', { on: updates(c.doc) })
    expect(await health(url)).toMatchObject({ spaces: 1, connections: 1 })
  })

  it('a space with a connection is never unloaded, however small idleMs is', async () => {
    const { url } = await f.startRelay({ idleMs: 0 })
    const a = f.provider(url, 'stay')
    const b = f.provider(url, 'stay')
    await Promise.all([synced(a), synced(b)])
    b.destroy()
    await until(async () => (await health(url)).connections === 1, 'b has left')
    a.doc.getMap('state').set('still', 'here')
    const c = f.provider(url, 'stay')
    await synced(c)
    await until(() => c.doc.getMap('state').get('still') === 'here', 'c sees a’s write', { on: updates(c.doc) })
    expect((await health(url)).spaces).toBe(1)
  })
})

/** A MemoryStore whose appends fail while `failing` is set, like a full disk; `appended` wakes on each that works. */
class FlakyStore extends MemoryStore {
  failing = false
  readonly appended = new Signal()
  override async append(space: string, update: Uint8Array): Promise<number> {
    if (this.failing) throw new Error('disk full')
    const seq = await super.append(space, update)
    this.appended.notify()
    return seq
  }
}

describe('relay storage failures', () => {
  it('closes a space whose write could not be stored (1011); clients resync it once the store works', async () => {
    const store = new FlakyStore()
    const { url } = await f.startRelay({ store })
    const writer = f.provider(url, 'team')
    await synced(writer)
    const observer = f.raw(url, '/sync/team')
    await opened(observer)
    const observerClosed = closed(observer)

    store.failing = true
    writer.doc.getMap('state').set('k', 'written while the disk was full')
    expect((await observerClosed).code).toBe(CloseCode.internalError)
    store.failing = false

    // The provider reconnects by itself; the reloaded space lacks the write, so sync step 2 brings it back.
    await until(async () => {
      const doc = new Y.Doc()
      for (const update of (await store.load('team')).updates) Y.applyUpdate(doc, update)
      return doc.getMap('state').get('k') === 'written while the disk was full'
    }, 'the write is in the store', { on: signalled(store.appended) })
  })
})

describe('SpaceRegistry', () => {
  it('loads each space once for concurrent acquirers and refuses bad names', async () => {
    const store = new MemoryStore()
    const registry = new SpaceRegistry({ store, idleMs: 10 })
    const [x, y] = await Promise.all([registry.acquire('team'), registry.acquire('team')])
    expect(x).toBe(y)
    expect(registry.loadedCount).toBe(1)
    for (const bad of ['', 'a b', 'a/b', 'x'.repeat(129), 'é', '../etc']) {
      await expect(registry.acquire(bad)).rejects.toMatchObject({ code: 'invalid_input' })
    }
    await expect(registry.acquire('x'.repeat(128))).resolves.toBeDefined()
    registry.release(x)
    registry.release(y)
    await registry.close()
    await expect(registry.acquire('team')).rejects.toMatchObject({ code: 'closed' })
  })

  it('waits for an unloading space to finish flushing before loading it again', async () => {
    const dir = f.dir
    const store = new SqliteStore(join(dir, 'r.sqlite'))
    const registry = new SpaceRegistry({ store, idleMs: 0 })
    const first = await registry.acquire('team')
    first.doc.getMap('state').set('n', 1)
    registry.release(first)
    await until(() => !registry.isLoaded('team'), 'unloaded')
    const second = await registry.acquire('team')
    expect(second).not.toBe(first)
    expect(second.doc.getMap('state').get('n')).toBe(1)
    registry.release(second)
    await registry.close()
    await store.close()
  })
})
