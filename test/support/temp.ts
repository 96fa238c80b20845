/** Temporary folders for tests, under the system's temporary folder. */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { onTestFinished } from 'vitest'

export interface TempDir {
  readonly path: string
  /** Deletes the folder and everything in it. */
  remove(): void
}

/** A new empty folder whose owner removes it. */
export function makeTempDir(prefix: string): TempDir {
  const path = mkdtempSync(join(tmpdir(), prefix))
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) }
}

/** A new empty folder, removed when the running test has finished (after its afterEach hooks). */
export function tempDir(prefix: string): string {
  const dir = makeTempDir(prefix)
  onTestFinished(() => dir.remove())
  return dir.path
}
