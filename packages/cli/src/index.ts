/** @chorus/cli: the `chorus` command as a function, for embedding and tests. */
export { run } from './cli.ts'
export { COMMANDS, type Command } from './commands.ts'
export type { CommandContext, Io } from './context.ts'
export { EXIT, exitCodeOf, UsageError } from './exit-codes.ts'
