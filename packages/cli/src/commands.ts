/**
 * The commands. Each reads its arguments, performs one operation through the relay's agent API (or, for `watch`
 * and `mcp`, holds a connection) and prints the result: text for people, one JSON line with `--json`.
 */
import { RelayAgent, type Input, type OperationName, type Results } from '@chorus/agent'
import { EVENT_TYPES, PRIORITIES, PROPOSAL_STATUSES, TASK_STATUSES, VOTES, type EventType } from '@chorus/sync/vocabulary'
import { EXIT, UsageError } from './exit-codes.ts'
import { messageLine, participantLine, proposalLine, taskLine, until, waitLine } from './format.ts'
import { holdClaim } from './hold.ts'
import { durationMs, integerOf, jsonOrText, numberOf, stringOf, timeOf, type Connection, type Values } from './options.ts'
import { watchEvents } from './watch.ts'

export interface Io {
  out(line: string): void
  err(line: string): void
  /** Everything on stdin, or undefined when stdin is a terminal. */
  stdin(): Promise<string | undefined>
  /** Aborted on SIGINT/SIGTERM. */
  signal: AbortSignal
}

export interface CommandContext {
  conn: Connection
  io: Io
  /** Arguments after `--` (the command `tasks claim --hold` runs). */
  rest: string[]
  env: Readonly<Record<string, string | undefined>>
}

type Options = Record<string, { type: 'string' | 'boolean'; short?: string }>

export interface Command {
  usage: string
  summary: string
  options: Options
  run(values: Values, args: string[], ctx: CommandContext): Promise<number>
}

export const agentOf = (conn: Connection): RelayAgent => {
  if (conn.id === undefined) throw new UsageError('who are you? give --id or set CHORUS_ID (with tokens, the token’s participant)')
  return new RelayAgent({ relay: conn.relay, space: conn.space, participant: conn.id, ...(conn.token === undefined ? {} : { token: conn.token }) })
}

/** Performs `name` and prints its result (`text` for people). */
async function perform<N extends OperationName>(ctx: CommandContext, name: N, input: Input<N>, text: (r: Results[N]) => string): Promise<Results[N]> {
  const result = await agentOf(ctx.conn).call(name, input, { signal: ctx.io.signal })
  ctx.io.out(ctx.conn.json ? JSON.stringify(result) : text(result))
  return result
}

const oneOf = <T extends string>(value: string | undefined, allowed: readonly T[], what: string): T | undefined => {
  if (value === undefined) return undefined
  if (!(allowed as readonly string[]).includes(value)) throw new UsageError(`${what} must be one of ${allowed.join(', ')}, not "${value}"`)
  return value as T
}

const needs = (args: string[], count: number, usage: string): void => {
  if (args.length < count) throw new UsageError(`missing arguments: chorus ${usage}`)
}

const opt = <K extends string, V>(key: K, value: V | undefined): Partial<Record<K, V>> => (value === undefined ? {} : ({ [key]: value } as Record<K, V>))

const tasks: Record<string, Command> = {
  create: {
    usage: 'tasks create TITLE [--description TEXT] [--priority P] [--requires-human]',
    summary: 'create a task',
    options: { description: { type: 'string' }, priority: { type: 'string' }, 'requires-human': { type: 'boolean' } },
    run: async (v, args, ctx) => {
      needs(args, 1, tasks.create?.usage ?? '')
      await perform(
        ctx,
        'create_task',
        {
          title: args.join(' '),
          ...opt('description', stringOf(v, 'description')),
          ...opt('priority', oneOf(stringOf(v, 'priority'), PRIORITIES, '--priority')),
          ...opt('requires_human', v['requires-human'] === true ? true : undefined),
        },
        (t) => `created task ${t.id}: ${t.title}`,
      )
      return EXIT.ok
    },
  },
  list: {
    usage: 'tasks list [--status open|claimed|completed]',
    summary: 'list tasks',
    options: { status: { type: 'string' } },
    run: async (v, _args, ctx) => {
      await perform(ctx, 'list_tasks', { ...opt('status', oneOf(stringOf(v, 'status'), TASK_STATUSES, '--status')) }, (ts) =>
        ts.length === 0 ? 'no tasks' : ts.map(taskLine).join('\n'),
      )
      return EXIT.ok
    },
  },
  claim: {
    usage: 'tasks claim ID [--duration 60s] [--hold -- COMMAND ...]',
    summary: 'claim a task (with --hold: keep the claim while COMMAND runs, complete it if COMMAND succeeds)',
    options: { duration: { type: 'string' }, hold: { type: 'boolean' } },
    run: async (v, args, ctx) => {
      needs(args, 1, tasks.claim?.usage ?? '')
      const duration = stringOf(v, 'duration')
      const input = { task_id: args[0] as string, ...opt('duration_ms', duration === undefined ? undefined : durationMs(duration, '--duration')) }
      if (v.hold === true) {
        if (ctx.rest.length === 0) throw new UsageError('--hold needs a command after --: chorus tasks claim ID --hold -- make test')
        return holdClaim(agentOf(ctx.conn), input, ctx)
      }
      if (ctx.rest.length > 0) throw new UsageError(`a command after -- is run only with --hold`)
      await perform(ctx, 'claim_task', input, (c) => `claimed ${c.task.id} (fencing token ${c.token}, until ${until(c.expires_at)})`)
      return EXIT.ok
    },
  },
  renew: {
    usage: 'tasks renew ID [--duration 60s]',
    summary: 'renew your claim',
    options: { duration: { type: 'string' } },
    run: async (v, args, ctx) => {
      needs(args, 1, tasks.renew?.usage ?? '')
      const duration = stringOf(v, 'duration')
      await perform(
        ctx,
        'renew_claim',
        { task_id: args[0] as string, ...opt('duration_ms', duration === undefined ? undefined : durationMs(duration, '--duration')) },
        (c) => `renewed ${c.task.id} (fencing token ${c.token}, until ${until(c.expires_at)})`,
      )
      return EXIT.ok
    },
  },
  release: {
    usage: 'tasks release ID',
    summary: 'give a claimed task back',
    options: {},
    run: async (_v, args, ctx) => {
      needs(args, 1, tasks.release?.usage ?? '')
      await perform(ctx, 'release_claim', { task_id: args[0] as string }, (t) => `released ${t.id}`)
      return EXIT.ok
    },
  },
  complete: {
    usage: 'tasks complete ID [--result JSON]',
    summary: 'complete a task you hold',
    options: { result: { type: 'string' } },
    run: async (v, args, ctx) => {
      needs(args, 1, tasks.complete?.usage ?? '')
      const result = stringOf(v, 'result')
      await perform(ctx, 'complete_task', { task_id: args[0] as string, ...(result === undefined ? {} : { result: jsonOrText(result) as never }) }, (t) => `completed ${t.id}`)
      return EXIT.ok
    },
  },
}

const state: Record<string, Command> = {
  get: {
    usage: 'state get [KEY]',
    summary: 'read one key of the shared state, or all of it',
    options: {},
    run: async (_v, args, ctx) => {
      await perform(ctx, 'get_state', { ...opt('key', args[0]) }, (r) => JSON.stringify('state' in r ? r.state : r.value, null, 2))
      return EXIT.ok
    },
  },
  set: {
    usage: 'state set KEY VALUE [--merge]',
    summary: 'set a key (VALUE is JSON, or else text)',
    options: { merge: { type: 'boolean' } },
    run: async (v, args, ctx) => {
      needs(args, 2, state.set?.usage ?? '')
      await perform(ctx, 'set_state', { key: args[0] as string, value: jsonOrText(args.slice(1).join(' ')) as never, ...opt('mode', v.merge === true ? ('merge' as const) : undefined) }, (r) =>
        `${r.key} = ${JSON.stringify(r.value)}`,
      )
      return EXIT.ok
    },
  },
}

/** Commands with sub-commands dispatch on their first argument. */
const group = (name: string, subs: Record<string, Command>, summary: string): Command => ({
  usage: `${name} ${Object.keys(subs).join('|')} ...`,
  summary,
  options: Object.assign({}, ...Object.values(subs).map((c) => c.options)) as Options,
  run: (v, args, ctx) => {
    const sub = args[0] === undefined ? undefined : subs[args[0]]
    if (sub === undefined) throw new UsageError(`chorus ${name} needs one of: ${Object.values(subs).map((c) => c.usage).join('; ')}`)
    return sub.run(v, args.slice(1), ctx)
  },
})

export const COMMANDS: Record<string, Command> = {
  join: {
    usage: 'join [--name NAME] [--kind ai|human|computer|service] [--capabilities a,b]',
    summary: 'join the space (or update your name, kind and capabilities)',
    options: { name: { type: 'string' }, kind: { type: 'string' }, capabilities: { type: 'string' } },
    run: async (v, _args, ctx) => {
      const capabilities = stringOf(v, 'capabilities')
      await perform(
        ctx,
        'join',
        {
          ...opt('name', stringOf(v, 'name')),
          ...opt('kind', oneOf(stringOf(v, 'kind'), ['human', 'ai', 'computer', 'service'] as const, '--kind')),
          ...opt('capabilities', capabilities?.split(',').map((c) => c.trim()).filter((c) => c !== '')),
        },
        (p) => `joined ${ctx.conn.space} as ${p.id} (${p.kind}, "${p.name}")`,
      )
      return EXIT.ok
    },
  },
  send: {
    usage: 'send TEXT... [--channel C] [--to ID] [--priority low|normal|high|urgent] [--reply-to ID]   (TEXT from stdin when not given)',
    summary: 'send a message',
    options: { channel: { type: 'string' }, to: { type: 'string' }, priority: { type: 'string' }, 'reply-to': { type: 'string' } },
    run: async (v, args, ctx) => {
      const content = args.length > 0 ? args.join(' ') : (await ctx.io.stdin())?.replace(/\n$/, '')
      if (content === undefined || content === '') throw new UsageError('nothing to send: chorus send TEXT..., or pipe the text in')
      await perform(
        ctx,
        'send_message',
        {
          content,
          ...opt('channel', stringOf(v, 'channel')),
          ...opt('to', stringOf(v, 'to')),
          ...opt('priority', oneOf(stringOf(v, 'priority'), PRIORITIES, '--priority')),
          ...opt('reply_to', stringOf(v, 'reply-to')),
        },
        (m) => `sent ${m.id}`,
      )
      return EXIT.ok
    },
  },
  inbox: {
    usage: 'inbox [--ack] [--limit N]',
    summary: 'your unread messages, oldest first (--ack: mark them read; they are not shown again)',
    options: { ack: { type: 'boolean' }, limit: { type: 'string' } },
    run: async (v, _args, ctx) => {
      await perform(ctx, 'read_inbox', { ...opt('ack', v.ack === true ? true : undefined), ...opt('limit', integerOf(v, 'limit')) }, (r) =>
        r.messages.length === 0 ? 'no unread messages' : [...r.messages.map(messageLine), `${r.messages.length} message(s)${r.acked > 0 ? `, ${r.acked} marked read` : ''}`].join('\n'),
      )
      return EXIT.ok
    },
  },
  wait: {
    usage: 'wait [message|task|event] [--timeout 60s] [--from ID] [--channel C] [--priority P] [--type EVENT] [--requires-human|--no-requires-human]',
    summary: 'block until a message for you, an open task or an event arrives (exit 124 when the timeout passes first)',
    options: {
      timeout: { type: 'string' },
      from: { type: 'string' },
      channel: { type: 'string' },
      priority: { type: 'string' },
      type: { type: 'string' },
      'requires-human': { type: 'boolean' },
      'no-requires-human': { type: 'boolean' },
    },
    run: async (v, args, ctx) => {
      const what = oneOf(args[0] ?? 'message', ['message', 'task', 'event'] as const, 'what to wait for') ?? 'message'
      const timeout = durationMs(stringOf(v, 'timeout') ?? '60s', '--timeout')
      const requiresHuman = v['requires-human'] === true ? true : v['no-requires-human'] === true ? false : undefined
      const result = await agentOf(ctx.conn).call(
        'wait_for',
        {
          for: what,
          timeout_ms: timeout,
          ...opt('from', stringOf(v, 'from')),
          ...opt('channel', stringOf(v, 'channel')),
          ...opt('priority', oneOf(stringOf(v, 'priority'), PRIORITIES, '--priority')),
          ...opt('type', oneOf(stringOf(v, 'type'), EVENT_TYPES, '--type')),
          ...opt('requires_human', requiresHuman),
        },
        { signal: ctx.io.signal },
      )
      if (ctx.conn.json) ctx.io.out(JSON.stringify(result))
      if (!result.matched) {
        if (!ctx.conn.json) ctx.io.err(`nothing within ${timeout / 1000}s`)
        return EXIT.timeout
      }
      if (!ctx.conn.json) ctx.io.out(waitLine(result))
      return EXIT.ok
    },
  },
  tasks: group('tasks', tasks, 'create, list, claim, renew, release and complete tasks'),
  propose: {
    usage: 'propose TITLE [--description TEXT] [--threshold 0.75] [--quorum N] [--deadline TIME]',
    summary: 'propose something to vote on',
    options: { description: { type: 'string' }, threshold: { type: 'string' }, quorum: { type: 'string' }, deadline: { type: 'string' } },
    run: async (v, args, ctx) => {
      needs(args, 1, COMMANDS.propose?.usage ?? '')
      const deadline = stringOf(v, 'deadline')
      await perform(
        ctx,
        'create_proposal',
        {
          title: args.join(' '),
          ...opt('description', stringOf(v, 'description')),
          ...opt('threshold', numberOf(v, 'threshold')),
          ...opt('quorum', integerOf(v, 'quorum')),
          ...opt('deadline_ms', deadline === undefined ? undefined : timeOf(deadline, '--deadline')),
        },
        (p) => `proposed ${p.id}: ${p.title}`,
      )
      return EXIT.ok
    },
  },
  vote: {
    usage: 'vote PROPOSAL_ID for|against|abstain',
    summary: 'vote on a proposal',
    options: {},
    run: async (_v, args, ctx) => {
      needs(args, 2, COMMANDS.vote?.usage ?? '')
      await perform(ctx, 'vote', { proposal_id: args[0] as string, vote: oneOf(args[1], VOTES, 'the vote') ?? 'abstain' }, proposalLine)
      return EXIT.ok
    },
  },
  proposals: {
    usage: 'proposals [--status open|approved|rejected|expired]',
    summary: 'list proposals and their tallies',
    options: { status: { type: 'string' } },
    run: async (v, _args, ctx) => {
      await perform(ctx, 'list_proposals', { ...opt('status', oneOf(stringOf(v, 'status'), PROPOSAL_STATUSES, '--status')) }, (ps) =>
        ps.length === 0 ? 'no proposals' : ps.map(proposalLine).join('\n'),
      )
      return EXIT.ok
    },
  },
  state: group('state', state, 'read and write the shared state'),
  lock: {
    usage: 'lock RESOURCE [--timeout 5m]',
    summary: 'lock a shared resource (by name or id; created if missing)',
    options: { timeout: { type: 'string' } },
    run: async (v, args, ctx) => {
      needs(args, 1, COMMANDS.lock?.usage ?? '')
      const timeout = stringOf(v, 'timeout')
      await perform(
        ctx,
        'lock_resource',
        { resource: args[0] as string, ...opt('timeout_ms', timeout === undefined ? undefined : durationMs(timeout, '--timeout')) },
        (l) => `locked ${l.resource.name} (fencing token ${l.token}, until ${until(l.expires_at)})`,
      )
      return EXIT.ok
    },
  },
  unlock: {
    usage: 'unlock RESOURCE',
    summary: 'unlock a resource you hold',
    options: {},
    run: async (_v, args, ctx) => {
      needs(args, 1, COMMANDS.unlock?.usage ?? '')
      await perform(ctx, 'unlock_resource', { resource: args[0] as string }, (r) => `unlocked ${r.name}`)
      return EXIT.ok
    },
  },
  who: {
    usage: 'who',
    summary: 'who is in the space, and who is online',
    options: {},
    run: async (_v, _args, ctx) => {
      await perform(ctx, 'list_participants', {}, (ps) => (ps.length === 0 ? 'nobody yet' : ps.map(participantLine).join('\n')))
      return EXIT.ok
    },
  },
  watch: {
    usage: 'watch [--type EVENT,...]',
    summary: 'print the events you may see as JSON lines, until interrupted',
    options: { type: { type: 'string' } },
    run: async (v, _args, ctx) => {
      const types = stringOf(v, 'type')?.split(',').map((t) => oneOf(t.trim(), EVENT_TYPES, '--type') as EventType)
      return watchEvents(ctx, types)
    },
  },
  report: {
    usage: 'report',
    summary: "the space's activity report",
    options: {},
    run: async (_v, _args, ctx) => {
      await perform(ctx, 'report', {}, (r) => r.text)
      return EXIT.ok
    },
  },
}
