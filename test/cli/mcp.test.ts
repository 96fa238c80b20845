/**
 * The MCP tools as MCP clients see them: the official SDK's own Client, over stdio (`chorus mcp`, a child process
 * acting as CHORUS_ID) and over streamable HTTP (the relay's /spaces/<space>/mcp), against a real relay process.
 * Both doors run the same suite.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import type { Message, Proposal, Task } from '@chorus/sync'
import type { Held, ParticipantView, Results } from '@chorus/agent'
import { afterEach, describe, expect, it } from 'vitest'
import { ROOT } from '../support/paths.ts'
import { relayProcessForAll } from '../support/relay-process.ts'
import { CHORUS_MAIN, relayArgs } from './chorus-command.ts'

const TOOLS = [
  'send_message',
  'read_inbox',
  'wait_for',
  'create_task',
  'list_tasks',
  'claim_task',
  'renew_claim',
  'release_claim',
  'complete_task',
  'create_proposal',
  'vote',
  'list_proposals',
  'get_state',
  'set_state',
  'list_participants',
  'lock_resource',
  'unlock_resource',
  'report',
]

interface Door {
  name: string
  transport(relay: string, space: string, participant: string): StdioClientTransport | StreamableHTTPClientTransport
}

const DOORS: Door[] = [
  {
    name: 'stdio (chorus mcp)',
    transport: (relay, space, participant) =>
      new StdioClientTransport({
        command: process.execPath,
        args: [CHORUS_MAIN, 'mcp'],
        cwd: ROOT,
        env: { ...(process.env as Record<string, string>), CHORUS_RELAY: relay, CHORUS_SPACE: space, CHORUS_ID: participant },
        // Its log line ("serving ... as ...") would clutter the test output.
        stderr: 'ignore',
      }),
  },
  {
    name: 'streamable HTTP (relay /mcp)',
    transport: (relay, space, participant) =>
      new StreamableHTTPClientTransport(new URL(`${relay}/spaces/${encodeURIComponent(space)}/mcp?participant=${encodeURIComponent(participant)}`)),
  },
]

interface ToolResult {
  isError: boolean
  text: string
}

const relay = relayProcessForAll({ args: relayArgs })

let spaces = 0
/** A fresh space per test, so tests never see each other's tasks and messages. */
const freshSpace = (door: string): string => `mcp-${door.startsWith('stdio') ? 'stdio' : 'http'}-${++spaces}-${Date.now().toString(36)}`

describe.each(DOORS)('MCP over $name', (door) => {
  const open: Client[] = []
  afterEach(async () => {
    await Promise.all(open.splice(0).map((c) => c.close()))
  })

  const connect = async (space: string, participant: string): Promise<Client> => {
    const client = new Client({ name: `test-${participant}`, version: '0.0.0' })
    await client.connect(door.transport(relay.url, space, participant))
    open.push(client)
    return client
  }

  /** Calls a tool; the result's single text part, and whether it is a tool error. */
  const call = async (client: Client, name: string, args: Record<string, unknown>): Promise<ToolResult> => {
    const result = await client.callTool({ name, arguments: args })
    const content = result.content as { type: string; text?: string }[]
    expect(content).toHaveLength(1)
    expect(content[0]?.type).toBe('text')
    return { isError: result.isError === true, text: content[0]?.text ?? '' }
  }

  /** Calls a tool that must succeed and parses its JSON result. */
  const ok = async <T>(client: Client, name: string, args: Record<string, unknown>): Promise<T> => {
    const r = await call(client, name, args)
    expect(r.isError, `${name} failed: ${r.text}`).toBe(false)
    return JSON.parse(r.text) as T
  }

  /** Calls a tool that must fail; its error text. */
  const fails = async (client: Client, name: string, args: Record<string, unknown>): Promise<string> => {
    const r = await call(client, name, args)
    expect(r.isError, `${name} should have failed but returned ${r.text}`).toBe(true)
    expect(r.text.length).toBeGreaterThan(0)
    return r.text
  }

  it('lists exactly the tools, each with an object input schema', async () => {
    const client = await connect(freshSpace(door.name), 'agent-a')
    const { tools } = await client.listTools()
    expect(tools.map((t) => t.name).sort()).toEqual([...TOOLS].sort())
    for (const tool of tools) {
      expect(tool.inputSchema.type, tool.name).toBe('object')
      expect(tool.description, tool.name).toBeTruthy()
    }
    // The schemas say what the arguments are, so a model can fill them in.
    const claim = tools.find((t) => t.name === 'claim_task')
    expect(claim?.inputSchema.properties).toHaveProperty('task_id')
    expect(claim?.inputSchema.required).toContain('task_id')
  })

  it('creates, claims, renews and completes a task; votes on a proposal; a second agent cannot claim a held task', async () => {
    const space = freshSpace(door.name)
    const a = await connect(space, 'agent-a')
    const b = await connect(space, 'agent-b')

    const task = await ok<Task>(a, 'create_task', { title: 'Write the parser', priority: 'high' })
    expect(task).toMatchObject({ title: 'Write the parser', status: 'open', priority: 'high', createdBy: 'agent-a' })

    const claim = await ok<Results['claim_task']>(a, 'claim_task', { task_id: task.id, duration_ms: 30_000 })
    expect(typeof claim.token).toBe('number')
    expect(claim.token).toBeGreaterThanOrEqual(1)
    expect(claim.expires_at).toBeGreaterThan(Date.now())
    expect(claim.task).toMatchObject({ id: task.id, status: 'claimed' })
    expect(claim.task.claim?.holder).toBe('agent-a')

    const taken = await fails(b, 'claim_task', { task_id: task.id })
    expect(taken).toMatch(/^conflict:/)

    const renewed = await ok<Results['renew_claim']>(a, 'renew_claim', { task_id: task.id, duration_ms: 60_000 })
    expect(renewed.token).toBeGreaterThanOrEqual(claim.token)
    expect(renewed.expires_at).toBeGreaterThanOrEqual(claim.expires_at)

    // Only the holder completes it.
    expect(await fails(b, 'complete_task', { task_id: task.id, result: 'mine' })).toMatch(/^forbidden:/)
    const done = await ok<Task>(a, 'complete_task', { task_id: task.id, result: { tests: 12, passed: true } })
    expect(done).toMatchObject({ id: task.id, status: 'completed', completedBy: 'agent-a', result: { tests: 12, passed: true } })
    const completed = await ok<Task[]>(b, 'list_tasks', { status: 'completed' })
    expect(completed.map((t) => t.id)).toEqual([task.id])

    const proposal = await ok<Proposal>(b, 'create_proposal', { title: 'Ship it on Friday', threshold: 0.5 })
    expect(proposal).toMatchObject({ title: 'Ship it on Friday', status: 'open', proposer: 'agent-b' })
    const voted = await ok<Proposal>(a, 'vote', { proposal_id: proposal.id, vote: 'for' })
    expect(voted.id).toBe(proposal.id)
    expect(voted.tally.for).toBe(1)
    const listed = await ok<Proposal[]>(b, 'list_proposals', {})
    expect(listed.find((p) => p.id === proposal.id)?.tally.for).toBe(1)
  })

  it('delivers a direct message once with ack, and wait_for returns a message sent while it waits', async () => {
    const space = freshSpace(door.name)
    const a = await connect(space, 'agent-a')
    const b = await connect(space, 'agent-b')
    // b joins (its first call), so a can address it.
    expect((await ok<Results['read_inbox']>(b, 'read_inbox', {})).messages).toEqual([])

    const sent = await ok<Message>(a, 'send_message', { content: 'Can you review #12?', to: 'agent-b', priority: 'high' })
    expect(sent).toMatchObject({ from: 'agent-a', to: 'agent-b', content: 'Can you review #12?', priority: 'high' })

    const first = await ok<Results['read_inbox']>(b, 'read_inbox', { ack: true })
    expect(first.messages.map((m) => m.id)).toEqual([sent.id])
    expect(first.acked).toBe(1)
    const second = await ok<Results['read_inbox']>(b, 'read_inbox', { ack: true })
    expect(second).toEqual({ messages: [], acked: 0 })

    // Started before the message exists; it must be woken by it, before its timeout (which answers matched: false).
    const waiting = call(b, 'wait_for', { for: 'message', timeout_ms: 20_000, from: 'agent-a' })
    const answer = await ok<Message>(a, 'send_message', { content: 'Done, thanks', to: 'agent-b' })
    const woke = await waiting
    expect(woke.isError, woke.text).toBe(false)
    const result = JSON.parse(woke.text) as Results['wait_for']
    expect(result.matched).toBe(true)
    expect('message' in result && result.message.id).toBe(answer.id)

    // wait_for does not mark it read; the inbox still has it.
    expect((await ok<Results['read_inbox']>(b, 'read_inbox', { ack: true })).messages.map((m) => m.id)).toEqual([answer.id])
  })

  it('answers bad arguments with tool errors and keeps serving', async () => {
    const client = await connect(freshSpace(door.name), 'agent-a')
    const wrongType = await fails(client, 'claim_task', { task_id: 42 })
    expect(wrongType).toMatch(/task_id|id must be a string/)
    const missing = await fails(client, 'claim_task', {})
    expect(missing).toMatch(/task_id/)
    const empty = await fails(client, 'create_task', { title: '' })
    expect(empty).toMatch(/title/)
    const unknownField = await fails(client, 'list_tasks', { colour: 'blue' })
    expect(unknownField).toMatch(/colour|unrecognized/i)

    // Same client, same server: still answering.
    expect(await ok<Task[]>(client, 'list_tasks', {})).toEqual([])
    const unknown = await fails(client, 'claim_task', { task_id: 'no-such-task' })
    expect(unknown).toMatch(/^not_found:/)
    expect(await fails(client, 'vote', { proposal_id: 'no-such-proposal', vote: 'for' })).toMatch(/^not_found:/)
    expect(await ok<Task[]>(client, 'list_tasks', {})).toEqual([])
  })

  it('reads and writes shared state, locks and unlocks a resource, and lists participants with presence', async () => {
    const space = freshSpace(door.name)
    const a = await connect(space, 'agent-a')
    const b = await connect(space, 'agent-b')

    expect(await ok<Results['set_state']>(a, 'set_state', { key: 'build', value: { status: 'green', run: 7 } })).toEqual({
      key: 'build',
      value: { status: 'green', run: 7 },
    })
    expect(await ok<Results['set_state']>(a, 'set_state', { key: 'build', value: { run: 8 }, mode: 'merge' })).toEqual({
      key: 'build',
      value: { status: 'green', run: 8 },
    })
    const one = await ok<Results['get_state']>(b, 'get_state', { key: 'build' })
    expect(one).toMatchObject({ key: 'build', value: { status: 'green', run: 8 }, by: 'agent-a' })
    expect(await ok<Results['get_state']>(b, 'get_state', {})).toEqual({ state: { build: { status: 'green', run: 8 } } })
    expect(await fails(b, 'get_state', { key: 'nothing-here' })).toMatch(/^not_found:/)

    const lock = await ok<Results['lock_resource']>(a, 'lock_resource', { resource: 'main.py', timeout_ms: 60_000 })
    expect(lock.token).toBeGreaterThanOrEqual(1)
    expect(lock.expires_at).toBeGreaterThan(Date.now())
    expect(lock.resource.name).toBe('main.py')
    // Someone else's lock attempt fails while a holds it.
    expect(await fails(b, 'lock_resource', { resource: 'main.py' })).toMatch(/^locked:/)
    expect(await fails(b, 'unlock_resource', { resource: 'main.py' })).toMatch(/^forbidden:/)
    const unlocked = await ok<Results['unlock_resource']>(a, 'unlock_resource', { resource: 'main.py' })
    expect(unlocked.id).toBe(lock.resource.id)
    expect(unlocked.lock).toBeUndefined()
    // Free again: b gets it, with a later fencing token.
    const next = await ok<Held>(b, 'lock_resource', { resource: lock.resource.id })
    expect(next.token).toBeGreaterThan(lock.token)
    await ok(b, 'unlock_resource', { resource: 'main.py' })

    const people = await ok<ParticipantView[]>(a, 'list_participants', {})
    const me = people.find((p) => p.id === 'agent-a')
    expect(me).toMatchObject({ id: 'agent-a', kind: 'ai', presence: 'online' })
    expect(people.map((p) => p.id).sort()).toEqual(['agent-a', 'agent-b'])
    for (const p of people) expect(['online', 'idle', 'offline']).toContain(p.presence)

    // The report is given as plain text, for reading.
    const report = await call(a, 'report', {})
    expect(report.isError).toBe(false)
    expect(report.text).toContain('ACTIVITY REPORT')
    expect(report.text).toContain('main.py')
  })
})
