#!/usr/bin/env node
/** The `chorus` command (see cli.ts). */
import { run } from './cli.ts'

const controller = new AbortController()
let interrupted = 0
const interrupt = (): void => {
  // A second Ctrl-C gives up on a clean stop.
  if (++interrupted > 1) process.exit(130)
  controller.abort()
}
process.on('SIGINT', interrupt)
process.on('SIGTERM', interrupt)

const readStdin = async (): Promise<string | undefined> => {
  if (process.stdin.isTTY) return undefined
  let text = ''
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) text += chunk.toString('utf8')
  return text
}

const code = await run(process.argv.slice(2), process.env, {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  stdin: readStdin,
  signal: controller.signal,
})
process.exitCode = code
// Let stdout drain, then leave even if a socket or timer lingers.
process.stdout.write('', () => process.exit(code))
