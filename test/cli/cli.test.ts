/**
 * The `chorus` command end to end: child processes against a real relay process, as a shell would run them. Every
 * command, its --json shape and exit code; `wait` woken by a message; two shells racing for one claim; a claim
 * held while a command runs (against a relay in this process, on a clock the test moves); durable inboxes across
 * a relay restart.
 */
import { once } from 'node:events'
import { describe, expect, it, onTestFinished } from 'vitest'
import { ManualClock, type LeaseGrant, type Message, type Participant, type Proposal, type Resource, type Task } from '@chorus/sync'
import { RelayAgent, type Held, type ParticipantView } from '@chorus/agent'
import { fixture } from '../support/relay.ts'
import { relayProcessForAll } from '../support/relay-process.ts'
import { until } from '../support/wait.ts'
import { chorus, chorusChild, relayArgs } from './chorus-command.ts'

const relay = relayProcessForAll({ args: relayArgs })

let spaces = 0
/** The environment of participant `id` in a space of its own test. */
const as = (id: string, space: string, url = relay.url): Record<string, string> => ({ CHORUS_RELAY: url, CHORUS_SPACE: space, CHORUS_ID: id })
const newSpace = (name: string): string => `${name}-${++spaces}`

/** Output collected from a long-running child, and a wait for a line matching `pattern`. */
const lines = (stream: NodeJS.ReadableStream): { text: () => string; waitFor: (pattern: RegExp) => Promise<void> } => {
  let text = ''
  const waiters: Array<() => void> = []
  stream.on('data', (d: Buffer) => {
    text += d.toString()
    for (const w of waiters.splice(0)) w()
  })
  return {
    text: () => text,
    waitFor: async (pattern) => {
      while (!pattern.test(text)) await new Promise<void>((resolve) => waiters.push(resolve))
    },
  }
}

describe('chorus', () => {
  it('join, send, inbox, who and report, with their --json shapes and exit codes', async () => {
    const space = newSpace('talk')
    const bot = as('bot', space)
    const ada = as('ada', space)
    const joined = await chorus(['join', '--name', 'Build bot', '--kind', 'ai', '--capabilities', 'build, test', '--json'], bot)
    expect(joined.code).toBe(0)
    expect(joined.json<Participant>()).toMatchObject({ id: 'bot', name: 'Build bot', kind: 'ai', capabilities: ['build', 'test'] })
    expect((await chorus(['join', '--name', 'Ada', '--kind', 'human'], ada)).stdout).toBe(`joined ${space} as ada (human, "Ada")\n`)

    const sent = await chorus(['send', 'build', 'is', 'red', '--channel', 'urgent', '--priority', 'urgent', '--json'], ada)
    expect(sent.code).toBe(0)
    expect(sent.json<Message>()).toMatchObject({ from: 'ada', channel: 'urgent', priority: 'urgent', content: 'build is red' })
    const direct = await chorus(['send', '--to', 'bot', '--json'], ada, 'from stdin\n')
    expect(direct.json<Message>()).toMatchObject({ from: 'ada', to: 'bot', content: 'from stdin' })

    const peek = await chorus(['inbox', '--json'], bot)
    expect(peek.code).toBe(0)
    const unread = peek.json<{ messages: Message[]; acked: number }>()
    expect(unread.messages.map((m) => m.content)).toEqual(['build is red', 'from stdin'])
    expect(unread.acked).toBe(0)
    expect((await chorus(['inbox'], bot)).stdout).toMatch(/ada #urgent \[urgent\]: build is red[\s\S]*ada → bot: from stdin[\s\S]*2 message\(s\)/)
    const acked = await chorus(['inbox', '--ack', '--json'], bot)
    expect(acked.json<{ acked: number }>().acked).toBe(2)
    expect((await chorus(['inbox', '--json'], bot)).json<{ messages: Message[] }>().messages).toEqual([])
    expect((await chorus(['inbox'], bot)).stdout).toBe('no unread messages\n')

    const who = await chorus(['who', '--json'], bot)
    expect(who.code).toBe(0)
    const people = who.json<ParticipantView[]>()
    expect(people.map((p) => [p.id, p.kind])).toEqual([['ada', 'human'], ['bot', 'ai']])
    expect(people.every((p) => p.presence === 'online' && typeof p.lastSeen === 'number')).toBe(true)
    expect((await chorus(['who'], bot)).stdout).toMatch(/^ada\s+human\s+online/m)

    const report = await chorus(['report'], bot)
    expect(report.code).toBe(0)
    expect(report.stdout).toContain('ACTIVE PARTICIPANTS: 2')
    expect(report.stdout).toContain('Ada: build is red')
    expect((await chorus(['report', '--json'], bot)).json<{ text: string }>().text).toContain('ACTIVITY REPORT')
  })

  it('tasks: create, list, claim, renew, release, complete, with conflict (3) and not found (4)', async () => {
    const space = newSpace('tasks')
    const bot = as('bot', space)
    const ada = as('ada', space)
    const created = await chorus(['tasks', 'create', 'Fix', 'the', 'build', '--priority', 'high', '--description', 'main is red', '--json'], ada)
    expect(created.code).toBe(0)
    const task = created.json<Task>()
    expect(task).toMatchObject({ title: 'Fix the build', priority: 'high', description: 'main is red', status: 'open', requiresHuman: false, createdBy: 'ada' })
    const human = (await chorus(['tasks', 'create', 'Sign', 'the', 'release', '--requires-human', '--json'], ada)).json<Task>()
    expect(human.requiresHuman).toBe(true)

    const listed = await chorus(['tasks', 'list', '--status', 'open', '--json'], bot)
    expect(listed.json<Task[]>().map((t) => t.id).sort()).toEqual([task.id, human.id].sort())

    const claim = await chorus(['tasks', 'claim', task.id, '--duration', '30s', '--json'], bot)
    expect(claim.code).toBe(0)
    const held = claim.json<Held & { task: Task }>()
    expect(held.token).toBeGreaterThanOrEqual(1)
    expect(held.duration_ms).toBe(30_000)
    expect(held.expires_at).toBeGreaterThan(Date.now())
    expect(held.task).toMatchObject({ id: task.id, status: 'claimed' })

    const taken = await chorus(['tasks', 'claim', task.id, '--json'], ada)
    expect(taken.code).toBe(3)
    expect(JSON.parse(taken.stderr)).toMatchObject({ error: 'conflict', exit: 3 })
    expect((await chorus(['tasks', 'claim', human.id], bot)).code).toBe(1) // an AI may not claim a task for a human: forbidden

    const renewed = (await chorus(['tasks', 'renew', task.id, '--duration', '1m', '--json'], bot)).json<Held>()
    expect(renewed.token).toBe(held.token)
    expect(renewed.expires_at).toBeGreaterThan(held.expires_at)
    const notHolder = await chorus(['tasks', 'renew', task.id, '--json'], ada)
    expect(notHolder.code).toBe(1)
    expect(JSON.parse(notHolder.stderr)).toMatchObject({ error: 'forbidden', exit: 1 })

    const released = await chorus(['tasks', 'release', task.id, '--json'], bot)
    expect(released.json<Task>().status).toBe('open')
    const again = (await chorus(['tasks', 'claim', task.id, '--json'], ada)).json<Held>()
    expect(again.token).toBeGreaterThan(held.token)
    const done = await chorus(['tasks', 'complete', task.id, '--result', '{"commit":"abc123"}', '--json'], ada)
    expect(done.code).toBe(0)
    expect(done.json<Task>()).toMatchObject({ status: 'completed', completedBy: 'ada', result: { commit: 'abc123' } })
    expect((await chorus(['tasks', 'complete', task.id], ada)).code).toBe(3)
    expect((await chorus(['tasks', 'list'], ada)).stdout).toMatch(new RegExp(`${task.id}\\s+completed.*Fix the build\\s+by ada`))

    for (const args of [['tasks', 'claim', 'no-such-task'], ['tasks', 'complete', 'no-such-task'], ['tasks', 'release', 'no-such-task']]) {
      const r = await chorus([...args, '--json'], bot)
      expect(r.code, args.join(' ')).toBe(4)
      expect(JSON.parse(r.stderr), args.join(' ')).toMatchObject({ error: 'not_found', exit: 4 })
    }
  })

  it('proposals, votes, state and locks', async () => {
    const space = newSpace('decide')
    const bot = as('bot', space)
    const ada = as('ada', space)
    const proposal = (await chorus(['propose', 'Adopt', 'the', 'new', 'CI', '--threshold', '0.5', '--quorum', '2', '--json'], bot)).json<Proposal>()
    expect(proposal).toMatchObject({ title: 'Adopt the new CI', threshold: 0.5, quorum: 2, status: 'open', proposer: 'bot' })
    const voted = await chorus(['vote', proposal.id, 'for', '--json'], ada)
    expect(voted.code).toBe(0)
    expect(voted.json<Proposal>().tally).toMatchObject({ for: 1, against: 0 })
    expect((await chorus(['vote', proposal.id, 'for', '--json'], bot)).json<Proposal>().status).toBe('approved')
    expect((await chorus(['proposals', '--status', 'approved', '--json'], ada)).json<Proposal[]>().map((p) => p.id)).toEqual([proposal.id])
    expect((await chorus(['proposals'], ada)).stdout).toMatch(/approved\s+for 2, against 0/)
    expect((await chorus(['vote', proposal.id, 'maybe'], ada)).code).toBe(2)
    expect((await chorus(['vote', 'no-such-proposal', 'for'], ada)).code).toBe(4)

    expect((await chorus(['state', 'set', 'release', '{"version":"1.4.0"}', '--json'], bot)).json()).toEqual({ key: 'release', value: { version: '1.4.0' } })
    expect((await chorus(['state', 'set', 'release', '{"frozen":true}', '--merge'], bot)).code).toBe(0)
    expect((await chorus(['state', 'set', 'motto', 'ship', 'small'], bot)).code).toBe(0)
    const one = (await chorus(['state', 'get', 'release', '--json'], ada)).json<{ key: string; value: unknown; by: string }>()
    expect(one).toMatchObject({ key: 'release', value: { version: '1.4.0', frozen: true }, by: 'bot' })
    expect((await chorus(['state', 'get', '--json'], ada)).json<{ state: Record<string, unknown> }>().state).toEqual({ release: { version: '1.4.0', frozen: true }, motto: 'ship small' })
    expect((await chorus(['state', 'get', 'nothing'], ada)).code).toBe(4)

    const lock = await chorus(['lock', 'db', '--timeout', '2m', '--json'], bot)
    expect(lock.code).toBe(0)
    const locked = lock.json<Held & { resource: Resource }>()
    expect(locked.resource).toMatchObject({ name: 'db' })
    expect(locked.token).toBeGreaterThanOrEqual(1)
    expect(locked.expires_at).toBeGreaterThan(Date.now() + 60_000)
    const refused = await chorus(['lock', 'db', '--json'], ada)
    expect(refused.code).toBe(3)
    expect(JSON.parse(refused.stderr)).toMatchObject({ error: 'locked' })
    expect((await chorus(['unlock', 'db', '--json'], ada)).code).toBe(1) // not the holder: forbidden
    expect((await chorus(['unlock', 'db', '--json'], bot)).json<Resource>().lock).toBeUndefined()
    expect((await chorus(['lock', 'db'], ada)).code).toBe(0)
    expect((await chorus(['unlock', 'nothing-here'], ada)).code).toBe(4)
  })

  it('wait returns as soon as a matching message arrives, and exits 124 when nothing does', async () => {
    const space = newSpace('wait')
    const bot = as('bot', space)
    const ada = as('ada', space)
    await chorus(['join', '--kind', 'ai'], bot)
    await chorus(['join', '--kind', 'human'], ada)
    const timedOut = await chorus(['wait', 'message', '--timeout', '300ms', '--json'], bot)
    expect(timedOut.code).toBe(124)
    expect(timedOut.json()).toEqual({ matched: false })

    // Waiting a minute for a message from ada; a message from someone else does not wake it, ada's does.
    const waiting = chorusChild(['wait', 'message', '--from', 'ada', '--timeout', '60s', '--json'], bot)
    const out = lines(waiting.stdout as NodeJS.ReadableStream)
    const exited = once(waiting, 'exit') as Promise<[number | null]>
    await chorus(['join', '--kind', 'service'], as('monitor', space))
    await chorus(['send', 'disk at 91%', '--to', 'bot'], as('monitor', space))
    await chorus(['send', 'please review #42', '--to', 'bot'], ada)
    const [code] = await exited
    expect(code).toBe(0)
    expect(JSON.parse(out.text())).toMatchObject({ matched: true, message: { from: 'ada', content: 'please review #42' } })

    // An unread message that arrived before the wait counts: no work is missed between two waits.
    const already = await chorus(['wait', '--from', 'monitor', '--timeout', '5s'], bot)
    expect(already.code).toBe(0)
    expect(already.stdout).toContain('disk at 91%')

    // Tasks: an AI waits for one it may claim; a task for a human does not wake it.
    const forTask = chorusChild(['wait', 'task', '--timeout', '60s', '--json'], bot)
    const taskOut = lines(forTask.stdout as NodeJS.ReadableStream)
    const taskExit = once(forTask, 'exit') as Promise<[number | null]>
    await chorus(['tasks', 'create', 'Sign the release', '--requires-human'], ada)
    await chorus(['tasks', 'create', 'Run the benchmarks'], ada)
    expect((await taskExit)[0]).toBe(0)
    expect(JSON.parse(taskOut.text())).toMatchObject({ matched: true, task: { title: 'Run the benchmarks' } })

    // Events: the next vote.
    const proposal = (await chorus(['propose', 'Freeze main', '--json'], ada)).json<Proposal>()
    const forEvent = chorusChild(['wait', 'event', '--type', 'vote', '--timeout', '60s', '--json'], bot)
    const eventOut = lines(forEvent.stdout as NodeJS.ReadableStream)
    const eventExit = once(forEvent, 'exit') as Promise<[number | null]>
    // Only events after the wait began count, and nothing says when the relay has it: vote (changing the vote each
    // time), one vote after the other, until the waiter has exited with one.
    let exitCode: number | null | undefined
    void eventExit.then(([c]) => (exitCode = c))
    for (let i = 0; exitCode === undefined; i++) await chorus(['vote', proposal.id, i % 2 === 0 ? 'against' : 'for'], ada)
    expect(exitCode).toBe(0)
    expect(JSON.parse(eventOut.text())).toMatchObject({ matched: true, event: { type: 'vote', participant: 'ada', ref: proposal.id } })
  })

  it('wait task wakes when a claim runs out and its task is open again', async () => {
    const space = newSpace('lapse')
    const task = (await chorus(['tasks', 'create', 'Rebuild the cache', '--json'], as('lead', space))).json<Task>()
    // Claimed for 3 s and never renewed (a holder that went away).
    expect((await chorus(['tasks', 'claim', task.id, '--duration', '3s'], as('gone', space))).code).toBe(0)
    // Under one 50 s request: only the expiry itself can wake it.
    const waited = await chorus(['wait', 'task', '--timeout', '20s', '--json'], as('bot', space))
    expect(waited.code).toBe(0)
    expect(waited.json()).toMatchObject({ matched: true, task: { id: task.id, status: 'open' } })
  })

  it('two shells racing to claim one task: one exits 0, the other 3', async () => {
    const space = newSpace('race')
    const task = (await chorus(['tasks', 'create', 'Deploy', '--json'], as('lead', space))).json<Task>()
    for (const id of ['left', 'right']) await chorus(['join', '--kind', 'ai'], as(id, space))
    const [left, right] = await Promise.all([chorus(['tasks', 'claim', task.id, '--json'], as('left', space)), chorus(['tasks', 'claim', task.id, '--json'], as('right', space))])
    expect([left.code, right.code].sort()).toEqual([0, 3])
    const winner = left.code === 0 ? 'left' : 'right'
    const list = (await chorus(['tasks', 'list', '--json'], as('lead', space))).json<Task[]>()
    expect(list[0]?.claim?.holder).toBe(winner)
  })

  it('tasks claim --hold keeps the claim while the command runs, then completes (exit 0) or releases (exit ≠ 0)', async () => {
    // A relay on the test's clock: the claim runs out only when the test moves the clock, so only the held
    // command's renewals keep it, however slowly this machine runs.
    const clock = new ManualClock()
    const local = fixture()
    onTestFinished(() => local.teardown())
    const { url } = await local.startRelay({ clock, p2p: false })
    const space = newSpace('hold')
    const lead = as('lead', space, url)
    const bot = as('bot', space, url)
    /** When the relay's grant of the claim on `task` runs out, by its clock. */
    const expiresAt = async (task: string): Promise<number> => {
      const { leases } = (await (await fetch(`${url}/spaces/${space}/leases`)).json()) as { leases: Array<{ grant: LeaseGrant; expiresAt: number }> }
      return leases.find((l) => l.grant.key === `task:${task}`)?.expiresAt ?? 0
    }
    const ok = (await chorus(['tasks', 'create', 'Build', '--json'], lead)).json<Task>()
    const bad = (await chorus(['tasks', 'create', 'Flaky', '--json'], lead)).json<Task>()
    await chorus(['join', '--kind', 'ai'], bot)

    // The command outlives several claim durations (renewed every third of one), sees its task and token, and
    // meanwhile nobody else can claim. Each step moves the clock by less than a claim and waits for the renewal
    // made after it; four steps take the clock past three claims.
    const script = 'echo "task=$CHORUS_TASK_ID token=$CHORUS_FENCING_TOKEN"; read line; echo "got $line"'
    const held = chorusChild(['tasks', 'claim', ok.id, '--duration', '300ms', '--hold', '--', 'sh', '-c', script], bot)
    const out = lines(held.stdout as NodeJS.ReadableStream)
    const exited = once(held, 'exit') as Promise<[number | null]>
    await out.waitFor(/task=\S+ token=\d+/)
    expect(out.text()).toContain(`task=${ok.id} token=`)
    const claimedAt = clock.now()
    for (let i = 0; i < 4; i++) {
      clock.advance(250)
      expect((await chorus(['tasks', 'claim', ok.id], lead)).code, `claim attempt ${i} while held`).toBe(3)
      const from = clock.now()
      await until(async () => (await expiresAt(ok.id)) >= from + 300, `a renewal of the held claim after step ${i}`)
    }
    expect(clock.now() - claimedAt).toBeGreaterThan(3 * 300)
    held.stdin?.end('finish\n')
    expect((await exited)[0]).toBe(0)
    expect(out.text()).toContain('got finish')
    const completed = (await chorus(['tasks', 'list', '--json'], lead)).json<Task[]>().find((t) => t.id === ok.id)
    expect(completed).toMatchObject({ status: 'completed', completedBy: 'bot', result: { exit_code: 0 } })

    const failed = await chorus(['tasks', 'claim', bad.id, '--hold', '--', 'sh', '-c', 'exit 7'], bot)
    expect(failed.code).toBe(7)
    expect(failed.stderr).toContain(`released ${bad.id}`)
    expect((await chorus(['tasks', 'list', '--json'], lead)).json<Task[]>().find((t) => t.id === bad.id)?.status).toBe('open')

    expect((await chorus(['tasks', 'claim', bad.id, '--hold'], bot)).code).toBe(2)
  })

  it('watch prints the events one may see as JSON lines', async () => {
    const space = newSpace('watch')
    const bot = as('bot', space)
    await chorus(['join', '--kind', 'ai'], bot)
    const watching = chorusChild(['watch', '--type', 'message,task_created'], bot)
    const out = lines(watching.stdout as NodeJS.ReadableStream)
    const err = lines(watching.stderr as NodeJS.ReadableStream)
    await err.waitFor(/watching/)
    await chorus(['send', 'hello watchers'], as('ada', space))
    await chorus(['state', 'set', 'k', '1'], as('ada', space))
    await chorus(['tasks', 'create', 'Watch me'], as('ada', space))
    await out.waitFor(/task_created/)
    const events = out
      .text()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; participant: string; data: { content?: string } })
    expect(events.map((e) => e.type)).toEqual(['message', 'task_created'])
    expect(events[0]?.data.content).toBe('hello watchers')
    const exited = once(watching, 'exit') as Promise<[number | null]>
    watching.kill('SIGINT')
    expect((await exited)[0]).toBe(0)
  })

  it('bad usage exits 2 and an unreachable relay 5, each with a clear message', async () => {
    const space = newSpace('usage')
    const cases: Array<[string[], Record<string, string>, number, RegExp]> = [
      [[], {}, 2, /Usage: chorus COMMAND/],
      [['frobnicate'], as('bot', space), 2, /unknown command "frobnicate"/],
      [['send', 'hi', '--colour', 'red'], as('bot', space), 2, /Unknown option '--colour'/],
      [['send', 'hi'], { CHORUS_RELAY: relay.url, CHORUS_ID: '' }, 2, /give --id or set CHORUS_ID/],
      [['tasks'], as('bot', space), 2, /tasks needs one of/],
      [['tasks', 'claim'], as('bot', space), 2, /missing arguments/],
      [['send', 'hi', '--priority', 'loud'], as('bot', space), 2, /--priority must be one of low, normal, high, urgent/],
      [['wait', '--timeout', 'soon'], as('bot', space), 2, /--timeout must be a duration/],
      [['send', 'x'.repeat(70_000)], as('bot', space), 2, /too large|limit/],
      [['who'], { ...as('bot', space), CHORUS_RELAY: 'http://127.0.0.1:9' }, 5, /cannot reach the relay at http:\/\/127\.0\.0\.1:9/],
      [['who'], { ...as('bot', space), CHORUS_RELAY: 'not a url' }, 2, /not a relay URL/],
    ]
    for (const [args, env, code, message] of cases) {
      const r = await chorus(args, env)
      expect(r.code, `chorus ${args.join(' ').slice(0, 40)}`).toBe(code)
      expect(`${r.stdout}${r.stderr}`, `chorus ${args.join(' ').slice(0, 40)}`).toMatch(message)
    }
    const json = await chorus(['who', '--json'], { ...as('bot', space), CHORUS_RELAY: 'http://127.0.0.1:9' })
    expect(JSON.parse(json.stderr)).toMatchObject({ error: 'unreachable', exit: 5 })
    expect((await chorus(['--space', space, '--id', 'bot', 'who', '--json'], { CHORUS_RELAY: relay.url })).code).toBe(0)
    expect((await chorus(['--help'], {})).code).toBe(0)
    expect((await chorus(['tasks', 'claim', '--help'], {})).stdout).toContain('Usage: chorus')
  })
})

describe('durable inboxes', () => {
  it('an agent away while 50 messages arrive reads each exactly once after it comes back and acks, across a relay restart', async () => {
    const space = newSpace('inbox')
    const agent = as('worker', space)
    const lead = as('lead', space)
    await chorus(['join', '--kind', 'ai', '--name', 'Worker'], agent)
    await chorus(['join', '--kind', 'human'], lead)
    // Read what there is, so the cursor has moved before the agent goes away.
    await chorus(['send', 'welcome', '--to', 'worker'], lead)
    expect((await chorus(['inbox', '--ack', '--json'], agent)).json<{ acked: number }>().acked).toBe(1)

    // The agent is gone (no process of it runs); 50 messages arrive for it, direct and on a channel it reads, sent
    // through the relay's agent API from this process.
    const sender = new RelayAgent({ relay: relay.url, space, participant: 'lead' })
    const sent: string[] = []
    for (let i = 0; i < 50; i++) {
      const content = `job ${i}`
      await sender.call('send_message', i % 5 === 0 ? { content, channel: 'technical' } : { content, to: 'worker' })
      sent.push(content)
    }
    await relay.restart()

    // Back: it peeks (nothing is marked read), then reads and acks part, then the rest.
    const peek = (await chorus(['inbox', '--json'], agent)).json<{ messages: Message[] }>()
    expect(peek.messages.map((m) => m.content)).toEqual(sent)
    const first = (await chorus(['inbox', '--ack', '--limit', '20', '--json'], agent)).json<{ messages: Message[]; acked: number }>()
    expect(first.acked).toBe(20)
    await relay.restart()
    const second = (await chorus(['inbox', '--ack', '--json'], agent)).json<{ messages: Message[]; acked: number }>()
    expect(second.acked).toBe(30)
    const read = [...first.messages, ...second.messages].map((m) => m.content)
    expect(read).toEqual(sent)
    expect(new Set([...first.messages, ...second.messages].map((m) => m.id)).size).toBe(50)
    expect((await chorus(['inbox', '--json'], agent)).json<{ messages: Message[] }>().messages).toEqual([])
  })
})
