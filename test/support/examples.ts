/**
 * Code examples from the repository's comments and docs, run as their readers would run them: written to a file
 * inside the repository (so `@chorus/*` imports resolve to the workspace packages) and started with node.
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { onTestFinished } from 'vitest'
import { ROOT } from './paths.ts'

/** Inside the repository; removed once no test uses it. */
const TMP_ROOT = join(ROOT, 'test', '.tmp')

/** The ```ts block of the first doc comment of `source`, without the comment's leading ` * `. */
export function headerExample(source: string): string {
  const header = /\/\*\*([\s\S]*?)\*\//.exec(source)?.[1]
  if (header === undefined) throw new Error('no header comment')
  const lines = header.split('\n').map((l) => l.replace(/^\s*\* ?/, ''))
  const start = lines.findIndex((l) => l.trim() === '```ts')
  const end = lines.findIndex((l, i) => i > start && l.trim() === '```')
  if (start < 0 || end < 0) throw new Error('no ```ts block in the header comment')
  return lines.slice(start + 1, end).join('\n') + '\n'
}

export interface ExampleRun extends SpawnSyncReturns<string> {
  /** The folder the example was written to (removed when the test ends). */
  dir: string
}

/**
 * Writes `code` to `file` in a new folder and runs it with node, from that folder unless `cwd` says otherwise.
 * The folder is removed when the running test ends.
 */
export function runExample(code: string, file: string, options: { cwd?: string } = {}): ExampleRun {
  mkdirSync(TMP_ROOT, { recursive: true })
  const dir = mkdtempSync(join(TMP_ROOT, 'example-'))
  onTestFinished(() => {
    rmSync(dir, { recursive: true, force: true })
    try {
      if (existsSync(TMP_ROOT) && readdirSync(TMP_ROOT).length === 0) rmdirSync(TMP_ROOT)
    } catch {
      // Another test file may be using it at the same time; the last one out removes it.
    }
  })
  const path = join(dir, file)
  writeFileSync(path, code)
  // The timeout only ends a hung example; a healthy one takes a second or two.
  return { ...spawnSync(process.execPath, [path], { cwd: options.cwd ?? dir, encoding: 'utf8', timeout: 30_000 }), dir }
}
