/**
 * Keeps the docs honest: the example in the header of packages/sync/src/index.ts runs and prints what it says, the
 * architecture doc has its mermaid diagram, and the limits and error codes it documents match the code. Links are
 * checked in test/docs/links.test.ts.
 */
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { LIMITS } from '@chorus/sync'

const root = fileURLToPath(new URL('../..', import.meta.url))
const indexPath = join(root, 'packages/sync/src/index.ts')
const architecturePath = join(root, 'docs/ARCHITECTURE.md')
const readmePath = join(root, 'README.md')
const errorsPath = join(root, 'packages/sync/src/errors.ts')

// Inside the repository, so the example's `import ... from '@chorus/sync'` resolves to the workspace package.
const tmpRoot = join(import.meta.dirname, '.tmp')
const made: string[] = []
afterAll(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true })
  try {
    if (existsSync(tmpRoot) && readdirSync(tmpRoot).length === 0) rmdirSync(tmpRoot)
  } catch {
    // Another run may be using it at the same time; it removes it when done.
  }
})

/** The ```ts block of the first doc comment of `source`, without the comment's leading ` * `. */
const headerExample = (source: string): string => {
  const header = /\/\*\*([\s\S]*?)\*\//.exec(source)?.[1]
  if (header === undefined) throw new Error('no header comment')
  const lines = header.split('\n').map((l) => l.replace(/^\s*\* ?/, ''))
  const start = lines.findIndex((l) => l.trim() === '```ts')
  const end = lines.findIndex((l, i) => i > start && l.trim() === '```')
  if (start < 0 || end < 0) throw new Error('no ```ts block in the header comment')
  return lines.slice(start + 1, end).join('\n') + '\n'
}

/**
 * What `console.log` prints for the values a `// ...` comment shows. The comment writes them as literals
 * (`1 'completed'`, util.inspect style), while console.log prints top-level strings without quotes.
 */
const printedForm = (comment: string): string => {
  const token = /\s*(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)"|(-?\d+(?:\.\d+)?)|(true|false|null|undefined))\s*/y
  const out: string[] = []
  let pos = 0
  while (pos < comment.length) {
    token.lastIndex = pos
    const m = token.exec(comment)
    if (m === null) return comment.trim() // not a list of literals: compare the text as written
    out.push(m[1] ?? m[2] ?? m[3] ?? m[4] ?? '')
    pos = token.lastIndex
  }
  return out.join(' ')
}

describe('docs', () => {
  it('the example in the header of packages/sync/src/index.ts runs and prints what its comment says', () => {
    const example = headerExample(readFileSync(indexPath, 'utf8'))
    expect(example).toContain("from '@chorus/sync'")
    const expected = example
      .split('\n')
      .map((l) => /console\.log\(.*\)\s*\/\/(.*)$/.exec(l)?.[1])
      .filter((c): c is string => c !== undefined)
      .map(printedForm)
    expect(expected.length).toBeGreaterThan(0)

    mkdirSync(tmpRoot, { recursive: true })
    const dir = mkdtempSync(join(tmpRoot, 'docs-'))
    made.push(dir)
    const file = join(dir, 'index-example.ts')
    writeFileSync(file, example)
    const run = spawnSync(process.execPath, [file], { cwd: root, encoding: 'utf8', timeout: 30_000 })
    expect(run.error).toBeUndefined()
    expect(run.status, `the example failed:\n${run.stderr}`).toBe(0)
    expect(run.stdout.trimEnd().split('\n')).toEqual(expected)
  })

  it('the tour in README.md runs', () => {
    const block = /^```ts\n([\s\S]*?)^```$/m.exec(readFileSync(readmePath, 'utf8'))?.[1]
    expect(block).toContain("from '@chorus/sync'")
    mkdirSync(tmpRoot, { recursive: true })
    const dir = mkdtempSync(join(tmpRoot, 'readme-'))
    made.push(dir)
    const file = join(dir, 'tour.ts')
    writeFileSync(file, block ?? '')
    // Run from the temporary folder so the tour's sqlite file lands there.
    const run = spawnSync(process.execPath, [file], { cwd: dir, encoding: 'utf8', timeout: 30_000 })
    expect(run.status, `the tour failed:\n${run.stderr}`).toBe(0)
    expect(run.stdout.split('\n')).toEqual(expect.arrayContaining(['approved', 'ada Build is red on main']))
    expect(existsSync(join(dir, '.data', 'team.sqlite'))).toBe(true)
  })

  it('docs/ARCHITECTURE.md has a mermaid flowchart', () => {
    expect(readFileSync(architecturePath, 'utf8')).toMatch(/^```mermaid\n\s*flowchart\b[\s\S]*?^```$/m)
  })

  it('docs/ARCHITECTURE.md documents every LIMITS key with its value', () => {
    const lines = readFileSync(architecturePath, 'utf8').split('\n')
    for (const [key, value] of Object.entries(LIMITS)) {
      const line = lines.find((l) => l.includes(`| \`${key}\` |`)) ?? lines.find((l) => l.includes(`\`${key}\``))
      expect(line, `LIMITS.${key} is not mentioned`).toBeDefined()
      expect(line, `LIMITS.${key} should be documented as ${value}`).toMatch(new RegExp(`(^|[^\\d])${value}([^\\d]|$)`))
    }
  })

  it('docs/ARCHITECTURE.md lists every ChorusErrorCode', () => {
    const union = /export type ChorusErrorCode =([\s\S]*?)\n\n/.exec(readFileSync(errorsPath, 'utf8'))?.[1] ?? ''
    const codes = [...union.matchAll(/\|\s*'([a-z_]+)'/g)].map((m) => m[1])
    expect(codes.length).toBeGreaterThan(0)
    const doc = readFileSync(architecturePath, 'utf8')
    for (const code of codes) expect(doc, `error code ${code}`).toContain(`| \`${code}\` |`)
  })
})
