import { Fleet, quantile } from './fanout-clients.ts'
import { startServer, type ServerKind } from './fanout-server.ts'
const [kind, spaces, per, writers, updates, rate, reps] = process.argv.slice(2)
const server = await startServer(kind as ServerKind)
const fleet = new Fleet({ client: (process.env.CLIENT ?? 'raw') as 'raw',
  spaces: Number(spaces), clientsPerSpace: Number(per), writersPerSpace: Number(writers),
  wsBase: server.wsBase, room: (i) => `bench-${i}`, failed: server.failed, serverCpuMs: server.cpuMs })
try {
  await fleet.connect()
  for (let i = 0; i < Number(reps); i++) {
    const r = await fleet.run(Number(updates), { kind: 'rate', perWriterPerSecond: Number(rate) })
    console.log(kind, i, 'deliv/s', (r.deliveries / r.wallMs * 1000).toFixed(0), 'p50', quantile(r.latencies, 0.5).toFixed(2), 'p90', quantile(r.latencies, 0.9).toFixed(2), 'p99', quantile(r.latencies, 0.99).toFixed(2), 'max', quantile(r.latencies, 1).toFixed(1), 'srvcpu', r.serverCpuMs.toFixed(0), 'clicpu', r.clientCpuMs.toFixed(0))
  }
} finally { await fleet.close(); await server.stop() }
