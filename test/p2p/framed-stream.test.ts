/**
 * FramedStream over a real libp2p stream (two nodes on loopback TCP, yamux): writes wait for the reader, whole
 * messages arrive in order, and a reader that stops reading gets cut off once too much waits for it.
 */
import { afterEach, describe, expect, it } from 'vitest'
import type { Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { ChorusPeer, ephemeralPeerKey, FramedStream } from '@chorus/p2p'
import { until } from '../support/wait.ts'

const PROTOCOL = '/chorus-test/framed/1.0.0'
const peers: ChorusPeer[] = []
afterEach(async () => {
  for (const p of peers.splice(0)) await p.stop()
})

/** A sender and a receiver whose inbound streams are paused at once (the reader never reads). */
async function pair(): Promise<{ open: () => Promise<Stream>; inbound: Stream[] }> {
  const [a, b] = await Promise.all([0, 1].map(async () => ChorusPeer.start({ key: await ephemeralPeerKey(), mdns: false, pubsubDiscovery: false })))
  if (a === undefined || b === undefined) throw new Error('no peers')
  peers.push(a, b)
  const inbound: Stream[] = []
  await b.node.handle(PROTOCOL, (stream) => {
    stream.pause()
    inbound.push(stream)
  })
  await a.dial(b.multiaddrs[0] as string)
  return { open: () => a.node.dialProtocol(peerIdFromString(b.peerId), PROTOCOL), inbound }
}

const message = (i: number, size: number): Uint8Array => new Uint8Array(size).fill(i % 251)

describe('FramedStream on libp2p', () => {
  it('holds what the reader has not taken at the sender, in order, without loss or error', async () => {
    const { open, inbound } = await pair()
    const sender = new FramedStream(await open(), { maxMessageBytes: 1 << 20, maxQueuedBytes: 64 << 20 })
    const count = 64
    const size = 32 * 1024
    for (let i = 0; i < count; i++) sender.send(message(i, size))
    await until(() => inbound.length === 1, 'the stream to reach the receiver')
    // 2 MiB sent to a reader that does not read: yamux's window (256 KiB) fills and the rest waits at the sender,
    // which stops writing until the stream drains.
    await until(() => sender.stream.writableNeedsDrain, 'the sender to be held back')
    const receiver = inbound[0] as Stream
    expect(receiver.readBufferLength).toBeLessThan(count * size)
    expect(sender.isOpen).toBe(true)
    expect(sender.stream.status).toBe('open')
  })

  it('cuts off a peer that lets more than maxQueuedBytes pile up, and says why', async () => {
    const { open, inbound } = await pair()
    const sender = new FramedStream(await open(), { maxMessageBytes: 1 << 20, maxQueuedBytes: 1 << 20 })
    let closedWith: Error | undefined
    sender.onClose = (error) => {
      closedWith = error
    }
    await until(() => inbound.length === 1 || sender.stream.status !== 'open', 'the stream to open')
    for (let i = 0; i < 128 && sender.isOpen; i++) sender.send(message(i, 64 * 1024))
    expect(sender.isOpen).toBe(false)
    expect(closedWith?.message).toMatch(/peer too slow: over 1048576 bytes waiting/)
    expect(sender.stream.status).toBe('aborted')
  })

  it('refuses a message over its limit without closing the stream', async () => {
    const { open } = await pair()
    const sender = new FramedStream(await open(), { maxMessageBytes: 1024, maxQueuedBytes: 1 << 20 })
    expect(() => sender.send(new Uint8Array(1025))).toThrow(/over the limit of 1024 bytes/)
    expect(sender.isOpen).toBe(true)
  })
})
