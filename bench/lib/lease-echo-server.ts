/**
 * The baseline of the lease benchmark: a WebSocket server that answers each JSON frame with `{id, ok: true}`.
 * It parses and serializes like the relay's `/leases` endpoint but decides nothing, signs nothing and stores
 * nothing, so the lease figures divided by its figures show what arbitration, signing and fsync cost on top of
 * a loopback round trip. Prints `echo listening on http://HOST:PORT`; stops on SIGTERM.
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { WebSocketServer, type RawData } from 'ws'

const server = createServer((_req, res) => res.writeHead(404).end())
const wss = new WebSocketServer({ server, path: '/leases' })
wss.on('connection', (ws) => {
  ws.on('message', (data) => {
    const req = JSON.parse(textOf(data)) as { id: number }
    ws.send(JSON.stringify({ id: req.id, ok: true }))
  })
})
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo
  process.stdout.write(`echo listening on http://127.0.0.1:${port}\n`)
})
process.on('SIGTERM', () => {
  for (const ws of wss.clients) ws.terminate()
  wss.close()
  server.close(() => process.exit(0))
})

function textOf(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8')
  return (Buffer.isBuffer(data) ? data : Buffer.from(new Uint8Array(data))).toString('utf8')
}
