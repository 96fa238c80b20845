/**
 * The coordination hub's distributed work queue on Chorus: a relay, 10 tasks, and 5 agents in separate processes
 * claiming in parallel. Claims are leases from the relay, so no task is worked twice. Exits 0 when every task was
 * completed exactly once, by the agent that held its claim.
 *
 *   node examples/work-queue.ts
 *
 * Each agent is this file run again with `--agent <id> <relay-url>`.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { isChorusError, openRelaySpace, type Task } from '@chorus/sync'
import { Relay } from '@chorus/relay'
import { check, finish } from './lib/check.ts'

const SPACE = 'work-queue'
const TASKS = 10
const AGENTS = 5

if (process.argv[2] === '--agent') await agent(process.argv[3] ?? '', process.argv[4] ?? '')
else await coordinator()

async function coordinator(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'chorus-work-queue-'))
  const relay = new Relay({ port: 0, dataDir: dir })
  const { url } = await relay.start()
  console.log(`relay at ${url}`)
  const lead = await openRelaySpace({ relay: url, space: SPACE, participant: { id: 'lead', kind: 'human' } })
  try {
    await lead.synced()
    lead.space.join({ id: 'lead', name: 'Lead', kind: 'human' })
    for (let i = 1; i <= TASKS; i++) lead.space.tasks.create({ title: `module #${i}`, createdBy: 'lead', priority: i <= 3 ? 'high' : 'normal' })

    const exits = await Promise.all(
      Array.from({ length: AGENTS }, (_, i) => {
        const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--agent', `agent-${i + 1}`, url], { stdio: ['ignore', 'inherit', 'inherit'] })
        return new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
      }),
    )
    check('every agent process exited 0', exits.every((code) => code === 0))

    await waitFor(() => lead.space.tasks.list({ status: 'completed' }).length === TASKS, 30_000)
    const tasks = lead.space.tasks.list()
    check(`all ${TASKS} tasks are completed`, tasks.every((t) => t.status === 'completed'))
    check('each task was completed exactly once', tasks.every((t) => t.history.filter((h) => h.status === 'completed').length === 1))
    check('each completion came from the agent that claimed it', tasks.every((t) => completedByClaimant(t)))
    const byAgent = new Map<string, number>()
    for (const t of tasks) byAgent.set(t.completedBy ?? '?', (byAgent.get(t.completedBy ?? '?') ?? 0) + 1)
    console.log(`completions per agent: ${[...byAgent].sort().map(([a, n]) => `${a}=${n}`).join(', ')}`)
    check('the work was shared (more than one agent completed tasks)', byAgent.size > 1)
  } finally {
    await lead.close()
    await relay.stop()
    rmSync(dir, { recursive: true, force: true })
  }
  finish('work-queue')
}

/** The last claim before completion is the completer's, and every claim refusal left no second claim behind. */
function completedByClaimant(t: Task): boolean {
  const claims = t.history.filter((h) => h.status === 'claimed')
  return claims.length >= 1 && claims[claims.length - 1]?.by === t.completedBy
}

async function agent(id: string, url: string): Promise<void> {
  const me = await openRelaySpace({ relay: url, space: SPACE, participant: { id, kind: 'ai' } })
  try {
    await me.synced()
    me.space.join({ id, name: id, kind: 'ai' })
    // Start together: wait until the tasks and all agents are visible, so the claims really race.
    await waitFor(() => me.space.tasks.list().length === TASKS && me.space.participants.list().filter((p) => p.kind === 'ai').length === AGENTS, 20_000)
    let done = 0
    for (;;) {
      const open = me.space.tasks.list({ status: 'open' })
      if (open.length === 0) {
        if (me.space.tasks.list({ status: 'completed' }).length === TASKS) break
        // Claimed by others and not yet completed: wait for them to finish (or for a claim to run out).
        await waitForChange(me)
        continue
      }
      const task = open[Math.floor(Math.random() * open.length)] as Task
      try {
        await me.space.tasks.claim(task.id, id, { duration: 10_000 })
      } catch (e) {
        if (isChorusError(e, 'conflict')) continue // another agent got it first
        throw e
      }
      await new Promise((resolve) => setTimeout(resolve, 20 + Math.random() * 80)) // the "work"
      await me.space.tasks.complete(task.id, id, { by: id })
      done++
      me.space.messages.send({ from: id, content: `Completed ${task.title}` })
    }
    console.log(`${id}: completed ${done}`)
  } finally {
    await me.close()
  }
}

function waitForChange(s: { space: { doc: { once(event: 'update', f: () => void): void } } }): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, 500)
    s.space.doc.once('update', () => {
      clearTimeout(timer)
      resolve()
    })
  })
}

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}
