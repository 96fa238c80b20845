/**
 * One libp2p stream carrying whole messages, each prefixed with its length (an unsigned varint, as
 * `lpStream` in @libp2p/utils writes it). Reading is event driven: every complete message is handed to
 * `onMessage` as soon as its last byte arrives, so nothing piles up on the reading side, and the sender's
 * window (yamux) is what paces it. Writing honours backpressure: when the stream asks for a drain, further
 * messages wait in a queue, and a peer that lets more than `maxQueuedBytes` pile up is cut off (it resyncs
 * when it connects again, so nothing is lost).
 */
import { LengthPrefixedDecoder } from '@libp2p/utils'
import type { Stream, StreamMessageEvent } from '@libp2p/interface'
import * as encoding from 'lib0/encoding'
import { ChorusError } from '@chorus/sync'

export interface FramedStreamOptions {
  maxMessageBytes: number
  maxQueuedBytes: number
}

export class FramedStream {
  readonly stream: Stream
  private readonly options: FramedStreamOptions
  private readonly decoder: LengthPrefixedDecoder
  private readonly queue: Uint8Array[] = []
  private queued = 0
  private draining = false
  private closed = false
  /** Each whole message, in order; may be replaced as the stream moves from its handshake to its use. */
  onMessage: (message: Uint8Array) => void = () => undefined
  /** Once, when the stream is gone (closed by either side, reset, or cut off); `error` says why if not clean. */
  onClose: (error: Error | undefined) => void = () => undefined

  constructor(stream: Stream, options: FramedStreamOptions) {
    this.stream = stream
    this.options = options
    // The decoder's buffer limit applies to each chunk as it arrives, and one chunk may hold many messages (as
    // much as the muxer's window): what bounds memory is the per-message limit, checked on each length prefix.
    this.decoder = new LengthPrefixedDecoder({ maxDataLength: options.maxMessageBytes, maxBufferSize: Number.MAX_SAFE_INTEGER })
    stream.addEventListener('message', this.onData)
    stream.addEventListener('close', this.onStreamClose)
    // The remote is done writing: the stream is of no further use to either side.
    stream.addEventListener('remoteCloseWrite', this.onRemoteCloseWrite)
  }

  get isOpen(): boolean {
    return !this.closed
  }

  /** Queue one message; throws `too_large` over the limit (the stream stays usable). */
  send(message: Uint8Array): void {
    if (this.closed) return
    if (message.length > this.options.maxMessageBytes) {
      throw new ChorusError('too_large', `message of ${message.length} bytes is over the limit of ${this.options.maxMessageBytes} bytes`)
    }
    const framed = encoding.encode((e) => encoding.writeVarUint8Array(e, message))
    if (!this.draining && this.queue.length === 0) {
      this.write(framed)
      return
    }
    this.queue.push(framed)
    this.queued += framed.length
    if (this.queued > this.options.maxQueuedBytes) {
      this.abort(new Error(`peer too slow: over ${this.options.maxQueuedBytes} bytes waiting to be sent`))
    }
  }

  /** Close our side and let the remote finish; `abort` for when it must end now. */
  close(): void {
    if (this.closed) return
    this.finish(undefined)
    this.stream.close().catch(() => this.stream.abort(new Error('close failed')))
  }

  abort(error: Error): void {
    if (this.closed) return
    this.finish(error)
    this.stream.abort(error)
  }

  private write(framed: Uint8Array): void {
    let accepted: boolean
    try {
      accepted = this.stream.send(framed)
    } catch (e) {
      this.abort(e instanceof Error ? e : new Error(String(e)))
      return
    }
    if (!accepted) this.awaitDrain()
  }

  private awaitDrain(): void {
    this.draining = true
    this.stream.onDrain().then(
      () => {
        this.draining = false
        while (!this.closed && !this.draining) {
          const next = this.queue.shift()
          if (next === undefined) break
          this.queued -= next.length
          this.write(next)
        }
      },
      (e: unknown) => this.abort(e instanceof Error ? e : new Error(String(e))),
    )
  }

  private readonly onData = (event: StreamMessageEvent): void => {
    if (this.closed) return
    try {
      for (const message of this.decoder.decode(event.data)) {
        this.onMessage(message.subarray())
        if (this.closed) return
      }
    } catch (e) {
      this.abort(new ChorusError('too_large', `bad frame from peer: ${(e as Error).message}`))
    }
  }

  private readonly onRemoteCloseWrite = (): void => this.close()

  private readonly onStreamClose = (event: Event): void => {
    const error = (event as Event & { error?: Error }).error
    this.finish(error)
  }

  private finish(error: Error | undefined): void {
    if (this.closed) return
    this.closed = true
    this.queue.length = 0
    this.queued = 0
    this.stream.removeEventListener('message', this.onData)
    this.stream.removeEventListener('remoteCloseWrite', this.onRemoteCloseWrite)
    this.stream.removeEventListener('close', this.onStreamClose)
    this.onClose(error)
  }
}
