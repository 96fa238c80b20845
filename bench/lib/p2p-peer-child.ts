/**
 * A peer child of the p2p benchmark: runs a `PeerHost` (p2p-peer-host.ts) and answers the bench's `Call`s over
 * the IPC channel (`node bench/lib/p2p-peer-child.ts LABEL`, spawned by p2p-children.ts). Says `{ ready: true }`
 * once loaded; stops its members and exits after the `stop` call, or when the bench goes away.
 */
import { PeerHost } from './p2p-peer-host.ts'
import type { Reply, Request } from './p2p-protocol.ts'

const label = process.argv[2] ?? `peer ${process.pid}`
const host = new PeerHost(label)

const send = (message: Reply | { ready: true }): void => {
  if (process.connected) process.send?.(message)
}

const leave = (): void => {
  // Everything is closed by now; if some handle still holds the loop, do not linger.
  setTimeout(() => process.exit(0), 3_000).unref()
  if (process.connected) process.disconnect()
}

process.on('message', (message: Request) => {
  const { id, call } = message
  host.handle(call).then(
    (result) => {
      send({ id, result })
      if (call.op === 'stop') leave()
    },
    (e: unknown) => send({ id, error: e instanceof Error ? (e.stack ?? e.message) : String(e) }),
  )
})

// The bench exited (or crashed) without a stop: clean up anyway.
process.on('disconnect', () => {
  host.stop().finally(() => setTimeout(() => process.exit(0), 1_000).unref()).catch(() => undefined)
})

send({ ready: true })
