/**
 * A diagnostic server for the fan-out benchmark (`bench/relay.ts --diagnose`): the Chorus relay with an in-memory
 * store instead of node:sqlite, so the difference to the real relay is what persisting every update costs.
 *
 *   node bench/lib/fanout-relay-memory.ts --data DIR
 *
 * DIR still holds the relay's key and lease files. Prints `chorus relay (memory store) listening on
 * http://127.0.0.1:PORT` once it listens; SIGTERM or SIGINT stops it and exits 0.
 */
import { parseArgs } from 'node:util'
import { MemoryStore } from '@chorus/sync'
import { Relay, stderrLogger } from '@chorus/relay'

const { values } = parseArgs({ options: { data: { type: 'string' } } })
if (values.data === undefined) {
  process.stderr.write('usage: node bench/lib/fanout-relay-memory.ts --data DIR\n')
  process.exit(2)
}

const relay = new Relay({ host: '127.0.0.1', port: 0, dataDir: values.data, store: new MemoryStore(), logger: stderrLogger })
let stopping = false
const stop = (): void => {
  if (stopping) process.exit(1)
  stopping = true
  relay.stop().then(
    () => process.exit(0),
    (e: unknown) => {
      process.stderr.write(`could not stop: ${e instanceof Error ? e.message : String(e)}\n`)
      process.exit(1)
    },
  )
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)

const { url } = await relay.start()
process.stdout.write(`chorus relay (memory store) listening on ${url}\n`)
