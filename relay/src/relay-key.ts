/**
 * The relay's Ed25519 key (L7), kept in `relay-key.json` in the data folder so that grants signed before a
 * restart still verify after it. The file holds the base64url secret key; it is written once, mode 0o600, via a
 * temporary file and a rename so a crash never leaves a half-written key behind.
 */
import { join } from 'node:path'
import { readKeyFile, writeKeyFile } from '@chorus/p2p'
import { ChorusError, createGrantSigner, generateSecretKey } from '@chorus/sync'

export const RELAY_KEY_FILE = 'relay-key.json'

const KEY_FILE_VERSION = 1
const SECRET_KEY_BYTES = 32

export interface RelayKey {
  secretKey: Uint8Array
  /** base64url, as written to `meta.relayKey` and served at `/capabilities`. */
  publicKey: string
}

/**
 * The key in `dataDir`, created on first use. A file that exists but cannot be read as a key throws `corrupt`:
 * replacing it would void every grant ever recorded with the old key, so that is left to an operator.
 */
export function loadOrCreateRelayKey(dataDir: string): RelayKey {
  const path = join(dataDir, RELAY_KEY_FILE)
  const existing = readKeyFile(path)
  if (existing !== undefined) return parseKeyFile(path, existing.toString('utf8'))

  const secretKey = generateSecretKey()
  // The key must be on disk before any grant signed with it can be.
  writeKeyFile(path, `${JSON.stringify({ version: KEY_FILE_VERSION, secretKey: Buffer.from(secretKey).toString('base64url') })}\n`)
  return { secretKey, publicKey: createGrantSigner(secretKey).publicKey }
}

function parseKeyFile(path: string, text: string): RelayKey {
  const corrupt = (why: string): ChorusError =>
    new ChorusError(
      'corrupt',
      `relay key file ${path} is corrupt (${why}); refusing to replace it, since a new key would void every grant ` +
        'signed with the old one. Restore the file from a backup, or delete it to start over with a new key.',
      { path },
    )
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    throw corrupt('not JSON')
  }
  if (typeof parsed !== 'object' || parsed === null || !('secretKey' in parsed) || typeof parsed.secretKey !== 'string') {
    throw corrupt('no secretKey string')
  }
  if (!('version' in parsed) || parsed.version !== KEY_FILE_VERSION) throw corrupt(`expected version ${KEY_FILE_VERSION}`)
  if (!/^[A-Za-z0-9_-]+$/.test(parsed.secretKey)) throw corrupt('secretKey is not base64url')
  const secretKey = new Uint8Array(Buffer.from(parsed.secretKey, 'base64url'))
  if (secretKey.length !== SECRET_KEY_BYTES) throw corrupt(`secretKey has ${secretKey.length} bytes, expected ${SECRET_KEY_BYTES}`)
  return { secretKey, publicKey: createGrantSigner(secretKey).publicKey }
}
