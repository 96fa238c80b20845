import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { PassThrough } from 'node:stream'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { Awareness } from 'y-protocols/awareness'
import * as encoding from 'lib0/encoding'
import { MemoryNetwork } from '@chorus/sync/testing'
import { runTransportTests } from '@chorus/sync/testing/suites'
import { Replicator, type PeerId, type TransportListener } from '@chorus/sync'
import { StreamTransport } from '@chorus/sync/stream'
import { nextTurn } from '../support/wait.ts'

runTransportTests('MemoryNetwork, delivered by hand in random order', () => {
  const net = new MemoryNetwork({ seed: 1 })
  return Promise.resolve({
    a: net.transport('a'),
    b: net.transport('b'),
    c: net.transport('c'),
    deliver: () => {
      net.deliverAll()
    },
    teardown: () => Promise.resolve(),
  })
})

runTransportTests('MemoryNetwork, autoDeliver', () => {
  const net = new MemoryNetwork({ seed: 2, autoDeliver: true })
  const teardown = (): Promise<void> => Promise.resolve()
  return Promise.resolve({ a: net.transport('a'), b: net.transport('b'), c: net.transport('c'), teardown })
})

const streamPair = (): { a: StreamTransport; b: StreamTransport; streams: PassThrough[] } => {
  const aToB = new PassThrough()
  const bToA = new PassThrough()
  return {
    a: new StreamTransport({ readable: bToA, writable: aToB, peer: 'b' }),
    b: new StreamTransport({ readable: aToB, writable: bToA, peer: 'a' }),
    streams: [aToB, bToA],
  }
}

runTransportTests('StreamTransport over a PassThrough pair', () => {
  const { a, b, streams } = streamPair()
  const teardown = (): Promise<void> => {
    for (const s of streams) s.destroy()
    return Promise.resolve()
  }
  return Promise.resolve({ a, b, teardown })
})

/** A StreamTransport reading what the test writes to `input`, and the errors it reports. */
function fedTransport(options: { maxMessageBytes?: number } = {}): { input: PassThrough; errors: Error[]; t: StreamTransport } {
  const input = new PassThrough()
  const errors: Error[] = []
  const t = new StreamTransport({ readable: input, writable: new PassThrough(), peer: 'p', maxMessageBytes: options.maxMessageBytes, onError: (e) => errors.push(e) })
  return { input, errors, t }
}

class Log implements TransportListener {
  joined: PeerId[] = []
  left: PeerId[] = []
  messages: Uint8Array[] = []
  peerJoined(peer: PeerId): void {
    this.joined.push(peer)
  }
  peerLeft(peer: PeerId): void {
    this.left.push(peer)
  }
  message(_peer: PeerId, message: Uint8Array): void {
    this.messages.push(message)
  }
}

describe('StreamTransport framing', () => {
  it('reassembles frames split at every byte and several frames in one chunk', async () => {
    const input = new PassThrough()
    const t = new StreamTransport({ readable: input, writable: new PassThrough(), peer: 'p' })
    const log = new Log()
    await t.start(log)
    const frames = [new Uint8Array([1, 2, 3]), new Uint8Array(300).fill(9), new Uint8Array(0)]
    const wire = encoding.encode((e) => {
      for (const f of frames) encoding.writeVarUint8Array(e, f)
    })
    for (const byte of wire.subarray(0, 10)) input.write(new Uint8Array([byte]))
    input.write(wire.subarray(10))
    await nextTurn()
    expect(log.messages).toEqual(frames)
    await t.stop()
  })

  it('closes with too_large on an oversize frame instead of allocating it', async () => {
    const { input, errors, t } = fedTransport({ maxMessageBytes: 1024 })
    const log = new Log()
    await t.start(log)
    input.write(encoding.encode((e) => encoding.writeVarUint(e, 2 ** 40)))
    await once(input, 'close')
    expect(errors.map((e) => (e as { code?: string }).code)).toEqual(['too_large'])
    expect(log.left).toEqual(['p'])
    expect(t.peers.size).toBe(0)
    expect(() => t.send('p', new Uint8Array(2048))).not.toThrow()
  })

  it('closes with corrupt on a length prefix that never ends', async () => {
    const { input, errors, t } = fedTransport({ maxMessageBytes: Number.MAX_SAFE_INTEGER })
    await t.start(new Log())
    input.write(new Uint8Array(12).fill(0x80))
    await once(input, 'close')
    expect(errors.map((e) => (e as { code?: string }).code)).toEqual(['corrupt'])
  })

  it('reports a stream that ends mid-frame', async () => {
    const { input, errors, t } = fedTransport()
    const log = new Log()
    await t.start(log)
    input.end(new Uint8Array([5, 1, 2]))
    await once(input, 'close')
    expect(errors.map((e) => (e as { code?: string }).code)).toEqual(['corrupt'])
    expect(log.left).toEqual(['p'])
  })

  it('refuses to send a message over maxMessageBytes', async () => {
    const t = new StreamTransport({
      readable: new PassThrough(),
      writable: new PassThrough(),
      peer: 'p',
      maxMessageBytes: 10,
    })
    await t.start(new Log())
    expect(() => t.send('p', new Uint8Array(11))).toThrow(/over 10/)
    await t.stop()
  })
})

describe('StreamTransport between processes', () => {
  it('a parent and a child process sync a doc over the child stdin/stdout', async () => {
    const src = (path: string): string => fileURLToPath(new URL(`../../packages/sync/src/${path}`, import.meta.url))
    // The child writes its part, waits for the parent's, acknowledges, and exits once the parent hangs up:
    // a clean exit shows stop() left no handle open on its side either.
    const child = `
      import * as Y from 'yjs'
      import { Awareness } from 'y-protocols/awareness'
      import { Replicator } from ${JSON.stringify(src('sync/replicator.ts'))}
      import { StreamTransport } from ${JSON.stringify(src('transports/stream-transport.ts'))}
      const doc = new Y.Doc()
      const awareness = new Awareness(doc)
      const replicator = new Replicator(doc, awareness)
      const m = doc.getMap('m')
      m.set('child', 'hello from the child')
      m.observe(() => { if (m.get('parent') !== undefined && !m.has('ack')) m.set('ack', m.get('parent')) })
      const transport = new StreamTransport({
        readable: process.stdin, writable: process.stdout, peer: 'parent',
        onError: (e) => { console.error(e); process.exitCode = 3 },
      })
      await replicator.attach(transport)
      await transport.closed
      await replicator.stop()
      doc.destroy()
    `
    const proc = spawn(process.execPath, ['--input-type=module', '-e', child], {
      cwd: fileURLToPath(new URL('../..', import.meta.url)),
      stdio: ['pipe', 'pipe', 'inherit'],
    })
    const exited = once(proc, 'exit')
    const doc = new Y.Doc()
    const awareness = new Awareness(doc)
    const replicator = new Replicator(doc, awareness)
    const m = doc.getMap<string>('m')
    const errors: Error[] = []
    const transport = new StreamTransport({
      readable: proc.stdout,
      writable: proc.stdin,
      peer: 'child',
      onError: (e) => errors.push(e),
    })
    try {
      const acked = new Promise<void>((resolve) => {
        m.observe(() => {
          if (m.get('ack') === 'hi child') resolve()
        })
      })
      await replicator.attach(transport)
      await replicator.whenSynced('child')
      expect(m.get('child')).toBe('hello from the child')
      m.set('parent', 'hi child')
      await acked
      await replicator.detach(transport)
      const [code] = (await exited) as [number | null, NodeJS.Signals | null]
      expect(code).toBe(0)
      expect(errors).toEqual([])
      expect(replicator.stats.malformed).toBe(0)
    } finally {
      proc.kill()
      await replicator.stop()
      awareness.destroy()
    }
  })
})
