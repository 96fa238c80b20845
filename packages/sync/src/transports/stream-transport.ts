/**
 * A Transport over a Node byte stream pair, e.g. a child process's stdin/stdout, connecting to exactly one
 * peer. Node-only.
 *
 * Framing: each message is `varUint(length)` (lib0 encoding) followed by `length` bytes. A frame longer
 * than `maxMessageBytes` (default 16 MiB), a length prefix that does not terminate, or a stream that ends
 * mid-frame closes the transport and is reported to `onError`; it never throws into the stream.
 *
 * ```ts
 * const child = spawn(process.execPath, ['agent.ts'], { stdio: ['pipe', 'pipe', 'inherit'] })
 * await replicator.attach(new StreamTransport({ readable: child.stdout, writable: child.stdin, peer: 'agent' }))
 * // and in agent.ts:
 * await replicator.attach(new StreamTransport({ readable: process.stdin, writable: process.stdout, peer: 'parent' }))
 * ```
 */
import type { Readable, Writable } from 'node:stream'
import * as encoding from 'lib0/encoding'
import { ChorusError } from '../errors.ts'
import type { PeerId, Transport, TransportListener } from './transport.ts'

export const defaultMaxMessageBytes = 16 * 1024 * 1024

// A varUint that is still going after 8 bytes (56 bits) is not a length lib0 would ever write.
const maxPrefixBytes = 8

export interface StreamTransportOptions {
  readable: Readable
  writable: Writable
  /** The PeerId of the other end. */
  peer: PeerId
  /** Largest message sent or accepted, in bytes. */
  maxMessageBytes?: number
  /** Told why the transport closed when it closed on an error (bad frame, stream error). */
  onError?: (error: Error) => void
}

export class StreamTransport implements Transport {
  readonly peer: PeerId
  readonly maxMessageBytes: number
  private readonly readable: Readable
  private readonly writable: Writable
  private readonly onError: ((error: Error) => void) | undefined
  private readonly peerSet = new Set<PeerId>()
  private listener: TransportListener | null = null
  private state: 'new' | 'open' | 'closed' = 'new'
  private failure: Error | undefined
  private resolveClosed: (error: Error | undefined) => void = () => {}
  /** Settles when the transport closes, for whatever reason, with the error that closed it if any. */
  readonly closed: Promise<Error | undefined> = new Promise((resolve) => {
    this.resolveClosed = resolve
  })
  // Frame decoder state: the length being read, then the body being filled.
  private length = 0
  private prefixBytes = 0
  private body: Uint8Array | null = null
  private filled = 0

  constructor(options: StreamTransportOptions) {
    this.readable = options.readable
    this.writable = options.writable
    this.peer = options.peer
    this.maxMessageBytes = options.maxMessageBytes ?? defaultMaxMessageBytes
    this.onError = options.onError
  }

  get peers(): ReadonlySet<PeerId> {
    return this.peerSet
  }

  /** The error that closed the transport, if one did. */
  get error(): Error | undefined {
    return this.failure
  }

  start(listener: TransportListener): Promise<void> {
    if (this.state !== 'new') return Promise.reject(new ChorusError('closed', 'a StreamTransport starts only once'))
    this.listener = listener
    this.state = 'open'
    // Error listeners stay after close: an 'error' emitted with no listener would crash the process.
    this.readable.on('error', this.onStreamError)
    this.writable.on('error', this.onStreamError)
    this.readable.on('data', this.onData)
    this.readable.on('end', this.onEnd)
    this.readable.on('close', this.onEnd)
    this.writable.on('close', this.onEnd)
    this.peerSet.add(this.peer)
    listener.status?.('connected')
    listener.peerJoined(this.peer)
    if (this.readable.readableEnded || this.readable.destroyed || this.writable.destroyed) this.onEnd()
    return Promise.resolve()
  }

  /** Throws `too_large` for a message over `maxMessageBytes`, which the other end would refuse anyway. */
  send(peer: PeerId, message: Uint8Array): void {
    if (this.state !== 'open' || peer !== this.peer) return
    if (message.length > this.maxMessageBytes) {
      throw new ChorusError('too_large', `message of ${message.length} bytes is over ${this.maxMessageBytes}`, {
        bytes: message.length,
        max: this.maxMessageBytes,
      })
    }
    // Backpressure is not applied: y-protocols has no flow control, so the writable buffers instead.
    this.writable.write(encoding.encode((e) => encoding.writeVarUint8Array(e, message)))
  }

  broadcast(message: Uint8Array): void {
    this.send(this.peer, message)
  }

  /** Ends the writable (the other end sees the stream end) and destroys the readable. */
  stop(): Promise<void> {
    // Like every transport, stop() reports peerLeft to the other end, not to its own listener.
    this.listener = null
    this.close(undefined)
    return Promise.resolve()
  }

  private readonly onData = (chunk: unknown): void => {
    if (!(chunk instanceof Uint8Array)) {
      this.close(new ChorusError('corrupt', 'the readable must deliver bytes, not strings (no setEncoding)'))
      return
    }
    let i = 0
    while (i < chunk.length && this.state === 'open') {
      if (this.body === null) {
        const byte = chunk[i++] ?? 0
        this.length += (byte & 0x7f) * 2 ** (7 * this.prefixBytes)
        this.prefixBytes++
        if (this.length > this.maxMessageBytes) {
          this.close(
            new ChorusError('too_large', `incoming frame is over ${this.maxMessageBytes} bytes`, {
              max: this.maxMessageBytes,
            }),
          )
          return
        }
        if (byte < 0x80) {
          this.body = new Uint8Array(this.length)
          this.filled = 0
        } else if (this.prefixBytes >= maxPrefixBytes) {
          this.close(new ChorusError('corrupt', 'incoming frame has a malformed length prefix'))
          return
        }
      } else {
        const n = Math.min(chunk.length - i, this.body.length - this.filled)
        this.body.set(chunk.subarray(i, i + n), this.filled)
        this.filled += n
        i += n
      }
      if (this.body !== null && this.filled === this.body.length) {
        const message = this.body
        this.body = null
        this.length = 0
        this.prefixBytes = 0
        this.listener?.message(this.peer, message)
      }
    }
  }

  private readonly onEnd = (): void => {
    const midFrame = this.body !== null || this.prefixBytes > 0
    this.close(midFrame ? new ChorusError('corrupt', 'the stream ended in the middle of a frame') : undefined)
  }

  private readonly onStreamError = (error: Error): void => {
    this.close(error)
  }

  private close(error: Error | undefined): void {
    if (this.state === 'closed') return
    const wasOpen = this.state === 'open'
    this.state = 'closed'
    const listener = this.listener
    this.listener = null
    this.body = null
    this.readable.off('data', this.onData)
    this.readable.off('end', this.onEnd)
    this.readable.off('close', this.onEnd)
    this.writable.off('close', this.onEnd)
    if (!this.writable.writableEnded && !this.writable.destroyed) this.writable.end()
    if (!this.readable.destroyed) this.readable.destroy()
    this.peerSet.clear()
    if (error !== undefined) {
      this.failure = error
      try {
        this.onError?.(error)
      } catch {
        // The report is best effort; closing must finish.
      }
    }
    if (wasOpen) {
      listener?.peerLeft(this.peer)
      listener?.status?.('disconnected')
    }
    this.resolveClosed(error)
  }
}
