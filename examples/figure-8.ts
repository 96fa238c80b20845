/**
 * The "figure 8" team: 3 computers (Mechanic, Architect, Oracle) and 6 AI instances, each on its own replica,
 * joined by an in-memory network. The Oracle fills a task queue, the instances race to claim tasks (one shared
 * arbiter stands in for the relay), record progress in a locked shared_tasks.json, and report by message.
 * Exits 0 when every task was completed exactly once and all nine replicas hold the same space.
 *
 *   node examples/figure-8.ts
 */
import { activityReport, connectSpace, isChorusError, LocalLeaseClient, ManualClock, Space, type Member, type SpaceConnection } from '@chorus/sync'
import { MemoryNetwork } from '@chorus/sync/testing'
import { check, finish } from './lib/check.ts'

const TASKS = 12
const clock = new ManualClock()
const arbiter = new LocalLeaseClient({ clock })
const networks = new Map<string, MemoryNetwork>()
const network = (doc: string): MemoryNetwork => {
  let n = networks.get(doc)
  if (n === undefined) networks.set(doc, (n = new MemoryNetwork({ autoDeliver: true, seed: 8 })))
  return n
}
const settle = async (): Promise<void> => {
  // autoDeliver releases messages from microtasks; a macrotask turn lets every queue drain.
  for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve))
}

interface Node {
  space: Space
  me: Member
  connection: SpaceConnection
}

const team: Array<{ id: string; name: string; kind: 'computer' | 'ai'; role: string }> = [
  { id: 'mechanic', name: 'Mechanic', kind: 'computer', role: 'mechanic' },
  { id: 'architect', name: 'Architect', kind: 'computer', role: 'architect' },
  { id: 'oracle', name: 'Oracle', kind: 'computer', role: 'oracle' },
  ...[1, 2, 3, 4, 5, 6].map((i) => ({ id: `instance_${i}`, name: `Instance ${i}`, kind: 'ai' as const, role: ['mechanic', 'architect', 'oracle'][(i - 1) % 3] as string })),
]

const nodes: Node[] = []
for (const t of team) {
  const space = new Space({ id: 'figure_8_loop', clock, leases: arbiter })
  const connection = await connectSpace(space, (d) => network(d.name).transport(t.id))
  const me = space.join({ id: t.id, name: t.name, kind: t.kind, metadata: { computer: t.role } })
  nodes.push({ space, me, connection })
}
await settle()

const [mechanic, architect, oracle] = nodes as [Node, Node, Node]
const instances = nodes.slice(3)

oracle.me.set('project_status', 'in_progress')
for (let i = 1; i <= TASKS; i++) oracle.me.createTask({ title: `Module #${i}`, priority: i % 4 === 0 ? 'high' : 'normal' })
const board = architect.me.createResource('shared_tasks.json', { done: [] })
await settle()
check('every replica sees the whole task queue', nodes.every((n) => n.space.tasks.list({ status: 'open' }).length === TASKS))

let refused = 0
const completions = new Map<string, string>()
for (let round = 0; round < TASKS && completions.size < TASKS; round++) {
  // Six instances reach for the first three open tasks they see: two race for each.
  const claims = await Promise.all(
    instances.map(async (n, i) => {
      const visible = n.space.tasks.list({ status: 'open' })
      const open = visible[(i + round) % Math.min(3, visible.length)]
      if (open === undefined) return undefined
      try {
        await n.me.claim(open.id, { duration: 60_000 })
        return { n, task: open }
      } catch (e) {
        if (isChorusError(e, 'conflict')) refused++
        else throw e
        return undefined
      }
    }),
  )
  await settle()
  for (const c of claims) {
    if (c === undefined) continue
    clock.advance(5)
    // Record the result in shared_tasks.json under its lock, then complete the task and tell the team.
    for (;;) {
      try {
        await c.n.me.lock(board.id, { timeout: 10_000 })
        break
      } catch (e) {
        if (!isChorusError(e, 'locked')) throw e
        await settle()
      }
    }
    const current = c.n.space.resources.require(board.id)
    const done = [...((current.data as { done: string[] }).done ?? []), c.task.title]
    c.n.me.edit(board.id, { done }, { expectedVersion: current.version })
    await c.n.me.unlock(board.id)
    await c.n.me.complete(c.task.id, { by: c.n.me.id })
    completions.set(c.task.id, c.n.me.id)
    c.n.me.send(`Completed ${c.task.title}`, { channel: 'technical' })
    await settle()
  }
  mechanic.me.set('tasks_completed', completions.size)
  clock.advance(100)
  await settle()
}

await settle()
const tasks = oracle.space.tasks.list()
check(`all ${TASKS} tasks completed`, tasks.every((t) => t.status === 'completed'))
check('each task completed exactly once', tasks.every((t) => t.history.filter((h) => h.status === 'completed').length === 1))
check('claim races were refused by the arbiter', refused > 0)
const finalBoard = architect.space.resources.require(board.id)
check('shared_tasks.json lists every module once', (finalBoard.data as { done: string[] }).done.length === TASKS && new Set((finalBoard.data as { done: string[] }).done).size === TASKS)
check('shared_tasks.json has no conflicting edits', finalBoard.conflicts.length === 0)
check('the coordination messages reached every replica', nodes.every((n) => n.space.messages.recent({ channel: 'technical', limit: 100 }).length === TASKS))
const reference = JSON.stringify(oracle.space.snapshot())
check('all nine replicas hold an identical space', nodes.every((n) => JSON.stringify(n.space.snapshot()) === reference))

console.log(activityReport(oracle.space, { hubId: 'figure_8_loop' }))
for (const n of nodes) {
  await n.connection.stop()
  n.space.destroy()
}
finish('figure 8')
