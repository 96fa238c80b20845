/** Keeps the relay's docs honest: the example in the header of relay/src/index.ts runs and prints what it says. */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { headerExample, runExample } from '../support/examples.ts'
import { ROOT } from '../support/paths.ts'

describe('relay docs', () => {
  it('the example in the header of relay/src/index.ts runs and prints what its comment says', () => {
    const example = headerExample(readFileSync(join(ROOT, 'relay/src/index.ts'), 'utf8'))
    expect(example).toContain("from '@chorus/relay'")
    // Run from its own folder so the example's data folder lands there.
    const run = runExample(example, 'relay-example.ts')
    expect(run.status, `the example failed:\n${run.stderr}`).toBe(0)
    expect(run.stdout.trimEnd().split('\n')).toEqual(['ok 1'])
  })
})
