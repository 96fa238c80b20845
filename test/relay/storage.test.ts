/**
 * Where the relay keeps spaces and leases: one spec (`--store`, `RelayOptions.storage`), read and opened by
 * relay/src/storage/storage.ts. The default is SQLite in the data folder; `sqlite:PATH` puts both files elsewhere.
 */
import { existsSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { ManualClock, MemoryStore } from '@chorus/sync'
import { LEASE_LEDGER_FILE, openStorage, parseStorageSpec, RELAY_KEY_FILE, STORE_FILE } from '@chorus/relay'
import { codeOf } from '../support/errors.ts'
import { fixture, type Fixture } from '../support/relay.ts'

let f: Fixture
beforeEach(() => {
  f = fixture()
})
afterEach(async () => {
  await f.teardown()
})

const request = (holder: string) => ({ space: 'team', key: 'task:1', holder, duration: 1_000 })

describe('storage spec', () => {
  it('sqlite:PATH names a folder; anything else is refused naming the accepted form', () => {
    expect(parseStorageSpec('sqlite:.data/relay')).toEqual({ engine: 'sqlite', dir: '.data/relay' })
    expect(parseStorageSpec('sqlite:/var/lib/chorus')).toEqual({ engine: 'sqlite', dir: '/var/lib/chorus' })
    for (const bad of ['postgres://chorus:secret@db/chorus', 'relay-data', 'sqlite:', 'sqlite: ']) {
      expect(() => parseStorageSpec(bad), bad).toThrow(/expected sqlite:PATH \(a folder\)/)
      expect(() => parseStorageSpec(bad), bad).not.toThrow(/secret/)
    }
  })

  it('openStorage opens the store and the ledger in the folder, or uses a store handed in without closing it', async () => {
    const dir = join(f.dir, 'elsewhere')
    const storage = await openStorage(`sqlite:${dir}`, { clock: new ManualClock() })
    await storage.store.append('team', Y.encodeStateAsUpdate(new Y.Doc()))
    const { grant } = await storage.ledger.acquire(request('alice'), (terms) => ({ ...terms, signature: 'test' }))
    await storage.close()
    expect(readdirSync(dir).filter((name) => name.endsWith('.sqlite')).sort()).toEqual([STORE_FILE, LEASE_LEDGER_FILE].sort())
    const again = await openStorage(`sqlite:${dir}`, { clock: new ManualClock() })
    expect(await again.ledger.holder('team', 'task:1')).toMatchObject({ grant })
    expect((await again.store.load('team')).updates).toHaveLength(1)
    await again.close()

    const store = new MemoryStore()
    const given = await openStorage(`sqlite:${dir}`, { clock: new ManualClock(), store })
    expect(given.store).toBe(store)
    await given.close()
    await store.append('team', new Uint8Array([0, 0])) // still open
    expect((await store.load('team')).lastSeq).toBe(1)
  })
})

describe('the relay on a storage spec', () => {
  it('keeps its key in the data folder and its spaces and leases where the spec says', async () => {
    const clock = new ManualClock()
    const elsewhere = join(f.dir, 'storage')
    const first = await f.startRelay({ clock, storage: `sqlite:${elsewhere}` })
    const grant = await first.relay.leases.acquire(request('alice'))
    await first.relay.stop()
    expect(existsSync(join(f.dir, RELAY_KEY_FILE))).toBe(true)
    expect(existsSync(join(elsewhere, STORE_FILE)) && existsSync(join(elsewhere, LEASE_LEDGER_FILE))).toBe(true)
    expect(existsSync(join(f.dir, LEASE_LEDGER_FILE)) || existsSync(join(f.dir, STORE_FILE))).toBe(false)

    // The same spec finds the grant again; the data folder's default storage is another, empty one.
    const second = await f.startRelay({ clock, storage: `sqlite:${elsewhere}` })
    expect(await second.relay.leases.holder('team', 'task:1')).toEqual(grant)
    await second.relay.stop()
    const third = await f.startRelay({ clock })
    expect(await third.relay.leases.holder('team', 'task:1')).toBeUndefined()
    expect(existsSync(join(f.dir, LEASE_LEDGER_FILE))).toBe(true)
  })

  it('refuses to start on a spec it cannot read', async () => {
    expect(await codeOf(f.startRelay({ storage: 'postgres://db/chorus' }))).toBe('invalid_input')
    expect(await codeOf(f.startRelay({ storage: 'sqlite:' }))).toBe('invalid_input')
  })
})
