/**
 * Keeps the docs honest: the example in the header of packages/sync/src/index.ts runs and prints what it says, the
 * architecture doc has its mermaid diagram, and the limits and error codes it documents match the code. Links are
 * checked in test/docs/links.test.ts.
 */
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { LIMITS } from '@chorus/sync'
import { headerExample, runExample } from '../support/examples.ts'
import { ROOT as root } from '../support/paths.ts'

const indexPath = join(root, 'packages/sync/src/index.ts')
const architecturePath = join(root, 'docs/ARCHITECTURE.md')
const readmePath = join(root, 'README.md')
const errorsPath = join(root, 'packages/sync/src/errors.ts')

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

    const run = runExample(example, 'index-example.ts', { cwd: root })
    expect(run.error).toBeUndefined()
    expect(run.status, `the example failed:\n${run.stderr}`).toBe(0)
    expect(run.stdout.trimEnd().split('\n')).toEqual(expected)
  })

  it('the tour in README.md runs', () => {
    const block = /^```ts\n([\s\S]*?)^```$/m.exec(readFileSync(readmePath, 'utf8'))?.[1]
    expect(block).toContain("from '@chorus/sync'")
    // Run from its own folder so the tour's sqlite file lands there.
    const run = runExample(block ?? '', 'tour.ts')
    expect(run.status, `the tour failed:\n${run.stderr}`).toBe(0)
    expect(run.stdout.split('\n')).toEqual(expect.arrayContaining(['approved', 'ada Build is red on main']))
    expect(existsSync(join(run.dir, '.data', 'team.sqlite'))).toBe(true)
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
