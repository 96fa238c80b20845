/**
 * The commands. Each reads its arguments, performs one operation through the relay's agent API (or, for `watch`
 * and `mcp`, holds a connection) and prints the result: text for people, one JSON line with `--json`.
 */
import type { Input, OperationName, Results } from '@chorus/agent'
import { EVENT_TYPES, PARTICIPANT_KINDS, PRIORITIES, PROPOSAL_STATUSES, TASK_STATUSES, VOTES, type EventType } from '@chorus/sync/vocabulary'
import { agentOf, type CommandContext } from './context.ts'
import { EXIT, UsageError } from './exit-codes.ts'
import { messageLine, participantLine, proposalLine, taskLine, until, waitLine } from './format.ts'
import { holdClaim } from './hold.ts'
import { durationMs, integerOf, jsonOrText, numberOf, stringOf, timeOf, type Values } from './options.ts'
import { watchEvents } from './watch.ts'

type Options = Record<string, { type: 'string' | 'boolean'; short?: string }>

export interface Command {
  usage: string
  summary: string
  options: Options
  run(values: Values, args: string[], ctx: CommandContext): Promise<number>
}

const oneOf = <T extends string>(value: string | undefined, allowed: readonly T[], what: string): T | undefined => {
  if (value === undefined) return undefined
  if (!(allowed as readonly string[]).includes(value)) throw new UsageError(`${what} must be one of ${allowed.join(', ')}, not "${value}"`)
  return value as T
}

const needs = (args: string[], count: number, usage: string): void => {
  if (args.length < count) throw new UsageError(`missing arguments: chorus ${usage}`)
}

// Inputs may carry undefined fields: they are left out of the JSON sent to the relay.
/** A duration flag (`--duration 30s`) in ms, if given. */
const durationOf = (v: Values, name: string): number | undefined => {
  const text = stringOf(v, name)
  return text === undefined ? undefined : durationMs(text, `--${name}`)
}

/** Performs `name` and prints its result (`text` for people, the result as one JSON line with --json). */
async function perform<N extends OperationName>(ctx: CommandContext, name: N, input: Input<N>, text: (r: Results[N]) => string): Promise<void> {
  const result = await agentOf(ctx.conn).call(name, input, { signal: ctx.io.signal })
  ctx.io.out(ctx.conn.json ? JSON.stringify(result) : text(result))
}

/** A command that performs one operation: `input` reads its command line (at least `args` arguments). */
function operation<N extends OperationName>(spec: {
  usage: string
  summary: string
  options?: Options
  args?: number
  name: N
  input: (v: Values, args: string[], ctx: CommandContext) => Input<N> | Promise<Input<N>>
  text: (result: Results[N], ctx: CommandContext) => string
}): Command {
  return {
    usage: spec.usage,
    summary: spec.summary,
    options: spec.options ?? {},
    run: async (v, args, ctx) => {
      needs(args, spec.args ?? 0, spec.usage)
      await perform(ctx, spec.name, await spec.input(v, args, ctx), (r) => spec.text(r, ctx))
      return EXIT.ok
    },
  }
}

const claimUsage = 'tasks claim ID [--duration 60s] [--hold -- COMMAND ...]'
const heldText = (verb: string) => (c: Results['claim_task']) => `${verb} ${c.task.id} (fencing token ${c.token}, until ${until(c.expires_at)})`

const tasks: Record<string, Command> = {
  create: operation({
    usage: 'tasks create TITLE [--description TEXT] [--priority P] [--requires-human]',
    summary: 'create a task',
    options: { description: { type: 'string' }, priority: { type: 'string' }, 'requires-human': { type: 'boolean' } },
    args: 1,
    name: 'create_task',
    input: (v, args) => ({
      title: args.join(' '),
      description: stringOf(v, 'description'),
      priority: oneOf(stringOf(v, 'priority'), PRIORITIES, '--priority'),
      requires_human: v['requires-human'] === true ? true : undefined,
    }),
    text: (t) => `created task ${t.id}: ${t.title}`,
  }),
  list: operation({
    usage: 'tasks list [--status open|claimed|completed]',
    summary: 'list tasks',
    options: { status: { type: 'string' } },
    name: 'list_tasks',
    input: (v) => ({ status: oneOf(stringOf(v, 'status'), TASK_STATUSES, '--status') }),
    text: (ts) => (ts.length === 0 ? 'no tasks' : ts.map(taskLine).join('\n')),
  }),
  claim: {
    usage: claimUsage,
    summary: 'claim a task (with --hold: keep the claim while COMMAND runs, complete it if COMMAND succeeds)',
    options: { duration: { type: 'string' }, hold: { type: 'boolean' } },
    run: async (v, args, ctx) => {
      needs(args, 1, claimUsage)
      const input = { task_id: args[0] as string, duration_ms: durationOf(v, 'duration') }
      if (v.hold === true) {
        if (ctx.rest.length === 0) throw new UsageError('--hold needs a command after --: chorus tasks claim ID --hold -- make test')
        return holdClaim(agentOf(ctx.conn), input, ctx)
      }
      if (ctx.rest.length > 0) throw new UsageError(`a command after -- is run only with --hold`)
      await perform(ctx, 'claim_task', input, heldText('claimed'))
      return EXIT.ok
    },
  },
  renew: operation({
    usage: 'tasks renew ID [--duration 60s]',
    summary: 'renew your claim',
    options: { duration: { type: 'string' } },
    args: 1,
    name: 'renew_claim',
    input: (v, args) => ({ task_id: args[0] as string, duration_ms: durationOf(v, 'duration') }),
    text: heldText('renewed'),
  }),
  release: operation({
    usage: 'tasks release ID',
    summary: 'give a claimed task back',
    args: 1,
    name: 'release_claim',
    input: (_v, args) => ({ task_id: args[0] as string }),
    text: (t) => `released ${t.id}`,
  }),
  complete: operation({
    usage: 'tasks complete ID [--result JSON]',
    summary: 'complete a task you hold',
    options: { result: { type: 'string' } },
    args: 1,
    name: 'complete_task',
    input: (v, args) => {
      const result = stringOf(v, 'result')
      return { task_id: args[0] as string, result: result === undefined ? undefined : (jsonOrText(result) as never) }
    },
    text: (t) => `completed ${t.id}`,
  }),
}

const state: Record<string, Command> = {
  get: operation({
    usage: 'state get [KEY]',
    summary: 'read one key of the shared state, or all of it',
    name: 'get_state',
    input: (_v, args) => ({ key: args[0] }),
    text: (r) => JSON.stringify('state' in r ? r.state : r.value, null, 2),
  }),
  set: operation({
    usage: 'state set KEY VALUE [--merge]',
    summary: 'set a key (VALUE is JSON, or else text)',
    options: { merge: { type: 'boolean' } },
    args: 2,
    name: 'set_state',
    input: (v, args) => ({ key: args[0] as string, value: jsonOrText(args.slice(1).join(' ')) as never, mode: v.merge === true ? ('merge' as const) : undefined }),
    text: (r) => `${r.key} = ${JSON.stringify(r.value)}`,
  }),
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
  join: operation({
    usage: 'join [--name NAME] [--kind ai|human|computer|service] [--capabilities a,b]',
    summary: 'join the space (or update your name, kind and capabilities)',
    options: { name: { type: 'string' }, kind: { type: 'string' }, capabilities: { type: 'string' } },
    name: 'join',
    input: (v) => ({
      name: stringOf(v, 'name'),
      kind: oneOf(stringOf(v, 'kind'), PARTICIPANT_KINDS, '--kind'),
      capabilities: stringOf(v, 'capabilities')?.split(',').map((c) => c.trim()).filter((c) => c !== ''),
    }),
    text: (p, ctx) => `joined ${ctx.conn.space} as ${p.id} (${p.kind}, "${p.name}")`,
  }),
  send: operation({
    usage: 'send TEXT... [--channel C] [--to ID] [--priority low|normal|high|urgent] [--reply-to ID]   (TEXT from stdin when not given)',
    summary: 'send a message',
    options: { channel: { type: 'string' }, to: { type: 'string' }, priority: { type: 'string' }, 'reply-to': { type: 'string' } },
    name: 'send_message',
    input: async (v, args, ctx) => {
      const content = args.length > 0 ? args.join(' ') : (await ctx.io.stdin())?.replace(/\n$/, '')
      if (content === undefined || content === '') throw new UsageError('nothing to send: chorus send TEXT..., or pipe the text in')
      return {
        content,
        channel: stringOf(v, 'channel'),
        to: stringOf(v, 'to'),
        priority: oneOf(stringOf(v, 'priority'), PRIORITIES, '--priority'),
        reply_to: stringOf(v, 'reply-to'),
      }
    },
    text: (m) => `sent ${m.id}`,
  }),
  inbox: operation({
    usage: 'inbox [--ack] [--limit N]',
    summary: 'your unread messages, oldest first (--ack: mark them read; they are not shown again)',
    options: { ack: { type: 'boolean' }, limit: { type: 'string' } },
    name: 'read_inbox',
    input: (v) => ({ ack: v.ack === true ? true : undefined, limit: integerOf(v, 'limit') }),
    text: (r) =>
      r.messages.length === 0 ? 'no unread messages' : [...r.messages.map(messageLine), `${r.messages.length} message(s)${r.acked > 0 ? `, ${r.acked} marked read` : ''}`].join('\n'),
  }),
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
          from: stringOf(v, 'from'),
          channel: stringOf(v, 'channel'),
          priority: oneOf(stringOf(v, 'priority'), PRIORITIES, '--priority'),
          type: oneOf(stringOf(v, 'type'), EVENT_TYPES, '--type'),
          requires_human: requiresHuman,
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
  propose: operation({
    usage: 'propose TITLE [--description TEXT] [--threshold 0.75] [--quorum N] [--deadline TIME]',
    summary: 'propose something to vote on',
    options: { description: { type: 'string' }, threshold: { type: 'string' }, quorum: { type: 'string' }, deadline: { type: 'string' } },
    args: 1,
    name: 'create_proposal',
    input: (v, args) => {
      const deadline = stringOf(v, 'deadline')
      return {
        title: args.join(' '),
        description: stringOf(v, 'description'),
        threshold: numberOf(v, 'threshold'),
        quorum: integerOf(v, 'quorum'),
        deadline_ms: deadline === undefined ? undefined : timeOf(deadline, '--deadline'),
      }
    },
    text: (p) => `proposed ${p.id}: ${p.title}`,
  }),
  vote: operation({
    usage: 'vote PROPOSAL_ID for|against|abstain',
    summary: 'vote on a proposal',
    args: 2,
    name: 'vote',
    input: (_v, args) => ({ proposal_id: args[0] as string, vote: oneOf(args[1], VOTES, 'the vote') ?? 'abstain' }),
    text: proposalLine,
  }),
  proposals: operation({
    usage: 'proposals [--status open|approved|rejected|expired]',
    summary: 'list proposals and their tallies',
    options: { status: { type: 'string' } },
    name: 'list_proposals',
    input: (v) => ({ status: oneOf(stringOf(v, 'status'), PROPOSAL_STATUSES, '--status') }),
    text: (ps) => (ps.length === 0 ? 'no proposals' : ps.map(proposalLine).join('\n')),
  }),
  state: group('state', state, 'read and write the shared state'),
  lock: operation({
    usage: 'lock RESOURCE [--timeout 5m]',
    summary: 'lock a shared resource (by name or id; created if missing)',
    options: { timeout: { type: 'string' } },
    args: 1,
    name: 'lock_resource',
    input: (v, args) => ({ resource: args[0] as string, timeout_ms: durationOf(v, 'timeout') }),
    text: (l) => `locked ${l.resource.name} (fencing token ${l.token}, until ${until(l.expires_at)})`,
  }),
  unlock: operation({
    usage: 'unlock RESOURCE',
    summary: 'unlock a resource you hold',
    args: 1,
    name: 'unlock_resource',
    input: (_v, args) => ({ resource: args[0] as string }),
    text: (r) => `unlocked ${r.name}`,
  }),
  who: operation({
    usage: 'who',
    summary: 'who is in the space, and who is online',
    name: 'list_participants',
    input: () => ({}),
    text: (ps) => (ps.length === 0 ? 'nobody yet' : ps.map(participantLine).join('\n')),
  }),
  watch: {
    usage: 'watch [--type EVENT,...]',
    summary: 'print the events you may see as JSON lines, until interrupted',
    options: { type: { type: 'string' } },
    run: async (v, _args, ctx) => {
      const types = stringOf(v, 'type')?.split(',').map((t) => oneOf(t.trim(), EVENT_TYPES, '--type') as EventType)
      return watchEvents(ctx, types)
    },
  },
  report: operation({
    usage: 'report',
    summary: "the space's activity report",
    name: 'report',
    input: () => ({}),
    text: (r) => r.text,
  }),
}
