/**
 * The lease ledgers: the acceptance suite (leases/ledger.ts's contract) on memory and on SQLite, what only the
 * SQLite ledger does (one commit per turn, a failed commit undone and reported as lease_unavailable), and the
 * relay's `leases` mirror put right when a space loads.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createGrantSigner, generateSecretKey, ManualClock, MemoryLeaseLedger, RelayLeaseClient, type LeaseLedger, type RecordedGrant, type SignGrant } from '@chorus/sync'
import { runLeaseLedgerTests } from '@chorus/sync/testing/suites'
import { LEASE_LEDGER_FILE, SqliteLeaseLedger } from '@chorus/relay'
import { codeOf } from '../support/errors.ts'
import { fixture, synced, type Fixture } from '../support/relay.ts'
import { until, updates } from '../support/wait.ts'

runLeaseLedgerTests('MemoryLeaseLedger', (clock) => Promise.resolve({ ledger: new MemoryLeaseLedger({ clock }), cleanup: () => Promise.resolve() }))

runLeaseLedgerTests('SqliteLeaseLedger', (clock) => {
  const dir = mkdtempSync(join(tmpdir(), 'chorus-ledger-'))
  const path = join(dir, LEASE_LEDGER_FILE)
  const opened: LeaseLedger[] = [new SqliteLeaseLedger(path, { clock })]
  return Promise.resolve({
    ledger: opened[0] as LeaseLedger,
    reopen: () => {
      const ledger = new SqliteLeaseLedger(path, { clock })
      opened.push(ledger)
      return Promise.resolve(ledger)
    },
    cleanup: async () => {
      for (const ledger of opened) await ledger.close()
      rmSync(dir, { recursive: true, force: true })
    },
  })
})

runLeaseLedgerTests("SqliteLeaseLedger(':memory:')", (clock) => {
  const ledger = new SqliteLeaseLedger(':memory:', { clock })
  return Promise.resolve({ ledger, cleanup: () => ledger.close() })
})

const SPACE = 'team'
const signer = createGrantSigner(generateSecretKey())
const sign: SignGrant = (terms) => signer.sign(terms)
const request = (key: string, holder: string, duration = 1_000) => ({ space: SPACE, key, holder, duration })

/** Makes every SQLite COMMIT in this process fail, as a full disk would, until the mocks are restored. */
function failCommits(): void {
  const exec = Object.getOwnPropertyDescriptor(DatabaseSync.prototype, 'exec')?.value as (this: DatabaseSync, sql: string) => void
  vi.spyOn(DatabaseSync.prototype, 'exec').mockImplementation(function (this: DatabaseSync, sql: string) {
    if (sql === 'COMMIT') throw new Error('disk I/O error')
    exec.call(this, sql)
  })
}

describe('SqliteLeaseLedger on disk', () => {
  let dir: string
  let clock: ManualClock
  let ledger: SqliteLeaseLedger
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'chorus-ledger-'))
    clock = new ManualClock()
    ledger = new SqliteLeaseLedger(join(dir, LEASE_LEDGER_FILE), { clock })
  })
  afterEach(async () => {
    vi.restoreAllMocks()
    await ledger.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it('the steps of one turn share one commit, and each resolves after it, in the order they were asked', async () => {
    const exec = vi.spyOn(DatabaseSync.prototype, 'exec')
    const commits = (): number => exec.mock.calls.filter(([sql]) => sql === 'COMMIT').length
    const reader = new DatabaseSync(ledger.path, { readOnly: true })
    try {
      const onDisk = (key: string): boolean => reader.prepare('SELECT 1 FROM live WHERE space = ? AND key = ?').get(SPACE, key) !== undefined
      const keys = Array.from({ length: 100 }, (_, i) => `task:${i}`)
      const answered: Array<{ step: number; onDisk: boolean }> = []
      const steps = [
        ...keys.map((key, i) => ledger.acquire(request(key, 'alice'), sign).then(() => answered.push({ step: i, onDisk: onDisk(key) }))),
        // A refusal in the same turn waits for the same commit, so it is not answered before the grants.
        ledger.acquire(request('task:0', 'bob'), sign).catch(() => answered.push({ step: keys.length, onDisk: true })),
      ]
      expect(commits()).toBe(0)
      await Promise.all(steps)
      expect(commits()).toBe(1)
      expect(answered).toEqual([...keys, 'refused'].map((_, step) => ({ step, onDisk: true })))
    } finally {
      reader.close()
    }
  })

  it('a commit that fails undoes every step of its turn: they reject, and the ledger is as it was', async () => {
    const kept = await ledger.acquire(request('task:kept', 'alice', 5_000), sign)
    failCommits()
    const failed = await Promise.allSettled([ledger.acquire(request('task:new', 'bob'), sign), ledger.release(kept.grant)])
    vi.restoreAllMocks()
    expect(failed.map((o) => o.status)).toEqual(['rejected', 'rejected'])
    expect(await ledger.holder(SPACE, 'task:kept')).toEqual(kept)
    expect(await ledger.holder(SPACE, 'task:new')).toBeUndefined()
    const next = await ledger.acquire(request('task:new', 'carol'), sign)
    const reopened = new SqliteLeaseLedger(ledger.path, { clock })
    try {
      expect(await reopened.holder(SPACE, 'task:kept')).toEqual(kept)
      expect(await reopened.holder(SPACE, 'task:new')).toEqual(next)
    } finally {
      await reopened.close()
    }
  })
})

describe('the relay and its ledger', () => {
  let f: Fixture
  beforeEach(() => {
    f = fixture()
  })
  afterEach(async () => {
    vi.restoreAllMocks()
    await f.teardown()
  })

  it('a ledger that cannot commit answers lease_unavailable over the WebSocket, REST and in-process, and grants nothing', async () => {
    const { relay, url } = await f.startRelay({ clock: new ManualClock() })
    const client = new RelayLeaseClient({ relay: url })
    try {
      await client.publicKey()
      failCommits()
      expect(await codeOf(client.acquire(request('task:ws', 'alice')))).toBe('lease_unavailable')
      const rest = await fetch(`${url}/spaces/${SPACE}/leases/acquire`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ key: 'task:rest', holder: 'alice', duration: 1_000 }) })
      expect({ status: rest.status, body: (await rest.json()) as unknown }).toMatchObject({ status: 503, body: { error: 'lease_unavailable' } })
      expect(await codeOf(relay.leases.acquire(request('task:direct', 'alice')))).toBe('lease_unavailable')
      vi.restoreAllMocks()
      expect(await relay.leases.live(SPACE)).toEqual([])
      expect((await client.acquire(request('task:ws', 'alice'))).holder).toBe('alice')
    } finally {
      client.close()
    }
  })

  it('a space that loads gets its leases mirror put right: grants that ended are removed, live ones written', async () => {
    const clock = new ManualClock()
    const first = await f.startRelay({ clock })
    const before = f.provider(first.url, SPACE)
    await synced(before)
    const mirror = (doc: typeof before.doc): string[] => [...doc.getMap<RecordedGrant>('leases').keys()].sort()
    await first.relay.leases.acquire(request('task:short', 'alice', 1_000))
    const long = await first.relay.leases.acquire(request('task:long', 'bob', 10_000))
    await until(() => mirror(before.doc).join() === 'task:long,task:short', 'the mirror holds both grants', { on: updates(before.doc) })
    before.destroy()
    await first.relay.stop()

    clock.advance(1_000) // task:short runs out while the relay is down
    const second = await f.startRelay({ clock })
    const added = await second.relay.leases.acquire(request('task:added', 'carol', 10_000)) // the space is not loaded
    const after = f.provider(second.url, SPACE)
    await synced(after)
    await until(() => mirror(after.doc).join() === 'task:added,task:long', 'the mirror holds the live grants only', { on: updates(after.doc) })
    const recorded = after.doc.getMap<RecordedGrant>('leases')
    expect(recorded.get('task:long')).toMatchObject({ token: long.token, holder: 'bob' })
    expect(recorded.get('task:added')).toMatchObject({ token: added.token, holder: 'carol', at: clock.now() })
  })
})
