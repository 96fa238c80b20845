/**
 * Files that hold a secret key: the relay's signing key (which is also its libp2p identity) and each peer's key.
 * Losing or half-writing one changes an identity, so a key file is written once, mode 0600, through a temporary
 * file that is fsynced and renamed into place, and the rename itself is made durable.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs'
import { dirname } from 'node:path'

/** The file's bytes, or undefined when there is none yet (any other read error is thrown). */
export function readKeyFile(path: string): Buffer | undefined {
  try {
    return readFileSync(path)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw e
  }
}

/** Writes a new key file (creating its folder): durable, and never seen half-written. */
export function writeKeyFile(path: string, data: string | Uint8Array): void {
  const dir = dirname(path)
  mkdirSync(dir, { recursive: true })
  const temp = `${path}.${process.pid}.tmp`
  try {
    const fd = openSync(temp, 'wx', 0o600)
    try {
      writeSync(fd, typeof data === 'string' ? Buffer.from(data, 'utf8') : data)
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
    renameSync(temp, path)
  } catch (e) {
    rmSync(temp, { force: true })
    throw e
  }
  syncDir(dir)
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
