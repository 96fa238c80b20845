/**
 * The relay as a real process (`node relay/src/main.ts`): the one stdout line, /health, a graceful SIGTERM that
 * exits 0 on its own (nothing left open), and exit code 2 for bad configuration. Plus parseConfig itself.
 */
import { spawnSync } from 'node:child_process'
import { createServer, type AddressInfo } from 'node:net'
import { describe, expect, it } from 'vitest'
import { ConfigError, DEFAULT_PORT, isLoopbackHost, parseConfig } from '@chorus/relay'
import { fixtureForTest, health, synced } from '../support/relay.ts'
import { LISTENING, RELAY_MAIN, relayProcessForTest } from '../support/relay-process.ts'
import { ROOT } from '../support/paths.ts'
import { tempDir } from '../support/temp.ts'
import { until } from '../support/wait.ts'

describe('relay process', () => {
  it('prints its URL once ready, serves /health, and exits 0 on SIGTERM', async () => {
    const relay = await relayProcessForTest()
    expect(relay.lines[0], relay.stderr()).toMatch(LISTENING)
    expect(relay.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    const url = relay.url
    expect(relay.port).toBeGreaterThan(0)

    expect(await health(url)).toEqual({ status: 'ok', spaces: 0, connections: 0 })
    const p = fixtureForTest().provider(url, 'team')
    await synced(p)
    p.doc.getMap('state').set('k', 1)
    await until(async () => (await health(url)).connections === 1, 'one connection')

    const exit = await relay.stop('SIGTERM')
    expect(exit.code, relay.stderr()).toBe(0)
    expect(relay.lines).toHaveLength(1)
    // It drained by itself rather than being forced out by the safety timer.
    expect(relay.stderr()).not.toMatch(/still keeps the process alive/)
  })

  it('exits 2 with a clear message for a bad port, a non-loopback host or an unknown flag', () => {
    const data = tempDir('chorus-relay-cli-')
    const run = (...args: string[]) =>
      spawnSync(process.execPath, [RELAY_MAIN, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 15_000, env: { ...process.env, CHORUS_DATA: data } })
    const badPort = run('--port', 'http')
    expect(badPort.status).toBe(2)
    expect(badPort.stderr).toMatch(/invalid port "http": expected an integer from 0 to 65535/)
    expect(badPort.stdout).toBe('')

    const open = run('--host', '0.0.0.0')
    expect(open.status).toBe(2)
    expect(open.stderr).toMatch(/refusing to listen on non-loopback host "0\.0\.0\.0".*--insecure/s)

    const unknown = run('--bogus')
    expect(unknown.status).toBe(2)
    expect(unknown.stderr).toMatch(/--bogus/)
  })

  it('exits 1 saying which flag to change when the libp2p port is taken', async () => {
    const busy = createServer()
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve))
    const { port } = busy.address() as AddressInfo
    try {
      const r = spawnSync(process.execPath, [RELAY_MAIN, '--port', '0', '--data', tempDir('chorus-relay-cli-'), '--p2p-listen', `/ip4/127.0.0.1/tcp/${port}`], { cwd: ROOT, encoding: 'utf8', timeout: 15_000 })
      expect(r.status).toBe(1)
      expect(r.stdout).toBe('')
      expect(r.stderr).toMatch(new RegExp(`could not listen on /ip4/127.0.0.1/tcp/${port} \\(.*EADDRINUSE.*\\): choose other addresses with --p2p-listen, or run none with --no-p2p`))
    } finally {
      busy.close()
    }
  })
})

describe('parseConfig', () => {
  it('takes flags over environment over defaults', () => {
    expect(parseConfig([], {})).toEqual({
      help: false,
      config: { host: '127.0.0.1', port: DEFAULT_PORT, dataDir: '.data/relay', insecure: false },
    })
    const env = { CHORUS_HOST: 'localhost', CHORUS_PORT: '9000', CHORUS_DATA: '/var/lib/chorus' }
    expect(parseConfig([], env)).toMatchObject({ config: { host: 'localhost', port: 9000, dataDir: '/var/lib/chorus' } })
    expect(parseConfig(['--port=0', '--data', 'd', '--host', '[::1]'], env)).toMatchObject({
      config: { host: '::1', port: 0, dataDir: 'd' },
    })
    expect(parseConfig([], { CHORUS_PORT: '' })).toMatchObject({ config: { port: DEFAULT_PORT } })
    expect(parseConfig(['--help'], {})).toEqual({ help: true })
    expect(parseConfig(['--p2p-listen', '/ip4/127.0.0.1/tcp/9001, /ip4/127.0.0.1/tcp/9002/ws'], {})).toMatchObject({
      config: { p2p: ['/ip4/127.0.0.1/tcp/9001', '/ip4/127.0.0.1/tcp/9002/ws'] },
    })
    expect(parseConfig([], { CHORUS_P2P_LISTEN: '/ip4/0.0.0.0/tcp/4001' })).toMatchObject({ config: { p2p: ['/ip4/0.0.0.0/tcp/4001'] } })
    expect(parseConfig(['--no-p2p'], {})).toMatchObject({ config: { p2p: false } })
    expect(() => parseConfig(['--p2p-listen', 'tcp:9001'], {})).toThrow(/invalid --p2p-listen/)
    expect(() => parseConfig(['--no-p2p', '--p2p-listen', '/ip4/127.0.0.1/tcp/1'], {})).toThrow(/contradict/)
    expect(parseConfig(['--dashboard', 'web/dist'], {})).toMatchObject({ config: { dashboard: 'web/dist' } })
    expect(parseConfig([], { CHORUS_DASHBOARD: '/srv/chorus' })).toMatchObject({ config: { dashboard: '/srv/chorus' } })
    expect(parseConfig(['--no-dashboard'], { CHORUS_DASHBOARD: '/srv/chorus' })).toMatchObject({ config: { dashboard: false } })
    expect(() => parseConfig(['--no-dashboard', '--dashboard', 'x'], {})).toThrow(/contradict/)
    expect(() => parseConfig(['--dashboard', ' '], {})).toThrow(/must name a folder/)
  })

  it('takes --store (or CHORUS_STORE) as sqlite:PATH, and leaves the default to the --data folder', () => {
    expect(parseConfig(['--data', 'd'], {})).toEqual({ help: false, config: { host: '127.0.0.1', port: DEFAULT_PORT, dataDir: 'd', insecure: false } })
    expect(parseConfig(['--store', 'sqlite:/var/lib/chorus'], {})).toMatchObject({ config: { storage: 'sqlite:/var/lib/chorus', dataDir: '.data/relay' } })
    expect(parseConfig([], { CHORUS_STORE: 'sqlite:store' })).toMatchObject({ config: { storage: 'sqlite:store' } })
    expect(parseConfig(['--store', 'sqlite:flag'], { CHORUS_STORE: 'sqlite:env' })).toMatchObject({ config: { storage: 'sqlite:flag' } })
    for (const [spec, message] of [
      ['postgres://u:p@host/db', /invalid --store: unknown storage engine "postgres"; expected sqlite:PATH \(a folder\)$/],
      ['/var/lib/chorus', /invalid --store: "\/var\/lib\/chorus" names no storage engine; expected sqlite:PATH/],
      ['sqlite:', /invalid --store: sqlite: needs a folder/],
    ] as const) {
      expect(() => parseConfig(['--store', spec], {}), spec).toThrow(ConfigError)
      expect(() => parseConfig(['--store', spec], {}), spec).toThrow(message)
      expect(() => parseConfig(['--store', spec], {}), spec).not.toThrow(/:p@|secret/)
    }
  })

  it('refuses bad values with ConfigError (exit code 2)', () => {
    for (const port of ['-1', '65536', '1.5', 'abc', '', ' 80']) {
      expect(() => parseConfig(['--port', port], {}), port).toThrow(ConfigError)
    }
    expect(() => parseConfig([], { CHORUS_PORT: '99999' })).toThrow(/invalid port "99999"/)
    expect(() => parseConfig(['extra'], {})).toThrow(ConfigError)
    expect(() => parseConfig(['--data', ' '], {})).toThrow(ConfigError)
    try {
      parseConfig(['--host', '::'], {})
      expect.unreachable()
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError)
      expect((e as ConfigError).exitCode).toBe(2)
    }
    expect(parseConfig(['--host', '0.0.0.0', '--insecure'], {})).toMatchObject({ config: { host: '0.0.0.0', insecure: true } })
  })

  it('knows loopback hosts', () => {
    for (const host of ['127.0.0.1', '127.1.2.3', 'localhost', 'LOCALHOST', '::1', '[::1]', '::ffff:127.0.0.1']) {
      expect(isLoopbackHost(host), host).toBe(true)
    }
    for (const host of ['0.0.0.0', '::', '10.0.0.1', 'example.com', '::ffff:10.0.0.1', '128.0.0.1']) {
      expect(isLoopbackHost(host), host).toBe(false)
    }
  })
})
