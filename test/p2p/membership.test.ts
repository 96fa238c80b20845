/**
 * Membership credentials: the relay's, invites chained from them, and everything a verifier must refuse.
 */
import { readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { generateSecretKey, createGrantSigner } from '@chorus/sync'
import {
  documentKey,
  ephemeralPeerKey,
  invite,
  issueCredential,
  loadOrCreatePeerKey,
  MAX_INVITE_DEPTH,
  parseMembership,
  peerKeyFromSeed,
  verifyCredential,
  type Credential,
  type Membership,
} from '@chorus/p2p'
import { tempDir } from '../support/temp.ts'

const relaySecret = generateSecretKey()
const relayKey = createGrantSigner(relaySecret).publicKey
const trusted = new Set([relayKey])
const now = 1_000_000

const relayMembership = (doc: string, peer: string, participant: string, expiresAt: number | null = null): Membership => ({
  credential: issueCredential({ doc, peer, participant, kind: doc.endsWith('#human-only') ? 'human' : 'ai', expiresAt }, relaySecret),
  key: documentKey(relaySecret, doc),
})

describe('membership credentials', () => {
  it('a relay credential verifies for its peer and document only', async () => {
    const alice = await ephemeralPeerKey()
    const bob = await ephemeralPeerKey()
    const { credential } = relayMembership('team', alice.peerId, 'alice')
    expect(verifyCredential(credential, { trusted, doc: 'team', peer: alice.peerId, now })).toEqual({ ok: true, credential })
    const refuse = (input: unknown, over: Partial<{ doc: string; peer: string; now: number; trusted: Set<string> }> = {}): string => {
      const verdict = verifyCredential(input, { trusted, doc: 'team', peer: alice.peerId, now, ...over })
      if (verdict.ok) throw new Error('accepted')
      return verdict.reason
    }
    expect(refuse(credential, { peer: bob.peerId })).toMatch(/another peer/)
    expect(refuse(credential, { doc: 'other' })).toMatch(/for team, not other/)
    expect(refuse(credential, { trusted: new Set([createGrantSigner(generateSecretKey()).publicKey]) })).toMatch(/does not trust/)
    expect(refuse({ ...credential, participant: 'mallory' })).toBe('bad signature')
    expect(refuse({ ...credential, kind: 'human' })).toBe('bad signature')
    expect(refuse({ ...credential, signature: credential.signature.slice(0, -2) + 'AA' })).toBe('bad signature')
    expect(refuse({ ...credential, extra: 1 })).toMatch(/malformed/)
    expect(refuse('not json')).toMatch(/malformed/)
    expect(refuse(null)).toMatch(/malformed/)
    const expiring = relayMembership('team', alice.peerId, 'alice', now + 10).credential
    expect(verifyCredential(expiring, { trusted, doc: 'team', peer: alice.peerId, now }).ok).toBe(true)
    expect(refuse(expiring, { now: now + 10 })).toMatch(/expired/)
  })

  it('restricted documents admit only their kind, at issue and at verification', async () => {
    const p = await ephemeralPeerKey()
    expect(() => issueCredential({ doc: 'team#ai-only', peer: p.peerId, participant: 'h', kind: 'human' }, relaySecret)).toThrow(/only participants of kind ai/)
    const human = issueCredential({ doc: 'team#human-only', peer: p.peerId, participant: 'h', kind: 'human' }, relaySecret)
    expect(verifyCredential(human, { trusted, doc: 'team#human-only', peer: p.peerId, now }).ok).toBe(true)
    expect(verifyCredential(human, { trusted, doc: 'team', peer: p.peerId, now }).ok).toBe(false)
  })

  it('invites chain from the relay, signed by the inviter, within its expiry and depth', async () => {
    const keys = await Promise.all(Array.from({ length: MAX_INVITE_DEPTH + 2 }, () => ephemeralPeerKey()))
    const [first, ...rest] = keys as [(typeof keys)[number], ...typeof keys]
    let member = relayMembership('team', first.peerId, 'p0', now + 1000)
    let signer = first
    const chain: Membership[] = [member]
    for (const [i, key] of rest.slice(0, MAX_INVITE_DEPTH).entries()) {
      member = invite(member, { peer: key.peerId, participant: `p${i + 1}`, kind: 'ai', expiresAt: now + 5000 }, signer.seed)
      signer = key
      chain.push(member)
      expect(member.key).toBe(documentKey(relaySecret, 'team'))
      // Never longer than the inviter's own.
      expect(member.credential.expiresAt).toBe(now + 1000)
      expect(verifyCredential(member.credential, { trusted, doc: 'team', peer: key.peerId, now })).toMatchObject({ ok: true })
    }
    const last = rest[MAX_INVITE_DEPTH] as (typeof keys)[number]
    expect(() => invite(member, { peer: last.peerId, participant: 'too-deep', kind: 'ai' }, signer.seed)).toThrow(/at most/)
    // Signed with someone else's key: refused at once, and a forged one does not verify.
    const second = chain[1] as Membership
    expect(() => invite(second, { peer: last.peerId, participant: 'x', kind: 'ai' }, first.seed)).toThrow(/not the key of the inviting peer/)
    const forged: Credential = { ...second.credential, participant: 'someone-else' }
    const verdict = verifyCredential(forged, { trusted, doc: 'team', peer: forged.peer, now })
    expect(verdict).toMatchObject({ ok: false, reason: 'bad signature' })
    // An expired inviter voids the invites below it.
    expect(verifyCredential(member.credential, { trusted, doc: 'team', peer: member.credential.peer, now: now + 1000 })).toMatchObject({ ok: false })
    // A tampered link inside the chain breaks every credential below it.
    const tampered = { ...member.credential, issuer: { ...(member.credential.issuer as Credential), participant: 'z' } }
    expect(verifyCredential(tampered, { trusted, doc: 'team', peer: member.credential.peer, now })).toMatchObject({ ok: false })
  })

  it('memberships parse from JSON with clear errors', async () => {
    const p = await ephemeralPeerKey()
    const m = relayMembership('team', p.peerId, 'a')
    expect(parseMembership(JSON.parse(JSON.stringify(m)))).toEqual(m)
    expect(() => parseMembership({ credential: m.credential, key: 'short' })).toThrow(/32 bytes/)
    expect(() => parseMembership({})).toThrow(/not a membership/)
  })
})

describe('peer keys', () => {
  it('persist across loads with mode 0600, and a corrupt file is refused, not replaced', async () => {
    const dir = tempDir('chorus-peer-key-')
    const path = join(dir, 'nested', 'peer.key')
    const a = await loadOrCreatePeerKey(path)
    const b = await loadOrCreatePeerKey(path)
    expect(b.peerId).toBe(a.peerId)
    expect(statSync(path).mode & 0o777).toBe(0o600)
    const before = readFileSync(path)
    writeFileSync(path, 'garbage')
    await expect(loadOrCreatePeerKey(path)).rejects.toThrow(/not a libp2p private key/)
    expect(readFileSync(path, 'utf8')).toBe('garbage')
    writeFileSync(path, before)
    expect((await loadOrCreatePeerKey(path)).peerId).toBe(a.peerId)
  })

  it("the relay's peer id carries its signing key", async () => {
    const relayPeer = await peerKeyFromSeed(relaySecret)
    expect(Buffer.from(relayPeer.privateKey.publicKey.raw).toString('base64url')).toBe(relayKey)
  })
})
