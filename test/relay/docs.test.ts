/** Keeps the relay's docs honest: the example in the header of relay/src/index.ts runs and prints what it says. */
import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'

const root = fileURLToPath(new URL('../..', import.meta.url))
// Inside the repository, so the example's imports resolve to the workspace packages.
const tmpRoot = join(import.meta.dirname, '.tmp')
const made: string[] = []
afterAll(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true })
  rmSync(tmpRoot, { recursive: true, force: true })
})

function headerExample(source: string): string {
  const header = /\/\*\*([\s\S]*?)\*\//.exec(source)?.[1] ?? ''
  const lines = header.split('\n').map((l) => l.replace(/^\s*\* ?/, ''))
  const start = lines.findIndex((l) => l.trim() === '```ts')
  const end = lines.findIndex((l, i) => i > start && l.trim() === '```')
  if (start < 0 || end < 0) throw new Error('no ```ts block in the header comment')
  return lines.slice(start + 1, end).join('\n') + '\n'
}

describe('relay docs', () => {
  it('the example in the header of relay/src/index.ts runs and prints what its comment says', () => {
    const example = headerExample(readFileSync(join(root, 'relay/src/index.ts'), 'utf8'))
    expect(example).toContain("from '@chorus/relay'")
    mkdirSync(tmpRoot, { recursive: true })
    const dir = mkdtempSync(join(tmpRoot, 'example-'))
    made.push(dir)
    const file = join(dir, 'relay-example.ts')
    writeFileSync(file, example)
    // Run from the temporary folder so the example's data folder lands there.
    const run = spawnSync(process.execPath, [file], { cwd: dir, encoding: 'utf8', timeout: 30_000 })
    expect(run.status, `the example failed:\n${run.stderr}`).toBe(0)
    expect(run.stdout.trimEnd().split('\n')).toEqual(['ok 1'])
  })
})
