/**
 * What a document's key (`Membership.key`) is used for. Everything a peer shows to peers it has not verified is
 * derived from the key, so a peer without it cannot tell which space is meant nor read what is said:
 * - the gossipsub topic of the document (a stranger may subscribe, but sees only sealed messages);
 * - the stream tag a dialer opens the sync protocol with, bound to both peers' ids, so the listener can look the
 *   document up by it, and a stranger a member dials learns only a tag that is of no use with anyone else;
 * - the AES-256-GCM key that seals every gossip message.
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto'

const NONCE_BYTES = 12
const TAG_BYTES = 16

/** Bytes a sealed message adds to its plaintext. */
export const SEAL_OVERHEAD = NONCE_BYTES + TAG_BYTES

const derive = (key: string, purpose: string): Buffer => createHmac('sha256', Buffer.from(key, 'base64url')).update(purpose).digest()

export interface DocumentSecrets {
  readonly topic: string
  /** Sent by `dialer` first on a sync stream to `listener` (peer ids), 32 bytes. */
  streamTag(dialer: string, listener: string): Uint8Array
  seal(plaintext: Uint8Array): Uint8Array
  /** The plaintext, or undefined when `sealed` was not sealed with this document's key (or was altered). */
  open(sealed: Uint8Array): Uint8Array | undefined
}

export function documentSecrets(key: string): DocumentSecrets {
  const aesKey = derive(key, 'chorus-gossip-aead-v1')
  const tagKey = derive(key, 'chorus-stream-tag-v2')
  return {
    topic: `/chorus/doc/1/${derive(key, 'chorus-gossip-topic-v1').toString('base64url').slice(0, 32)}`,
    streamTag: (dialer, listener) => new Uint8Array(createHmac('sha256', tagKey).update(`${dialer}\0${listener}`).digest()),
    seal(plaintext) {
      const nonce = randomBytes(NONCE_BYTES)
      const cipher = createCipheriv('aes-256-gcm', aesKey, nonce)
      const body = Buffer.concat([cipher.update(plaintext), cipher.final()])
      return new Uint8Array(Buffer.concat([nonce, body, cipher.getAuthTag()]))
    },
    open(sealed) {
      if (sealed.length < SEAL_OVERHEAD) return undefined
      try {
        const decipher = createDecipheriv('aes-256-gcm', aesKey, sealed.subarray(0, NONCE_BYTES))
        decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES))
        const body = decipher.update(sealed.subarray(NONCE_BYTES, sealed.length - TAG_BYTES))
        return new Uint8Array(Buffer.concat([body, decipher.final()]))
      } catch {
        return undefined
      }
    },
  }
}
