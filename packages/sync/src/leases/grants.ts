import { ed25519 } from '@noble/curves/ed25519.js'
import { fromBase64Url, toBase64Url } from './base64.ts'
import type { LeaseGrant } from '../schema.ts'

/**
 * Signed lease grants (L7). The relay signs (space, key, holder, token, duration) with its Ed25519 key; every
 * replica verifies a grant it reads from the document against the public key in `meta`.
 */
const encoder = new TextEncoder()

/** The exact bytes that are signed: a versioned, unambiguous JSON array. */
export const grantPayload = (g: Omit<LeaseGrant, 'signature'>): Uint8Array =>
  encoder.encode(JSON.stringify(['chorus-lease-v1', g.space, g.key, g.holder, g.token, g.duration]))

export interface GrantSigner {
  readonly publicKey: string
  sign(grant: Omit<LeaseGrant, 'signature'>): LeaseGrant
}

export const generateSecretKey = (): Uint8Array => ed25519.utils.randomSecretKey()

export const createGrantSigner = (secretKey: Uint8Array): GrantSigner => {
  const publicKey = toBase64Url(ed25519.getPublicKey(secretKey))
  return {
    publicKey,
    sign: (grant) => ({ ...grant, signature: toBase64Url(ed25519.sign(grantPayload(grant), secretKey)) }),
  }
}

/** A verifier for one public key, memoizing results since views re-check the same grants often. */
export const createGrantVerifier = (publicKey: string): ((grant: LeaseGrant) => boolean) => {
  const key = fromBase64Url(publicKey)
  const seen = new Map<string, boolean>()
  return (grant) => {
    const memo = `${grant.signature}|${grant.space}|${grant.key}|${grant.holder}|${grant.token}|${grant.duration}`
    let ok = seen.get(memo)
    if (ok === undefined) {
      try {
        ok = ed25519.verify(fromBase64Url(grant.signature), grantPayload(grant), key)
      } catch {
        ok = false
      }
      if (seen.size > 10_000) seen.clear()
      seen.set(memo, ok)
    }
    return ok
  }
}
