/** @chorus/cli: the `chorus` command as a function, for embedding and tests. */
export { run } from './cli.ts'
export { COMMANDS, type Command, type CommandContext, type Io } from './commands.ts'
export { EXIT, exitCodeOf, UsageError } from './exit-codes.ts'
