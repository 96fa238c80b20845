/**
 * A participant's persistent libp2p identity: one Ed25519 key per participant, kept in a file (libp2p's
 * protobuf encoding, mode 0600), so its peer id, the id its credentials name, stays the same across restarts.
 * Written once as a key file (`key-file.ts`): a crash never leaves half a key behind.
 */
import { generateKeyPair, generateKeyPairFromSeed, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { Ed25519PrivateKey } from '@libp2p/interface'
import { ChorusError } from '@chorus/sync'
import { readKeyFile, writeKeyFile } from './key-file.ts'

export interface PeerKey {
  readonly privateKey: Ed25519PrivateKey
  /** The libp2p peer id (base58 text), the `peer` of this participant's credentials. */
  readonly peerId: string
  /** The 32-byte Ed25519 seed: what signs this peer's invites. */
  readonly seed: Uint8Array
}

const SEED_BYTES = 32

export const peerKeyOf = (privateKey: Ed25519PrivateKey): PeerKey => ({
  privateKey,
  peerId: peerIdFromPrivateKey(privateKey).toString(),
  seed: privateKey.raw.subarray(0, SEED_BYTES),
})

/** A fresh key that lives only in memory (tests, throwaway peers). */
export const ephemeralPeerKey = async (): Promise<PeerKey> => peerKeyOf(await generateKeyPair('Ed25519'))

/** The key whose seed is `seed`: the relay's libp2p identity is its signing key, so its peer id names that key. */
export const peerKeyFromSeed = async (seed: Uint8Array): Promise<PeerKey> => peerKeyOf(await generateKeyPairFromSeed('Ed25519', seed))

/**
 * The key in `path`, created on first use. A file that exists but is not an Ed25519 key throws `corrupt`:
 * replacing it would change the peer's identity and void its credentials, so that is left to its owner.
 */
export async function loadOrCreatePeerKey(path: string): Promise<PeerKey> {
  const bytes = readKeyFile(path)
  if (bytes !== undefined) {
    let key
    try {
      key = privateKeyFromProtobuf(bytes)
    } catch (e) {
      throw new ChorusError('corrupt', `${path} is not a libp2p private key (${(e as Error).message}); move it away to create a new identity`)
    }
    if (key.type !== 'Ed25519') throw new ChorusError('corrupt', `${path} holds a ${key.type} key; Chorus peers use Ed25519`)
    return peerKeyOf(key)
  }
  const key = await generateKeyPair('Ed25519')
  writeKeyFile(path, privateKeyToProtobuf(key))
  return peerKeyOf(key)
}
