/**
 * The baseline server of the fan-out benchmark: the stock y-websocket server (`@y/websocket-server`'s
 * `setupWSConnection`, as its own `server.js` wires it) on 127.0.0.1, a free port, no persistence.
 *
 *   node bench/lib/fanout-stock-server.ts
 *
 * Prints one line to stdout once it listens, `stock y-websocket server listening on http://127.0.0.1:PORT`
 * (the relay's CLI prints the same shape). SIGTERM or SIGINT closes every socket and exits 0.
 */
import { once } from 'node:events'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { WebSocketServer } from 'ws'
import { setupWSConnection } from '@y/websocket-server/utils'

const HOST = '127.0.0.1'

// As in @y/websocket-server's server.js: upgrades on any path, the path (minus its leading '/') names the room.
const wss = new WebSocketServer({ noServer: true })
wss.on('connection', setupWSConnection)

const server = createServer((_req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain' })
  res.end('okay')
})
server.on('upgrade', (req, socket, head) => {
  wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req))
})

let stopping = false
const stop = (): void => {
  if (stopping) process.exit(1)
  stopping = true
  for (const ws of wss.clients) ws.terminate()
  wss.close()
  server.closeAllConnections()
  server.close(() => process.exit(0))
  // setupWSConnection's per-connection ping timers are cleared on close; exit anyway if something lingers.
  setTimeout(() => process.exit(0), 2_000).unref()
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)

server.listen(0, HOST)
await once(server, 'listening')
const { port } = server.address() as AddressInfo
process.stdout.write(`stock y-websocket server listening on http://${HOST}:${port}\n`)
