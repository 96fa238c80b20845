/**
 * The acceptance suite every `LeaseLedger` passes (its contract: leases/ledger.ts). Run it from a vitest file:
 *
 * ```ts
 * runLeaseLedgerTests('MemoryLeaseLedger', (clock) => Promise.resolve({ ledger: new MemoryLeaseLedger({ clock }), cleanup: async () => {} }))
 * ```
 *
 * `open` gives a fresh, empty ledger per test on the manual clock it is handed. `reopen`, when given, opens the
 * same data again on that clock (durable ledgers); the suite calls it both after closing `ledger` and while
 * `ledger` is still open (as after a crash). `cleanup` closes whatever is still open and deletes the data.
 */
import { describe, expect, it } from 'vitest'
import { ManualClock } from '../clock.ts'
import { isChorusError } from '../errors.ts'
import { createGrantSigner, createGrantVerifier, generateSecretKey } from '../leases/grants.ts'
import type { LeaseLedger, LedgerAcquire, LiveLease, SignGrant } from '../leases/ledger.ts'
import type { LeaseGrant } from '../schema.ts'

export interface LeaseLedgerHarness {
  ledger: LeaseLedger
  reopen?: () => Promise<LeaseLedger>
  cleanup: () => Promise<void>
}

const SPACE = 'team'

const request = (key: string, holder: string, duration = 1_000, space = SPACE): LedgerAcquire => ({ space, key, holder, duration })

/** What an operation was refused with (its code and details), or `undefined` when it was not refused. */
async function refusal(operation: Promise<unknown>): Promise<{ code: string; details: Record<string, unknown> } | undefined> {
  try {
    await operation
    return undefined
  } catch (e) {
    if (!isChorusError(e)) throw e
    return { code: e.code, details: { ...e.details } }
  }
}

const byKey = (leases: LiveLease[]): LiveLease[] =>
  [...leases].sort((a, b) => (a.grant.space + a.grant.key < b.grant.space + b.grant.key ? -1 : 1))

export function runLeaseLedgerTests(name: string, open: (clock: ManualClock) => Promise<LeaseLedgerHarness>): void {
  const signer = createGrantSigner(generateSecretKey())
  const sign: SignGrant = (terms) => signer.sign(terms)
  const verify = createGrantVerifier(signer.publicKey)

  const withLedger = (fn: (h: LeaseLedgerHarness, clock: ManualClock) => Promise<void>) => async (): Promise<void> => {
    const clock = new ManualClock()
    const harness = await open(clock)
    try {
      await fn(harness, clock)
    } finally {
      await harness.cleanup()
    }
  }

  describe(`LeaseLedger acceptance: ${name}`, () => {
    it(
      'L1: grants a free key with a signed grant for the asked duration, and refuses another holder while it is live',
      withLedger(async ({ ledger }, clock) => {
        const { grant, expiresAt } = await ledger.acquire(request('task:1', 'alice'), sign)
        expect(grant).toMatchObject({ space: SPACE, key: 'task:1', holder: 'alice', duration: 1_000 })
        expect(grant.token).toBeGreaterThanOrEqual(1)
        expect(verify(grant)).toBe(true)
        expect(expiresAt).toBe(clock.now() + 1_000)
        clock.advance(400)
        expect(await refusal(ledger.acquire(request('task:1', 'bob'), sign))).toEqual({
          code: 'locked',
          details: { key: 'task:1', holder: 'alice', remaining: 600 },
        })
        expect(await ledger.holder(SPACE, 'task:1')).toEqual({ grant, expiresAt })
        expect(await ledger.live(SPACE)).toEqual([{ grant, expiresAt }])

        // The same holder asking again gets a new token, which replaces the first grant.
        const again = await ledger.acquire(request('task:1', 'alice', 2_000), sign)
        expect(again.grant.token).toBeGreaterThan(grant.token)
        expect(again.expired).toBeUndefined()
        expect(await ledger.live(SPACE)).toEqual([{ grant: again.grant, expiresAt: clock.now() + 2_000 }])

        // A key is per space: the same key elsewhere is another lease.
        const elsewhere = await ledger.acquire(request('task:1', 'bob', 1_000, 'other'), sign)
        expect(await ledger.live(SPACE)).toEqual([{ grant: again.grant, expiresAt: again.expiresAt }])
        expect(await ledger.live('other')).toEqual([{ grant: elsewhere.grant, expiresAt: elsewhere.expiresAt }])
        expect(byKey(await ledger.live())).toEqual(byKey([again, elsewhere].map(({ grant: g, expiresAt: at }) => ({ grant: g, expiresAt: at }))))
        expect(await ledger.holder(SPACE, 'task:2')).toBeUndefined()
      }),
    )

    it(
      'L1: of concurrent acquires of one key by different holders exactly one wins',
      withLedger(async ({ ledger }) => {
        const holders = Array.from({ length: 12 }, (_, i) => `h${i}`)
        const outcomes = await Promise.allSettled(holders.map((h) => ledger.acquire(request('contested', h), sign)))
        const won = outcomes.flatMap((o) => (o.status === 'fulfilled' ? [o.value.grant] : []))
        expect(won).toHaveLength(1)
        const winner = won[0] as LeaseGrant
        for (const o of outcomes) {
          if (o.status === 'rejected') expect(isChorusError(o.reason, 'locked') && o.reason.details.holder === winner.holder, String(o.reason)).toBe(true)
        }
        expect((await ledger.live(SPACE)).map((l) => l.grant)).toEqual([winner])
      }),
    )

    it(
      'many keys at once: each gets its own grant, all are live, and all release',
      withLedger(async ({ ledger }) => {
        // Signed by a stand-in (Ed25519 costs milliseconds a grant): the ledger hands out what `sign` made.
        const sign: SignGrant = (terms) => ({ ...terms, signature: `signed ${terms.key} ${terms.token}` })
        const keys = Array.from({ length: 200 }, (_, i) => `resource:${i}`)
        const granted = await Promise.all(keys.map((key, i) => ledger.acquire(request(key, `h${i % 7}`), sign)))
        expect(granted.map((g) => g.grant.key)).toEqual(keys)
        expect(granted.every((g) => g.grant.signature === `signed ${g.grant.key} ${g.grant.token}`)).toBe(true)
        expect(byKey(await ledger.live(SPACE))).toEqual(byKey(granted.map(({ grant, expiresAt }) => ({ grant, expiresAt }))))
        expect(await Promise.all(granted.map((g) => ledger.release(g.grant)))).toEqual(keys.map(() => true))
        expect(await ledger.live(SPACE)).toEqual([])
        const again = await Promise.all(keys.map((key) => ledger.acquire(request(key, 'z'), sign)))
        again.forEach((g, i) => expect(g.grant.token).toBeGreaterThan((granted[i] as LiveLease).grant.token))
      }),
    )

    it(
      'L2: tokens strictly increase per key across re-acquires, releases, expiry and other holders',
      withLedger(async ({ ledger }, clock) => {
        const tokens: number[] = []
        const take = async (holder: string, duration = 1_000): Promise<LeaseGrant> => {
          const { grant } = await ledger.acquire(request('task:l2', holder, duration), sign)
          tokens.push(grant.token)
          return grant
        }
        await take('alice')
        const second = await take('alice')
        expect(await ledger.release(second)).toBe(true)
        await take('bob', 500)
        clock.advance(500)
        await take('carol') // over a grant that ran out and was not collected
        expect(await ledger.expire()).toEqual([])
        clock.advance(1_000)
        expect((await ledger.expire()).map((g) => g.token)).toEqual([tokens.at(-1)])
        await take('dave')
        await ledger.acquire(request('task:other', 'erin'), sign) // another key's grants in between
        await take('dave')
        for (let i = 1; i < tokens.length; i++) expect(tokens[i]).toBeGreaterThan(tokens[i - 1] as number)
      }),
    )

    it(
      'L4: renew extends only the live grant on an exact key, holder and token match, keeping its token',
      withLedger(async ({ ledger }, clock) => {
        const { grant } = await ledger.acquire(request('task:l4', 'alice'), sign)
        clock.advance(600)
        const renewed = await ledger.renew(grant, 2_000, sign)
        expect(renewed.grant).toMatchObject({ space: SPACE, key: 'task:l4', holder: 'alice', token: grant.token, duration: 2_000 })
        expect(verify(renewed.grant)).toBe(true)
        expect(renewed.expiresAt).toBe(clock.now() + 2_000)
        for (const wrong of [
          { ...renewed.grant, token: renewed.grant.token + 1 },
          { ...renewed.grant, holder: 'bob' },
          { ...renewed.grant, key: 'task:other' },
          { ...renewed.grant, space: 'other' },
        ]) {
          expect(await refusal(ledger.renew(wrong, 1_000, sign)), JSON.stringify(wrong)).toEqual({ code: 'lease_lost', details: { key: wrong.key, token: wrong.token } })
        }
        expect(await ledger.live(SPACE)).toEqual([renewed]) // the refusals changed nothing

        const newer = await ledger.acquire(request('task:l4', 'alice'), sign)
        expect((await refusal(ledger.renew(renewed.grant, 1_000, sign)))?.code).toBe('lease_lost') // an older token
        clock.advance(1_000)
        expect((await refusal(ledger.renew(newer.grant, 1_000, sign)))?.code).toBe('lease_lost') // ran out
        expect(await ledger.live(SPACE)).toEqual([])
      }),
    )

    it(
      'L5: release ends only the live grant, at once',
      withLedger(async ({ ledger }) => {
        const { grant } = await ledger.acquire(request('resource:l5', 'alice', 10_000), sign)
        for (const wrong of [{ ...grant, holder: 'bob' }, { ...grant, token: grant.token + 1 }, { ...grant, key: 'resource:other' }]) {
          expect(await ledger.release(wrong), JSON.stringify(wrong)).toBe(false)
        }
        expect((await ledger.holder(SPACE, 'resource:l5'))?.grant).toEqual(grant)
        expect(await ledger.release(grant)).toBe(true)
        expect(await ledger.holder(SPACE, 'resource:l5')).toBeUndefined()
        expect(await ledger.release(grant)).toBe(false)
        // No clock movement: the next holder gets it at once, and the old grant stays dead.
        const next = await ledger.acquire(request('resource:l5', 'bob'), sign)
        expect(next.grant.token).toBeGreaterThan(grant.token)
        expect(await ledger.release(grant)).toBe(false)
        expect(await ledger.expire()).toEqual([]) // a released grant never expires
      }),
    )

    it(
      'L6: a grant is live until its expiry instant, and expire() ends each due grant exactly once',
      withLedger(async ({ ledger }, clock) => {
        expect(await ledger.nextExpiry()).toBeUndefined()
        const a = await ledger.acquire(request('task:a', 'alice', 1_000), sign)
        const b = await ledger.acquire(request('task:b', 'bob', 2_000), sign)
        expect(await ledger.nextExpiry()).toBeLessThanOrEqual(a.expiresAt)
        expect(await ledger.expire()).toEqual([])
        clock.advance(999)
        expect((await ledger.holder(SPACE, 'task:a'))?.grant).toEqual(a.grant)
        expect(await ledger.expire()).toEqual([])
        clock.advance(1)
        expect(await ledger.holder(SPACE, 'task:a')).toBeUndefined()
        expect((await ledger.live(SPACE)).map((l) => l.grant)).toEqual([b.grant])
        expect((await refusal(ledger.renew(a.grant, 1_000, sign)))?.code).toBe('lease_lost')
        expect(await ledger.release(a.grant)).toBe(false)
        expect(await ledger.expire()).toEqual([a.grant])
        expect(await ledger.expire()).toEqual([])
        expect(await ledger.nextExpiry()).toBeLessThanOrEqual(b.expiresAt)
        clock.advance(1_000)
        expect(await ledger.expire()).toEqual([b.grant])
        expect(await ledger.live()).toEqual([])
        expect(await ledger.nextExpiry()).toBeUndefined()
      }),
    )

    it(
      'L6: an acquire over a grant that ran out ends it and returns it, so it is reported once',
      withLedger(async ({ ledger }, clock) => {
        const first = await ledger.acquire(request('task:l6', 'alice'), sign)
        clock.advance(1_000)
        const taken = await ledger.acquire(request('task:l6', 'bob'), sign)
        expect(taken.expired).toEqual(first.grant)
        expect(taken.grant.token).toBeGreaterThan(first.grant.token)
        expect(await ledger.expire()).toEqual([])
        expect(await ledger.live(SPACE)).toEqual([{ grant: taken.grant, expiresAt: taken.expiresAt }])
      }),
    )

    it(
      'after close, operations reject with closed',
      withLedger(async ({ ledger }) => {
        await ledger.acquire(request('task:c', 'alice'), sign)
        await ledger.close()
        await ledger.close()
        expect((await refusal(ledger.acquire(request('task:d', 'alice'), sign)))?.code).toBe('closed')
        expect((await refusal(ledger.live()))?.code).toBe('closed')
      }),
    )

    it('durable before resolve: a ledger opened on the same data while this one runs sees every step that resolved', async (ctx) => {
      await withLedger(async ({ ledger, reopen }, clock) => {
        if (reopen === undefined) return ctx.skip()
        const held = await ledger.acquire(request('task:kept', 'alice', 5_000), sign)
        const freed = await ledger.acquire(request('task:freed', 'bob'), sign)
        expect(await ledger.release(freed.grant)).toBe(true)
        const renewed = await ledger.renew(held.grant, 8_000, sign)

        const other = await reopen() // as if this process had crashed: nothing more is written by `ledger`
        expect(await other.holder(SPACE, 'task:kept')).toEqual(renewed)
        expect(await other.holder(SPACE, 'task:freed')).toBeUndefined()
        expect((await refusal(other.acquire(request('task:kept', 'carol'), sign)))?.code).toBe('locked')
        expect((await other.acquire(request('task:freed', 'carol', 10_000), sign)).grant.token).toBeGreaterThan(freed.grant.token)
        clock.advance(8_000)
        expect(await other.expire()).toEqual([renewed.grant])
      })()
    })

    it('L1, L2 across close and reopen: live grants are remembered, tokens continue, expiry still ends them', async (ctx) => {
      await withLedger(async ({ ledger, reopen }, clock) => {
        if (reopen === undefined) return ctx.skip()
        const gone = await ledger.acquire(request('task:r', 'alice'), sign)
        expect(await ledger.release(gone.grant)).toBe(true)
        const live = await ledger.acquire(request('task:r', 'bob', 3_000), sign)
        const short = await ledger.acquire(request('task:s', 'carol', 500), sign)
        await ledger.close()

        clock.advance(500) // carol's grant runs out while nothing is open
        const again = await reopen()
        expect(await again.live(SPACE)).toEqual([{ grant: live.grant, expiresAt: live.expiresAt }])
        expect((await refusal(again.acquire(request('task:r', 'dave'), sign)))?.code).toBe('locked')
        expect(await again.expire()).toEqual([short.grant])
        const next = await again.acquire(request('task:s', 'carol'), sign)
        expect(next.grant.token).toBeGreaterThan(short.grant.token)
        clock.advance(2_500)
        const after = await again.acquire(request('task:r', 'dave'), sign)
        expect(after.expired).toEqual(live.grant)
        expect(after.grant.token).toBeGreaterThan(live.grant.token)
        await again.close()

        const third = await reopen()
        expect((await third.acquire(request('task:r', 'dave'), sign)).grant.token).toBeGreaterThan(after.grant.token)
      })()
    })
  })
}
