/**
 * `chorus COMMAND [ARGS] [--relay URL] [--space NAME] [--id ID] [--token TOKEN] [--json]`: reads the command line,
 * runs the command and returns the exit code (0 ok, 2 usage, 3 conflict, 4 not found, 5 relay unreachable,
 * 124 wait timed out, 1 anything else). Errors go to stderr; with --json as one JSON line.
 */
import { isChorusError } from '@chorus/sync/vocabulary'
import { COMMANDS } from './commands.ts'
import type { CommandContext, Io } from './context.ts'
import { EXIT, exitCodeOf, UsageError } from './exit-codes.ts'
import { connection, GLOBAL_OPTIONS, parse } from './options.ts'
import { CLI_VERSION } from './version.ts'

const usage = (): string =>
  [
    'Usage: chorus COMMAND [ARGS] [--relay URL] [--space NAME] [--id ID] [--token TOKEN] [--json]',
    '',
    'Commands:',
    ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`),
    `  ${'mcp'.padEnd(10)} serve the MCP tools over stdio (for MCP clients)`,
    '',
    'Each of them with --help shows its arguments.',
    'Configuration: --relay, --space, --id, --token, or CHORUS_RELAY (default http://127.0.0.1:8550),',
    'CHORUS_SPACE (default "default"), CHORUS_ID, CHORUS_TOKEN.',
    'Exit codes: 0 ok, 2 usage, 3 conflict (already claimed or locked), 4 not found, 5 relay unreachable,',
    '124 wait timed out, 1 other errors.',
  ].join('\n')

/** Global options that take a value, so `chorus --id bot join` finds `join`. */
const VALUED = new Set(Object.entries(GLOBAL_OPTIONS).filter(([, o]) => o.type === 'string').map(([n]) => `--${n}`))

/** Where the command is: the first argument that is neither an option nor the value of a global option; -1 if none. */
const commandIndex = (args: readonly string[]): number => {
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string
    if (!a.startsWith('-')) return i
    if (VALUED.has(a)) i++
  }
  return -1
}

export async function run(argv: readonly string[], env: Readonly<Record<string, string | undefined>>, io: Io): Promise<number> {
  const split = argv.indexOf('--')
  const args = split === -1 ? [...argv] : argv.slice(0, split)
  const rest = split === -1 ? [] : argv.slice(split + 1)
  const at = commandIndex(args)
  const name = at === -1 ? undefined : args[at]
  let json = args.includes('--json')
  try {
    if (name === undefined) {
      if (args.includes('--version')) {
        io.out(CLI_VERSION)
        return EXIT.ok
      }
      if (args.includes('--help') || args.includes('-h') || args.length === 0) {
        io.out(usage())
        return args.length === 0 ? EXIT.usage : EXIT.ok
      }
      throw new UsageError('no command given; chorus --help lists them')
    }
    const commandArgs = args.filter((_a, i) => i !== at)
    if (name === 'mcp') {
      const { values } = parse(commandArgs, {})
      const { serveMcp } = await import('./mcp-stdio.ts')
      return await serveMcp({ conn: connection(values, env), io, rest, env })
    }
    const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined
    if (command === undefined) throw new UsageError(`unknown command "${name}"; chorus --help lists them`)
    const { values, positionals } = parse(commandArgs, command.options)
    if (values.help === true) {
      io.out(`Usage: chorus ${command.usage}\n\n${command.summary}`)
      return EXIT.ok
    }
    const conn = connection(values, env)
    json = conn.json
    const ctx: CommandContext = { conn, io, rest, env }
    return await command.run(values, positionals, ctx)
  } catch (e) {
    const code = exitCodeOf(e)
    const message = e instanceof Error ? e.message : String(e)
    if (json) io.err(JSON.stringify({ error: isChorusError(e) ? e.code : e instanceof UsageError ? 'usage' : code === EXIT.unreachable ? 'unreachable' : 'failed', message, exit: code }))
    else io.err(`chorus: ${message}`)
    // Not the caller's doing: CHORUS_DEBUG=1 shows the stack for a bug report.
    if (code === EXIT.failed && !isChorusError(e) && e instanceof Error && e.stack !== undefined && env.CHORUS_DEBUG !== undefined) io.err(e.stack)
    return code
  }
}
