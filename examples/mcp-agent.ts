/**
 * An AI agent working through MCP, as an MCP host (Claude Desktop, an IDE, an agent framework) would run it: the
 * official SDK's Client talks to the relay's /mcp over streamable HTTP, and a second agent to `chorus mcp` over
 * stdio. A human (Alice, through the relay's agent API) asks for work; the agents read their inbox, claim and
 * complete her tasks and vote on her proposal. Exits 0 when every step did what it should.
 *
 *   node examples/mcp-agent.ts
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { RelayAgent, type Results } from '@chorus/agent'
import { Relay } from '@chorus/relay'
import type { Message, Proposal, Task } from '@chorus/sync'
import { check, finish } from './lib/check.ts'

const SPACE = 'mcp-demo'
const CHORUS_MAIN = join(import.meta.dirname, '..', 'packages', 'cli', 'src', 'main.ts')

interface ToolAnswer {
  ok: boolean
  text: string
}

/** One tool call; MCP answers with a text part holding the JSON result (or, on failure, `code: message`). */
async function tool(client: Client, name: string, args: Record<string, unknown> = {}): Promise<ToolAnswer> {
  const result = await client.callTool({ name, arguments: args })
  const first = (result.content as { type: string; text?: string }[])[0]
  return { ok: result.isError !== true, text: first?.type === 'text' ? (first.text ?? '') : '' }
}

/** A tool call that should succeed: its parsed result, or undefined (and a failed check) if it did not. */
async function use<T>(who: string, client: Client, name: string, args: Record<string, unknown> = {}): Promise<T | undefined> {
  const answer = await tool(client, name, args)
  check(`${who}: ${name} succeeded${answer.ok ? '' : ` (${answer.text})`}`, answer.ok)
  return answer.ok ? (JSON.parse(answer.text) as T) : undefined
}

const dir = mkdtempSync(join(tmpdir(), 'chorus-mcp-agent-'))
const relay = new Relay({ port: 0, dataDir: dir, p2p: false, dashboard: false })
const { url } = await relay.start()
console.log(`relay at ${url}`)

const clients: Client[] = []
try {
  // Alice is a person using the relay's HTTP agent API (the `chorus` command does the same).
  const alice = new RelayAgent({ relay: url, space: SPACE, participant: 'alice' })
  await alice.call('join', { name: 'Alice', kind: 'human' })

  // Claude: an MCP client over streamable HTTP, acting as ?participant=claude.
  const claude = new Client({ name: 'claude-example', version: '1.0.0' })
  await claude.connect(new StreamableHTTPClientTransport(new URL(`${url}/spaces/${SPACE}/mcp?participant=claude`)))
  clients.push(claude)
  const { tools } = await claude.listTools()
  console.log(`claude (HTTP) sees ${tools.length} tools: ${tools.map((t) => t.name).join(', ')}`)
  check('the tools include read_inbox, claim_task, complete_task and vote', ['read_inbox', 'claim_task', 'complete_task', 'vote'].every((n) => tools.some((t) => t.name === n)))

  // Its first call joins it; nothing is waiting yet.
  const empty = await use<Results['read_inbox']>('claude', claude, 'read_inbox')
  check('claude: the inbox starts empty', empty?.messages.length === 0)

  // Codex: a second agent, over stdio through `chorus mcp` (what an MCP host configures as a command).
  const codex = new Client({ name: 'codex-example', version: '1.0.0' })
  await codex.connect(
    new StdioClientTransport({
      command: process.execPath,
      args: [CHORUS_MAIN, 'mcp'],
      env: { ...(process.env as Record<string, string>), CHORUS_RELAY: url, CHORUS_SPACE: SPACE, CHORUS_ID: 'codex' },
      stderr: 'ignore',
    }),
  )
  clients.push(codex)
  console.log(`codex (stdio) sees ${(await codex.listTools()).tools.length} tools`)
  await use('codex', codex, 'read_inbox')

  // Alice asks for work: a task, a direct message about it, a proposal.
  const parser = await alice.call('create_task', { title: 'Fix the CSV parser', description: 'Quoted fields with newlines break it', priority: 'high' })
  const docs = await alice.call('create_task', { title: 'Document the import command' })
  await alice.call('send_message', { content: `Could one of you take "${parser.title}" (${parser.id})?`, to: 'claude', priority: 'high' })
  const proposal = await alice.call('create_proposal', { title: 'Switch the build to Node 24', threshold: 0.5, quorum: 2 })
  console.log(`alice created tasks ${parser.id} and ${docs.id}, proposal ${proposal.id}, and wrote to claude`)

  // Claude reads (and acknowledges) its inbox.
  const inbox = await use<Results['read_inbox']>('claude', claude, 'read_inbox', { ack: true })
  const note = inbox?.messages.find((m) => m.from === 'alice')
  console.log(`claude read: "${note?.content ?? '(nothing)'}"`)
  check('claude: alice’s message is in the inbox and was acknowledged', note !== undefined && inbox?.acked === inbox?.messages.length)
  const again = await use<Results['read_inbox']>('claude', claude, 'read_inbox')
  check('claude: an acknowledged message is not shown again', again?.messages.length === 0)

  // Claude claims the task: a lease from the relay, with a fencing token.
  const claim = await use<Results['claim_task']>('claude', claude, 'claim_task', { task_id: parser.id, duration_ms: 30_000 })
  console.log(`claude claimed ${parser.id}: fencing token ${claim?.token}, expires ${claim === undefined ? '?' : new Date(claim.expires_at).toISOString()}`)
  check('claude: the claim has a fencing token and an expiry in the future', claim !== undefined && claim.token >= 1 && claim.expires_at > Date.now())

  // Codex tries the same task and is refused, then takes the other one.
  const refused = await tool(codex, 'claim_task', { task_id: parser.id })
  console.log(`codex claiming ${parser.id}: ${refused.text}`)
  check('codex: claiming a task claude holds is a conflict', !refused.ok && refused.text.startsWith('conflict:'))
  const codexClaim = await use<Results['claim_task']>('codex', codex, 'claim_task', { task_id: docs.id })

  // Work happens; Claude renews while it works, then completes with a result.
  const renewed = await use<Results['renew_claim']>('claude', claude, 'renew_claim', { task_id: parser.id, duration_ms: 60_000 })
  check('claude: renewing keeps the claim, with a later expiry', renewed !== undefined && claim !== undefined && renewed.token >= claim.token && renewed.expires_at >= claim.expires_at)
  const done = await use<Task>('claude', claude, 'complete_task', { task_id: parser.id, result: { fixed: true, tests_added: 3 } })
  check('claude: the task is completed by claude', done?.status === 'completed' && done.completedBy === 'claude')
  const codexDone = await use<Task>('codex', codex, 'complete_task', { task_id: docs.id, result: 'docs/import.md written' })
  check('codex: its task is completed by codex', codexClaim !== undefined && codexDone?.status === 'completed' && codexDone.completedBy === 'codex')

  // Both vote on Alice's proposal.
  const open = await use<Proposal[]>('claude', claude, 'list_proposals', { status: 'open' })
  check('claude: alice’s proposal is open', open?.some((p) => p.id === proposal.id) === true)
  const afterClaude = await use<Proposal>('claude', claude, 'vote', { proposal_id: proposal.id, vote: 'for' })
  check('claude: the vote is counted', afterClaude?.tally.for === 1)
  const afterCodex = await use<Proposal>('codex', codex, 'vote', { proposal_id: proposal.id, vote: 'for' })
  console.log(`proposal "${proposal.title}": for ${afterCodex?.tally.for}, against ${afterCodex?.tally.against}, status ${afterCodex?.status}`)
  check('codex: with both votes the proposal is approved', afterCodex?.tally.for === 2 && afterCodex.status === 'approved')

  // Claude reports back; Alice sees the result of her requests.
  await use<Message>('claude', claude, 'send_message', { content: `Fixed ${parser.id}: quoted newlines parse now, 3 tests added.`, to: 'alice' })
  const finished = (await alice.call('list_tasks', { status: 'completed' })).map((t) => t.id).sort()
  check('alice: both tasks are completed', JSON.stringify(finished) === JSON.stringify([parser.id, docs.id].sort()))
  const parserNow = (await alice.call('list_tasks', {})).find((t) => t.id === parser.id)
  check('alice: the parser task carries claude’s result', JSON.stringify(parserNow?.result) === JSON.stringify({ fixed: true, tests_added: 3 }))
  const aliceInbox = await alice.call('read_inbox', { ack: true })
  for (const m of aliceInbox.messages) console.log(`alice read from ${m.from}: "${m.content}"`)
  check('alice: claude’s report is in her inbox', aliceInbox.messages.some((m) => m.from === 'claude' && m.content.includes(parser.id)))

  const people = await use<Results['list_participants']>('claude', claude, 'list_participants')
  console.log(`in the space: ${people?.map((p) => `${p.id} (${p.kind}, ${p.presence})`).join(', ')}`)
  check('everyone is listed, the agents as ai', ['alice', 'claude', 'codex'].every((id) => people?.some((p) => p.id === id)) && people?.find((p) => p.id === 'codex')?.kind === 'ai')
} finally {
  await Promise.all(clients.map((c) => c.close()))
  await relay.stop()
  rmSync(dir, { recursive: true, force: true })
}
finish('mcp-agent')
