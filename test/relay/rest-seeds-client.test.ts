/**
 * A plain HTTP client written as the coordination hub's clients were (docs/HUBS.md) works unchanged against the relay:
 * fixtures/seeds-client.py (Python stdlib only) registers, messages, runs a task through its life and votes; the
 * test checks what it printed and what the space holds, read by a sync replica rather than through REST.
 */
import { execFile, spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { Space } from '@chorus/sync'
import { fixturePerTest, synced } from '../support/relay.ts'
import { spaceUpdates, until } from '../support/wait.ts'
import type { EntityView, MessageView, ProposalView, TaskView } from './rest-helpers.ts'

const SCRIPT = fileURLToPath(new URL('./fixtures/seeds-client.py', import.meta.url))
const hasPython = spawnSync('python3', ['--version']).status === 0
const run = promisify(execFile)

const f = fixturePerTest()

interface ClientOutput {
  health: { status: string }
  register: { status: string; entity: EntityView }
  heartbeat: { status: string; entity_id: string; last_seen: string }
  entities: { entities: EntityView[] }
  send_general: { status: string; message: MessageView }
  send_urgent: { status: string; message: MessageView }
  recent: { messages: MessageView[] }
  create_task: { status: string; task_id: string; task: TaskView }
  open_tasks: { tasks: TaskView[] }
  claim: { status: string; task: TaskView; lease: { token: number; duration_ms: number } }
  complete: { status: string; task: TaskView }
  create_proposal: { status: string; proposal_id: string; proposal: ProposalView }
  vote: { status: string; proposal: ProposalView }
  proposals: { proposals: ProposalView[] }
  state: { summary: { tasks: { completed: number } } }
}

describe('the coordination hub\'s REST API, used as its clients did (docs/HUBS.md)', () => {
  it.skipIf(!hasPython)('a plain Python urllib client works unchanged', async () => {
    const { url } = await f.startRelay()
    const { stdout } = await run('python3', [SCRIPT, url], { timeout: 30_000 })
    const out = JSON.parse(stdout) as ClientOutput

    expect(out.health.status).toBe('ok')
    expect(out.register).toMatchObject({ status: 'registered', entity: { entity_id: 'py-agent', entity_type: 'ai_agent', capabilities: ['python', 'review'], metadata: { host: 'seeds-client' } } })
    expect(out.heartbeat).toMatchObject({ status: 'ok', entity_id: 'py-agent' })
    expect(out.entities.entities.map((e) => [e.entity_id, e.entity_type])).toEqual([
      ['py-agent', 'ai_agent'],
      ['py-agent-peer', 'session'],
    ])
    expect(out.send_general.message).toMatchObject({ sender_id: 'py-agent', channel: 'general', priority: 'normal' })
    expect(out.send_urgent.message).toMatchObject({ channel: 'urgent', priority: 'urgent' })
    expect(out.recent.messages.map((m) => m.content)).toEqual(['hello from python', 'prod alert'])
    const taskId = out.create_task.task_id
    expect(out.create_task.task).toMatchObject({ title: 'Port the script', requires_human: false, priority: 'high', status: 'open' })
    expect(out.open_tasks.tasks.map((t) => t.task_id)).toEqual([taskId])
    expect(out.claim).toMatchObject({ status: 'claimed', task: { claimed_by: 'py-agent' } })
    expect(out.complete.task).toMatchObject({ status: 'completed', completed_by: 'py-agent', result: 'done in python' })
    expect(out.proposals.proposals).toHaveLength(1)
    expect(out.proposals.proposals[0]).toMatchObject({
      proposal_id: out.create_proposal.proposal_id,
      votes: { 'py-agent': 'for', 'py-agent-peer': 'abstain' },
      tally: { for: 1, against: 0, abstain: 1, total: 2, approval: 1 },
      status: 'approved',
    })
    expect(out.state.summary.tasks.completed).toBe(1)

    // What the client did is in the space itself: a sync replica reads it back.
    const provider = f.provider(url, 'default')
    await synced(provider)
    const space = new Space({ id: 'default', doc: provider.doc })
    try {
      await until(() => space.tasks.get(taskId)?.status === 'completed', 'the completed task on the replica', { on: spaceUpdates(space) })
      expect(space.participants.get('py-agent')).toMatchObject({ kind: 'ai', name: 'Python agent' })
      expect(space.participants.get('py-agent-peer')?.kind).toBe('ai')
      expect(space.tasks.get(taskId)).toMatchObject({ completedBy: 'py-agent', result: 'done in python', createdBy: 'coordination-hub' })
      expect(space.messages.all().map((m) => [m.channel, m.content])).toEqual([
        ['general', 'hello from python'],
        ['urgent', 'prod alert'],
      ])
      expect(space.proposals.get(out.create_proposal.proposal_id)?.tally).toMatchObject({ for: 1, abstain: 1 })
    } finally {
      space.destroy()
    }
  })
})
