/**
 * Who may sync a space with whom. A peer proves it belongs to a space document with a credential: a signed
 * statement "peer P, acting for participant X of kind K, is a member of document D (until T)". The root of
 * trust is the relay's Ed25519 key (the one that signs lease grants, L7): the relay signs credentials for the
 * participants it knows, and a member may invite another peer by signing a credential with its own peer key
 * and attaching its own credential (`by`), up to `MAX_INVITE_DEPTH` links from the relay.
 *
 * A credential is shown, never secret. What members share besides is the document's key (`Membership.key`),
 * handed out with the credential by the relay or by the inviter: it encrypts what goes over gossipsub and names
 * the topics and stream tags, so a peer without it learns nothing of the space.
 */
import { createHmac } from 'node:crypto'
import { ed25519 } from '@noble/curves/ed25519.js'
import { peerIdFromString } from '@libp2p/peer-id'
import { z } from 'zod'
import {
  ChorusError,
  idSchema,
  kindSchema,
  RESTRICTED_CHANNELS,
  type ParticipantKind,
  type RestrictedChannel,
} from '@chorus/sync'

/** Invites from invites from ...: how many member links may follow the relay's own credential. */
export const MAX_INVITE_DEPTH = 4

const DOCUMENT_NAME = /^[A-Za-z0-9._-]{1,120}(#(ai-only|human-only))?$/

export interface Credential {
  readonly v: 1
  /** The document: `<space>`, or `<space>#ai-only` / `<space>#human-only` for a restricted channel. */
  readonly doc: string
  /** The member's libp2p peer id: the connection it shows this credential on must be to that peer. */
  readonly peer: string
  readonly participant: string
  readonly kind: ParticipantKind
  /** Milliseconds since the epoch, or null for no expiry. */
  readonly expiresAt: number | null
  /** The relay key that signed it (base64url Ed25519), or the inviter's credential, whose peer key signed it. */
  readonly issuer: string | Credential
  readonly signature: string
}

const credentialSchema: z.ZodType<Credential> = z.lazy(() =>
  z.strictObject({
    v: z.literal(1),
    doc: z.string().regex(DOCUMENT_NAME, 'doc must be <space> or <space>#ai-only / #human-only'),
    peer: z.string().min(1).max(128),
    participant: idSchema,
    kind: kindSchema,
    expiresAt: z.number().int().nonnegative().nullable(),
    issuer: z.union([z.string().min(1).max(64), credentialSchema]),
    signature: z.string().min(1).max(128),
  }),
)

/** A credential and the document key that goes with it. */
export interface Membership {
  readonly credential: Credential
  /** 32 bytes shared by the document's members (base64url). */
  readonly key: string
}

const membershipSchema = z.strictObject({ credential: credentialSchema, key: z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'key must be 32 bytes, base64url') })

const encoder = new TextEncoder()
const toBase64Url = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64url')
const fromBase64Url = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'base64url'))

/** The signed bytes: every field but the signature, an invite bound to its issuer's own signature. */
const payload = (c: Omit<Credential, 'signature'>): Uint8Array =>
  encoder.encode(
    JSON.stringify([
      'chorus-membership-v1',
      c.doc,
      c.peer,
      c.participant,
      c.kind,
      c.expiresAt,
      typeof c.issuer === 'string' ? c.issuer : c.issuer.signature,
    ]),
  )

/** The kind a restricted document admits, or undefined for a main document. */
const restrictedKind = (doc: string): ParticipantKind | undefined => {
  const hash = doc.indexOf('#')
  return hash < 0 ? undefined : RESTRICTED_CHANNELS[doc.slice(hash + 1) as RestrictedChannel]
}

/** The raw Ed25519 public key inside an Ed25519 peer id. */
const peerPublicKey = (peer: string): Uint8Array => {
  let id
  try {
    id = peerIdFromString(peer)
  } catch {
    throw new ChorusError('invalid_input', `not a peer id: ${peer.slice(0, 64)}`)
  }
  if (id.type !== 'Ed25519') throw new ChorusError('invalid_input', `peer ${peer} does not have an Ed25519 key`)
  return id.publicKey.raw
}

export interface CredentialFields {
  doc: string
  peer: string
  participant: string
  kind: ParticipantKind
  /** Default: no expiry. */
  expiresAt?: number | null
}

const checkFields = (f: CredentialFields, selfIssue = false): void => {
  if (!DOCUMENT_NAME.test(f.doc)) throw new ChorusError('invalid_input', `invalid document name: ${f.doc.slice(0, 130)}`)
  const only = restrictedKind(f.doc)
  if (only !== undefined && f.kind !== only && !selfIssue) throw new ChorusError('forbidden', `${f.doc} admits only participants of kind ${only}`)
  peerPublicKey(f.peer)
}

/** Signed by the key of the very peer it is for: the relay's credential for its own node. */
const selfIssued = (c: Credential): boolean => {
  if (typeof c.issuer !== 'string') return false
  try {
    return Buffer.from(peerPublicKey(c.peer)).toString('base64url') === c.issuer
  } catch {
    return false
  }
}

/** The relay's credential for `fields`, signed with its 32-byte Ed25519 secret key. */
export function issueCredential(fields: CredentialFields, relaySecretKey: Uint8Array): Credential {
  const issuer = toBase64Url(ed25519.getPublicKey(relaySecretKey))
  checkFields(fields, toBase64Url(peerPublicKey(fields.peer)) === issuer)
  const body = { v: 1 as const, ...fields, expiresAt: fields.expiresAt ?? null, issuer }
  return { ...body, signature: toBase64Url(ed25519.sign(payload(body), relaySecretKey)) }
}

/**
 * A member's invite: a credential for the same document, signed with the inviter's peer key (the 32-byte
 * Ed25519 seed of `inviter.credential.peer`). It cannot outlast the inviter's own, and carries the same key.
 */
export function invite(inviter: Membership, fields: Omit<CredentialFields, 'doc'>, peerSecretKey: Uint8Array): Membership {
  const parent = inviter.credential
  const doc = parent.doc
  checkFields({ ...fields, doc })
  if (toBase64Url(ed25519.getPublicKey(peerSecretKey)) !== toBase64Url(peerPublicKey(parent.peer))) {
    throw new ChorusError('invalid_input', 'the signing key is not the key of the inviting peer')
  }
  if (depth(parent) >= MAX_INVITE_DEPTH) throw new ChorusError('forbidden', `invites may be at most ${MAX_INVITE_DEPTH} links deep`)
  const requested = fields.expiresAt ?? null
  const expiresAt = parent.expiresAt === null ? requested : Math.min(requested ?? parent.expiresAt, parent.expiresAt)
  const body = { v: 1 as const, ...fields, doc, expiresAt, issuer: parent }
  return { credential: { ...body, signature: toBase64Url(ed25519.sign(payload(body), peerSecretKey)) }, key: inviter.key }
}

const depth = (c: Credential): number => (typeof c.issuer === 'string' ? 0 : 1 + depth(c.issuer))

export interface VerifyOptions {
  /** Relay keys (base64url) this peer trusts as roots. */
  trusted: ReadonlySet<string>
  /** The document it must be for. */
  doc: string
  /** The peer it must be shown by: the remote end of the authenticated connection. */
  peer: string
  now: number
}

export type Verdict = { ok: true; credential: Credential } | { ok: false; reason: string }

/** Parses untrusted input (e.g. from the wire) and checks it; never throws. */
export function verifyCredential(input: unknown, options: VerifyOptions): Verdict {
  const parsed = credentialSchema.safeParse(input)
  if (!parsed.success) return { ok: false, reason: `malformed credential: ${parsed.error.issues[0]?.message ?? 'invalid'}` }
  const credential = parsed.data
  if (credential.peer !== options.peer) return { ok: false, reason: 'the credential is for another peer' }
  const reason = check(credential, options, 0)
  return reason === undefined ? { ok: true, credential } : { ok: false, reason }
}

function check(c: Credential, options: VerifyOptions, links: number): string | undefined {
  if (c.doc !== options.doc) return `the credential is for ${c.doc}, not ${options.doc}`
  if (c.expiresAt !== null && c.expiresAt <= options.now) return 'the credential has expired'
  const only = restrictedKind(c.doc)
  // The relay's own credential (its peer key is its signing key) admits it to every document it hosts.
  if (only !== undefined && c.kind !== only && !selfIssued(c)) return `${c.doc} admits only participants of kind ${only}`
  let signer: Uint8Array
  if (typeof c.issuer === 'string') {
    if (!options.trusted.has(c.issuer)) return 'the credential is signed by a key this peer does not trust'
    signer = fromBase64Url(c.issuer)
  } else {
    if (links >= MAX_INVITE_DEPTH) return `invites may be at most ${MAX_INVITE_DEPTH} links deep`
    const parent = c.issuer
    if (parent.expiresAt !== null && (c.expiresAt === null || c.expiresAt > parent.expiresAt)) return 'an invite outlasts its inviter'
    const above = check(parent, options, links + 1)
    if (above !== undefined) return `inviter: ${above}`
    try {
      signer = peerPublicKey(parent.peer)
    } catch (e) {
      return (e as Error).message
    }
  }
  try {
    if (!ed25519.verify(fromBase64Url(c.signature), payload(c), signer)) return 'bad signature'
  } catch {
    return 'bad signature'
  }
  return undefined
}

/** Parses a membership (e.g. read from a file or an invite string); throws `invalid_input` with the reason. */
export function parseMembership(input: unknown): Membership {
  const parsed = membershipSchema.safeParse(input)
  if (!parsed.success) throw new ChorusError('invalid_input', `not a membership: ${parsed.error.issues[0]?.message ?? 'invalid'}`)
  return parsed.data
}

/** The relay's key for document `doc`: derived from its secret key, so it needs no storage and never changes. */
export function documentKey(relaySecretKey: Uint8Array, doc: string): string {
  return createHmac('sha256', relaySecretKey).update(`chorus-document-key-v1\0${doc}`).digest('base64url')
}
