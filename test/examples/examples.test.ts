/** Every example is a story that exits 0 only when it worked; run each as its users would. */
import { spawnSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { ROOT as root } from '../support/paths.ts'


const run = (file: string): { status: number | null; output: string } => {
  // CHORUS_RELAY unset: the shell example starts a relay of its own.
  const env = { ...process.env, CHORUS_RELAY: '' }
  const r = spawnSync(file.endsWith('.sh') ? 'bash' : process.execPath, [file], { cwd: root, encoding: 'utf8', timeout: 120_000, env })
  return { status: r.status, output: `${r.stdout}${r.stderr}` }
}

describe('examples', () => {
  for (const file of ['examples/collaboration-demo.ts', 'examples/figure-8.ts', 'examples/work-queue.ts', 'examples/p2p-mesh.ts', 'examples/mcp-agent.ts', 'examples/shell-agents.sh']) {
    it(`${file} exits 0 with every check passed`, () => {
      const { status, output } = run(file)
      expect(output).not.toMatch(/^FAIL /m)
      expect(output).toMatch(/all checks passed/)
      expect(status, output).toBe(0)
    })
  }
})
