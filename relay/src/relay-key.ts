/**
 * The relay's Ed25519 key (L7), kept in `relay-key.json` in the data folder so that grants signed before a
 * restart still verify after it. The file holds the base64url secret key; it is written once, mode 0o600, via a
 * temporary file and a rename so a crash never leaves a half-written key behind.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs'
import { join } from 'node:path'
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
  let text: string | undefined
  try {
    text = readFileSync(path, 'utf8')
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e
  }
  if (text !== undefined) return parseKeyFile(path, text)

  mkdirSync(dataDir, { recursive: true })
  const secretKey = generateSecretKey()
  const body = `${JSON.stringify({ version: KEY_FILE_VERSION, secretKey: Buffer.from(secretKey).toString('base64url') })}\n`
  const temp = `${path}.${process.pid}.tmp`
  try {
    const fd = openSync(temp, 'wx', 0o600)
    try {
      writeSync(fd, body)
      // The key must be on disk before any grant signed with it can be.
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
    renameSync(temp, path)
  } catch (e) {
    rmSync(temp, { force: true })
    throw e
  }
  syncDir(dataDir)
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

/** Makes the rename itself durable; not every platform can open a directory, and that is not fatal. */
function syncDir(dir: string): void {
  let fd: number | undefined
  try {
    fd = openSync(dir, 'r')
    fsyncSync(fd)
  } catch {
    // Windows cannot fsync a directory; the rename is still atomic there.
  } finally {
    if (fd !== undefined) closeSync(fd)
  }
}
