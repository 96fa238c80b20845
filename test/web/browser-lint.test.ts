/**
 * Browser code may not import Node's modules: the lint rule that says so catches each way of doing it, in
 * @chorus/web, in the dashboard and in the parts of @chorus/sync that browsers load, and leaves Node code alone.
 */
import { join } from 'node:path'
import { ESLint } from 'eslint'
import { describe, expect, it } from 'vitest'
import { ROOT } from '../support/paths.ts'

// The project's own config, with only the import rule (the type-aware rules need files that exist on disk).
const eslint = new ESLint({
  cwd: ROOT,
  ruleFilter: ({ ruleId }) => ruleId === 'no-restricted-imports',
  overrideConfig: { languageOptions: { parserOptions: { projectService: false } } },
})

/** The rule ids the lint reports for `code` as if it were the file at `path`. */
const problems = async (path: string, code: string): Promise<string[]> => {
  const [result] = await eslint.lintText(code, { filePath: join(ROOT, path) })
  return (result?.messages ?? []).map((m) => `${m.ruleId ?? 'fatal'}: ${m.message}`)
}

const NODE_IMPORTS = [
  "import { readFileSync } from 'node:fs'\nexport const f = readFileSync\n",
  "import path from 'path'\nexport const p = path\n",
  "import { SqliteStore } from '@chorus/sync/sqlite'\nexport const s = SqliteStore\n",
  "import { ChorusPeer } from '@chorus/p2p'\nexport const c = ChorusPeer\n",
]

describe('browser code and Node modules', () => {
  it('refuses Node modules in @chorus/web, the dashboard and the browser half of @chorus/sync', async () => {
    for (const file of ['packages/web/src/example.ts', 'dashboard/src/example.tsx', 'packages/sync/src/example.ts']) {
      for (const code of NODE_IMPORTS) {
        const found = await problems(file, code)
        expect(found.filter((p) => p.startsWith('no-restricted-imports: ') && p.includes('Browser code')), `${file}: ${code}`).toHaveLength(1)
      }
    }
  }, 60_000)

  it('allows them in Node-only code, and allows browser-safe imports in browser code', async () => {
    expect(await problems('relay/src/example.ts', NODE_IMPORTS[0] as string)).toEqual([])
    expect(await problems('packages/sync/src/store/sqlite-store.ts', NODE_IMPORTS[0] as string)).toEqual([])
    expect(await problems('packages/web/src/example.ts', "import * as Y from 'yjs'\nexport const d = new Y.Doc()\n")).toEqual([])
  }, 60_000)
})
