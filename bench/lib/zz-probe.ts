import { Fleet, quantile } from './fanout-clients.ts'
import { startServer, type ServerKind } from './fanout-server.ts'

const [kind, spaces, per, writers, updates, mode, arg] = process.argv.slice(2)
const server = await startServer(kind as ServerKind, { nodeArgs: process.env.SRVPROF ? ['--cpu-prof', '--cpu-prof-dir=' + process.env.SRVPROF] : [] })
const fleet = new Fleet({ client: (process.env.CLIENT ?? 'raw') as 'raw',
  spaces: Number(spaces), clientsPerSpace: Number(per), writersPerSpace: Number(writers),
  wsBase: server.wsBase, room: (i) => `bench-${i}`, failed: server.failed, serverCpuMs: server.cpuMs,
  onProgress: (m) => console.error(m),
})
try {
  let t = performance.now()
  await fleet.connect()
  console.log('connect ms', (performance.now() - t).toFixed(0), 'rss', (server.rssBytes() / 2 ** 20).toFixed(0))
  await fleet.run(20, { kind: 'rate', perWriterPerSecond: 20 })
  t = performance.now()
  const pace = mode === 'w' ? { kind: 'window' as const, perWriter: Number(arg) } : { kind: 'rate' as const, perWriterPerSecond: Number(arg) }
  const r = await fleet.run(Number(updates), pace)
  console.log(kind, 'deliv', r.deliveries, 'wall', r.wallMs.toFixed(0), 'send', r.sendMs.toFixed(0), 'deliv/s', (r.deliveries / r.wallMs * 1000).toFixed(0),
    'p50', quantile(r.latencies, 0.5).toFixed(2), 'p99', quantile(r.latencies, 0.99).toFixed(2), 'srvcpu', r.serverCpuMs.toFixed(0), 'clicpu', r.clientCpuMs.toFixed(0))
} finally {
  t0: {
    const t = performance.now()
    await fleet.close()
    await server.stop()
    console.log('close ms', (performance.now() - t).toFixed(0))
  }
}
