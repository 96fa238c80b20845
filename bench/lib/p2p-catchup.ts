/**
 * The large space of the p2p catch-up benchmark, and getting it onto the relay.
 *
 * The space is built as in bench/lib/build.ts (`buildSpace`, 'runs' mix: 10 writers, runs of 100 messages of 200
 * bytes, through `space.messages.send` in transactions of 1000 messages), keeping each transaction's update as well
 * as the whole state: the relay takes at most 16 MiB per WebSocket frame, less than a 100k-message space, so it is
 * uploaded one transaction at a time.
 */
import WebSocket from 'ws'
import * as Y from 'yjs'
import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import * as syncProtocol from 'y-protocols/sync'
import { encodeSyncUpdate, ManualClock, Space } from '@chorus/sync'
import { content, RUN_LENGTH, WRITERS } from './build.ts'
import { covers } from './p2p-peer-host.ts'

const BATCH = 1000
const START = 1_700_000_000_000
const writerClient = (w: number): number => 1_000_001 + w

export interface BigSpace {
  /** Y.encodeStateAsUpdate of the whole space. */
  update: Uint8Array
  /** One update per transaction of `BATCH` messages, in order. */
  chunks: Uint8Array[]
  /** The newest message's content. */
  last: string
  /** Hex state vector of the space. */
  sv: string
  ms: number
}

export const buildBigSpace = (n: number, onProgress?: (done: number) => void): BigSpace => {
  const t0 = performance.now()
  const clock = new ManualClock(START)
  const space = new Space({ id: 'bench-space', clock })
  const writers = Array.from({ length: WRITERS }, (_, w) => space.join({ id: `writer-${w}`, name: `Writer ${w}`, kind: 'ai' }).id)
  const doc = space.doc
  const chunks: Uint8Array[] = []
  // The joins above are one update each; the chunks start with them.
  doc.on('update', (u: Uint8Array) => chunks.push(u))
  chunks.push(Y.encodeStateAsUpdate(doc))
  let last = ''
  for (let start = 0; start < n; start += BATCH) {
    const end = Math.min(n, start + BATCH)
    doc.transact(() => {
      for (let i = start; i < end; i++) {
        const w = Math.floor(i / RUN_LENGTH) % WRITERS
        doc.clientID = writerClient(w)
        clock.advance(1)
        last = content(i)
        space.messages.send({ from: writers[w] as string, content: last })
      }
    })
    if (onProgress !== undefined && end % 20_000 === 0) onProgress(end)
  }
  const update = Y.encodeStateAsUpdate(doc)
  const sv = Buffer.from(Y.encodeStateVector(doc)).toString('hex')
  space.destroy()
  doc.destroy()
  return { update, chunks, last, sv, ms: performance.now() - t0 }
}

/**
 * Sends the chunks to the relay's `/sync/<space>` as y-protocols updates, then sync step 1 with the space's state
 * vector, and waits for the answer (sync step 2): the relay handles one connection's messages in order, so by then
 * it has applied every chunk. Returns the open socket: while it stays connected the relay keeps the space loaded.
 */
export const uploadToRelay = async (wsUrl: string, big: BigSpace, timeoutMs = 120_000): Promise<WebSocket> => {
  const ws = new WebSocket(wsUrl, { maxPayload: 1024 * 1024 * 1024 })
  ws.binaryType = 'arraybuffer'
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve())
    ws.once('error', reject)
  })
  const answered = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the relay did not confirm the upload within ${timeoutMs / 1000} s`)), timeoutMs)
    ws.on('message', (data: ArrayBuffer) => {
      const decoder = decoding.createDecoder(new Uint8Array(data))
      if (decoding.readVarUint(decoder) !== 0) return
      if (decoding.readVarUint(decoder) !== syncProtocol.messageYjsSyncStep2) return
      clearTimeout(timer)
      resolve()
    })
    ws.once('close', (code, reason) => {
      clearTimeout(timer)
      reject(new Error(`the relay closed the upload socket: ${code} ${reason.toString()}`))
    })
  })
  answered.catch(() => undefined)
  // The relay allows bursts of 400 messages per connection, then 200/s: pace the upload well under that.
  for (const [i, chunk] of big.chunks.entries()) {
    ws.send(encodeSyncUpdate(chunk))
    if (i % 100 === 99) await new Promise((resolve) => setTimeout(resolve, 600))
  }
  ws.send(
    encoding.encode((e) => {
      encoding.writeVarUint(e, 0)
      encoding.writeVarUint(e, syncProtocol.messageYjsSyncStep1)
      encoding.writeVarUint8Array(e, Buffer.from(big.sv, 'hex'))
    }),
  )
  await answered
  return ws
}

/**
 * The baseline: plain Yjs in one process. Untimed, a holder doc is loaded from the update (as the holder peer's
 * is); timed, `Y.encodeStateAsUpdate` of it and `Y.applyUpdate` into an empty doc (what sync step 2 does, with no
 * network), then the same check as the joiners (state vector, a Space on the doc, its newest message).
 */
export const yjsCatchUp = (holder: Y.Doc, big: BigSpace): { syncMs: number; checkMs: number; bytes: number } => {
  const t0 = performance.now()
  const update = Y.encodeStateAsUpdate(holder)
  const doc = new Y.Doc()
  Y.applyUpdate(doc, update)
  const t1 = performance.now()
  const complete = covers(Y.encodeStateVector(doc), big.sv)
  const space = new Space({ id: 'bench-space', doc })
  const newest = space.messages.recent({ limit: 1 })[0]?.content
  const t2 = performance.now()
  space.destroy()
  doc.destroy()
  if (!complete || newest !== big.last) throw new Error('plain Yjs catch-up: the copy is incomplete')
  return { syncMs: t1 - t0, checkMs: t2 - t1, bytes: update.byteLength }
}
