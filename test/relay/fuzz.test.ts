/**
 * Fuzz: random and mutated frames on `/sync/<space>` and `/leases`, and random bodies on the REST routes, while a
 * healthy pair of stock providers keeps syncing through the same relay. Nothing may crash it, hang it, or get a
 * 500. Two regression tests pin what the fuzzer found (an awareness state nested too deep to encode again, a REST
 * body nested too deep), and one shows the rate limits (429 on REST, 1013 on sync, `rate_limited` on /leases) with
 * a frozen clock. Seeded: CHORUS_SEED=<n> replays a run; the seed and the last frames are printed on failure.
 */
import { describe, expect, it, onTestFailed } from 'vitest'
import * as encoding from 'lib0/encoding'
import { WebSocket as WsClient } from 'ws'
import * as Y from 'yjs'
import { Awareness } from 'y-protocols/awareness'
import { ManualClock, encodeAwarenessMessage, encodeQueryAwareness, encodeSyncStep1, encodeSyncStep2, encodeSyncUpdate, type LeaseGrant } from '@chorus/sync'
import { CloseCode, type Logger } from '@chorus/relay'
import { prng, testSeed } from '../support/random.ts'
import { closed, fixturePerTest, health, opened, synced, wsUrl } from '../support/relay.ts'
import { emits, nextEvent, until, updates } from '../support/wait.ts'

const SYNC_FRAMES = 10_000
const LEASE_FRAMES = 3_000
const REST_BODIES = 1_500
const HEALTHY_SPACE = 'fuzz-healthy'
/** The healthy pair's space is fuzzed too: a third of the connections go there. */
const FUZZ_SPACES = ['fuzz-a', 'fuzz-b', HEALTHY_SPACE]
const REST_ROUTES = ['/leases/acquire', '/leases/renew', '/leases/release', '/entities/register', '/messages/send', '/tasks/create']
/** Longest a single frame or request may take to be answered before the relay counts as hung. */
const ANSWER_MS = 10_000

const f = fixturePerTest()

type Random = () => number


const int = (r: Random, n: number): number => Math.floor(r() * n)
const pick = <T>(r: Random, items: readonly T[]): T => items[int(r, items.length)] as T
const bytes = (r: Random, n: number): Uint8Array<ArrayBuffer> => Uint8Array.from({ length: n }, () => int(r, 256))
const varUint = (n: number): Uint8Array => encoding.encode((e) => encoding.writeVarUint(e, n))
const concat = (...parts: Uint8Array[]): Uint8Array => Uint8Array.from(parts.flatMap((p) => [...p]))
/** Every byte of the UTF-8 form as %XX (encodeURIComponent throws on a lone surrogate). */
const percentEncoded = (s: string): string => [...Buffer.from(s)].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('')
const hex = (data: Uint8Array | string): string =>
  typeof data === 'string' ? JSON.stringify(data.slice(0, 200)) : Buffer.from(data.subarray(0, 200)).toString('hex') + (data.length > 200 ? `…(${data.length} bytes)` : '')

function randomString(r: Random, max: number): string {
  const alphabets = ['abcdefghijklmnopqrstuvwxyz-_.#', '\u0000\u0001\u001f\u007f "\\/\n\t', 'éß漢字🙂\u200b\ufeff\ud800', '0123456789']
  let s = ''
  const n = int(r, max + 1)
  for (let i = 0; i < n; i++) s += pick(r, [...pick(r, alphabets)])
  return s
}

const HUGE_NUMBERS = [1e308, -1e308, 2 ** 53 + 2, -(2 ** 53) - 2, 2 ** 64, 1e-300, -0, 0.5, -1, 0, 99, 2 ** 31, 1e21]

/** Any JSON value, nested up to `depth`. */
function randomJson(r: Random, depth: number): unknown {
  const kind = int(r, depth > 0 ? 8 : 5)
  switch (kind) {
    case 0:
      return null
    case 1:
      return r() < 0.5
    case 2:
      return r() < 0.5 ? pick(r, HUGE_NUMBERS) : int(r, 2_000_000) - 1000
    case 3:
    case 4:
      return randomString(r, r() < 0.9 ? 12 : 400)
    case 5:
      return Array.from({ length: int(r, 5) }, () => randomJson(r, depth - 1))
    default: {
      const out: Record<string, unknown> = {}
      for (let i = int(r, 6); i > 0; i--) {
        // Defined, not assigned: `out.__proto__ = x` would set the prototype instead of a key.
        Object.defineProperty(out, r() < 0.7 ? pick(r, FIELD_NAMES) : randomString(r, 8), { value: randomJson(r, depth - 1), enumerable: true, writable: true, configurable: true })
      }
      return out
    }
  }
}

const FIELD_NAMES = [
  'id', 'op', 'space', 'key', 'holder', 'duration', 'grant', 'token', 'signature', 'entity_id', 'entity', 'name', 'type', 'kind',
  'capabilities', 'metadata', 'from', 'to', 'channel', 'content', 'title', 'description', 'priority', 'assignee', 'task_id', 'data', '__proto__',
]

/** `[[[…]]]` or `{"a":{"a":…}}` nested `depth` deep, or unbalanced. */
function deepJson(r: Random, depth: number): string {
  const balanced = r() < 0.8
  if (r() < 0.5) return '['.repeat(depth) + (balanced ? ']'.repeat(depth) : '')
  return '{"a":'.repeat(depth) + '1' + (balanced ? '}'.repeat(depth) : '')
}

/** `{"a":{"a":…1…}}`, `depth` objects deep, as text. */
const deepObject = (depth: number): string => '{"a":'.repeat(depth) + '1' + '}'.repeat(depth)

/** `[[…[1]…]]`, `depth` arrays deep. */
function nested(depth: number): unknown {
  let value: unknown = 1
  for (let i = 0; i < depth; i++) value = [value]
  return value
}

/** Valid y-protocols messages from a few random documents: the raw material of the mutations. */
function syncCorpus(r: Random): Uint8Array[] {
  const out: Uint8Array[] = [encodeQueryAwareness(), encoding.encode((e) => (encoding.writeVarUint(e, 2), encoding.writeVarUint(e, 0), encoding.writeVarString(e, 'denied')))]
  for (let d = 0; d < 6; d++) {
    const doc = new Y.Doc()
    const incremental: Uint8Array[] = []
    doc.on('update', (u: Uint8Array) => incremental.push(u))
    const text = doc.getText('fuzz-text')
    const map = doc.getMap('fuzz-map')
    const array = doc.getArray('fuzz-array')
    const xml = doc.getXmlFragment('fuzz-xml')
    for (let op = 0; op < 20; op++) {
      switch (int(r, 6)) {
        case 0:
          text.insert(int(r, text.length + 1), randomString(r, 10), r() < 0.3 ? { bold: true } : undefined)
          break
        case 1:
          if (text.length > 0) text.delete(int(r, text.length), 1 + int(r, 3))
          break
        case 2:
          map.set(randomString(r, 4), r() < 0.3 ? new Y.Map() : r() < 0.3 ? bytes(r, 4) : randomJson(r, 2))
          break
        case 3:
          array.insert(int(r, array.length + 1), [randomJson(r, 1), r() < 0.2 ? new Y.Text('t') : 1])
          break
        case 4:
          if (array.length > 0) array.delete(0, 1)
          break
        default:
          xml.insert(0, [new Y.XmlElement('p'), new Y.XmlText('x')])
      }
    }
    const stateVector = Y.encodeStateVector(doc)
    out.push(encodeSyncStep1(doc), encodeSyncStep2(doc), encodeSyncStep2(doc, stateVector), encodeSyncUpdate(Y.encodeStateAsUpdate(doc)))
    for (const u of incremental.slice(-3)) out.push(encodeSyncUpdate(u))
    const awareness = new Awareness(doc)
    awareness.setLocalState({ user: { name: randomString(r, 8), color: '#ff0000' }, cursor: { anchor: int(r, 100) } })
    out.push(encodeAwarenessMessage(awareness, [doc.clientID]))
    awareness.setLocalState(null)
    out.push(encodeAwarenessMessage(awareness, [doc.clientID]))
    awareness.destroy()
    doc.destroy()
  }
  return out
}

function mutate(r: Random, message: Uint8Array): Uint8Array {
  let m: Uint8Array = Uint8Array.from(message)
  for (let k = 1 + int(r, 4); k > 0; k--) {
    const at = int(r, m.length + 1)
    switch (int(r, 8)) {
      case 0:
        if (m.length > 0) m[at % m.length] = (m[at % m.length] as number) ^ (1 << int(r, 8))
        break
      case 1:
        if (m.length > 0) m[at % m.length] = int(r, 256)
        break
      case 2:
        m = concat(m.subarray(0, at), bytes(r, 1 + int(r, 8)), m.subarray(at))
        break
      case 3:
        m = concat(m.subarray(0, at), m.subarray(Math.min(m.length, at + 1 + int(r, 8))))
        break
      case 4:
        m = concat(m.subarray(0, at), m.subarray(at, at + 16), m.subarray(at))
        break
      case 5:
        // A varint claiming far more than the frame holds.
        m = concat(m.subarray(0, at), varUint(pick(r, [2 ** 31, 2 ** 32 + 1, 2 ** 53 - 1, 0x7fffffff])), m.subarray(at + 1))
        break
      case 6:
        m = m.subarray(0, at)
        break
      default:
        m = concat(m, bytes(r, 1 + int(r, 32)))
    }
  }
  return m
}

interface Frame {
  data: Uint8Array | string
  binary: boolean
  kind: string
}

function awarenessFrame(r: Random): Uint8Array {
  const state = pick(r, ['null', '{}', '[]', '1', '"x"', '{"a":', '', '{"user":{"name":"z"}}', deepJson(r, 20_000)])
  const inner = encoding.encode((e) => {
    encoding.writeVarUint(e, r() < 0.1 ? 2 ** 40 : 1)
    encoding.writeVarUint(e, r() < 0.2 ? 0 : int(r, 2 ** 32))
    encoding.writeVarUint(e, r() < 0.2 ? 2 ** 53 - 1 : int(r, 10))
    encoding.writeVarString(e, state)
  })
  return concat(varUint(1), varUint(inner.length), inner)
}

function syncFrame(r: Random, corpus: readonly Uint8Array[]): Frame {
  const roll = r()
  if (roll < 0.2) {
    const n = r() < 0.6 ? int(r, 33) : r() < 0.9 ? 33 + int(r, 480) : 513 + int(r, 8000)
    return { data: bytes(r, n), binary: true, kind: 'random bytes' }
  }
  if (roll < 0.3) return { data: concat(Uint8Array.of(int(r, 4), int(r, 3)), bytes(r, int(r, 64))), binary: true, kind: 'typed random bytes' }
  if (roll < 0.7) return { data: mutate(r, pick(r, corpus)), binary: true, kind: 'mutated message' }
  if (roll < 0.78) {
    const m = pick(r, corpus)
    return { data: m.subarray(0, int(r, m.length)), binary: true, kind: 'truncated message' }
  }
  if (roll < 0.85) {
    const huge = [
      concat(new Uint8Array(5 + int(r, 15)).fill(0xff), Uint8Array.of(0x7f)),
      concat(Uint8Array.of(0), new Uint8Array(9).fill(0xff), Uint8Array.of(0x01)),
      concat(Uint8Array.of(0, int(r, 3)), varUint(2 ** 32 + int(r, 2 ** 20)), bytes(r, 8)),
      concat(Uint8Array.of(0, 2), varUint(2 ** 53 - 1), bytes(r, 4)),
      concat(Uint8Array.of(1), varUint(2 ** 52), bytes(r, 4)),
      concat(Uint8Array.of(0, 1), new Uint8Array(12).fill(0x80)),
    ]
    return { data: pick(r, huge), binary: true, kind: 'huge varint' }
  }
  if (roll < 0.9) return { data: awarenessFrame(r), binary: true, kind: 'odd awareness' }
  if (roll < 0.97) {
    if (r() < 0.15) return { data: Uint8Array.of(0xc3, 0x28, 0xff, int(r, 256)), binary: false, kind: 'invalid UTF-8 text' }
    return { data: r() < 0.5 ? randomString(r, 64) : JSON.stringify(randomJson(r, 3)), binary: false, kind: 'text' }
  }
  if (roll < 0.98) return { data: new Uint8Array(0), binary: true, kind: 'empty' }
  return { data: pick(r, corpus), binary: true, kind: 'valid message' }
}

/** What a lease request could look like, give or take. */
function leaseFrame(r: Random, grants: readonly LeaseGrant[]): Frame {
  const roll = r()
  const base = (): Record<string, unknown> => {
    const op = pick(r, ['acquire', 'renew', 'release'])
    const grant = grants.length > 0 && r() < 0.7 ? { ...pick(r, grants) } : (randomJson(r, 2) as Record<string, unknown>)
    return op === 'acquire'
      ? { id: int(r, 1e6), op, space: pick(r, ['fuzz-leases', 'fuzz-leases#ai-only', 'x'.repeat(200)]), key: `k${int(r, 20)}`, holder: `h${int(r, 3)}`, duration: 100 + int(r, 5000) }
      : { id: int(r, 1e6), op, grant, duration: 100 + int(r, 5000) }
  }
  if (roll < 0.2) return { data: JSON.stringify(base()), binary: false, kind: 'plausible request' }
  if (roll < 0.5) {
    const req = base()
    for (let k = 1 + int(r, 3); k > 0; k--) {
      const field = pick(r, Object.keys(req))
      if (r() < 0.2) delete req[field]
      else req[field] = randomJson(r, 2)
    }
    if (typeof req.grant === 'object' && req.grant !== null && r() < 0.5) (req.grant as Record<string, unknown>)[pick(r, ['token', 'signature', 'duration', 'holder'])] = randomJson(r, 1)
    return { data: JSON.stringify(req), binary: false, kind: 'wrong types' }
  }
  if (roll < 0.65) return { data: JSON.stringify(randomJson(r, 4)), binary: false, kind: 'random JSON' }
  if (roll < 0.73) {
    const field = pick(r, ['id', 'duration', 'token'])
    const number = pick(r, ['1e400', '-1e400', '1e308', '123456789012345678901234567890', '-0', '0.1e-400', '9007199254740993'])
    const text = field === 'token' ? `{"id":1,"op":"renew","grant":{"space":"s","key":"k","holder":"h","token":${number},"duration":1000,"signature":"x"}}` : `{"id":${field === 'id' ? number : 1},"op":"acquire","space":"fuzz-leases","key":"k","holder":"h","duration":${field === 'duration' ? number : 1000}}`
    return { data: text, binary: false, kind: 'huge numbers' }
  }
  if (roll < 0.8) return { data: deepJson(r, r() < 0.8 ? 1 + int(r, 3000) : 20_000), binary: false, kind: 'deep nesting' }
  if (roll < 0.95) {
    const text = JSON.stringify(base())
    return { data: r() < 0.5 ? text.slice(0, int(r, text.length)) : randomString(r, 80), binary: false, kind: 'not JSON' }
  }
  return { data: bytes(r, int(r, 64)), binary: true, kind: 'binary' }
}

/** A body that `route` accepts, give or take: the way into the handlers past their schemas. */
function restTemplate(r: Random, route: string, grants: readonly LeaseGrant[]): Record<string, unknown> {
  const id = (): string => pick(r, ['alice', 'bob', 'agent-1', `e${int(r, 5)}`])
  const grant = (): unknown => (grants.length > 0 ? { ...pick(r, grants) } : { space: 'default', key: 'k', holder: 'h', token: 1, duration: 1000, signature: 'x' })
  switch (route) {
    case '/leases/acquire':
      return { key: `k${int(r, 10)}`, holder: id(), duration: 100 + int(r, 5000) }
    case '/leases/renew':
      return { grant: grant(), duration: 100 + int(r, 5000) }
    case '/leases/release':
      return { grant: grant() }
    case '/entities/register':
      return {
        entity_id: id(),
        entity_type: pick(r, ['human', 'ai', 'AI_AGENT', 'session', 'computer', 'service', 'robot']),
        name: randomString(r, 20),
        capabilities: ['code', randomString(r, 5)],
        metadata: { team: randomString(r, 6), nested: randomJson(r, 3), deep: nested(int(r, 250)) },
      }
    case '/messages/send':
      return { sender_id: id(), content: randomString(r, 100), channel: pick(r, ['general', 'ai-only', '', randomString(r, 70)]), recipient_id: r() < 0.3 ? id() : null, priority: pick(r, ['low', 'MEDIUM', 'urgent', 'x']), reply_to: null }
    default:
      return { title: randomString(r, 30), description: randomString(r, 200), priority: pick(r, ['low', 'normal', 'High']), requires_human: r() < 0.5, created_by: r() < 0.5 ? id() : undefined }
  }
}

/** A REST body: valid or mutated ones for the route, random JSON, huge numbers, deep nesting, not JSON, too large. */
function restBody(r: Random, route: string, grants: readonly LeaseGrant[]): { body: string | Uint8Array<ArrayBuffer>; contentType: string | undefined; kind: string } {
  const contentType = pick(r, ['application/json', 'application/json', 'text/plain', undefined, 'application/x-www-form-urlencoded'])
  const roll = r()
  if (roll < 0.15) return { body: JSON.stringify(restTemplate(r, route, grants)), contentType, kind: 'valid' }
  if (roll < 0.3) {
    const body = restTemplate(r, route, grants)
    for (let k = 1 + int(r, 2); k > 0; k--) {
      const field = pick(r, Object.keys(body))
      if (r() < 0.2) delete body[field]
      else body[field] = randomJson(r, 2)
    }
    return { body: JSON.stringify(body), contentType, kind: 'mutated' }
  }
  if (roll < 0.45) {
    const body: Record<string, unknown> = {}
    for (let i = 1 + int(r, 6); i > 0; i--) body[pick(r, FIELD_NAMES)] = randomJson(r, 3)
    return { body: JSON.stringify(body), contentType, kind: 'plausible object' }
  }
  if (roll < 0.6) return { body: JSON.stringify(randomJson(r, 4)), contentType, kind: 'random JSON' }
  if (roll < 0.7) {
    const number = pick(r, ['1e400', '-1e400', '123456789012345678901234567890', '-0', '1e-400'])
    return { body: `{"key":"k","holder":"h","duration":${number},"priority":${number},"grant":{"token":${number}}}`, contentType, kind: 'huge numbers' }
  }
  if (roll < 0.8) {
    const deep = deepJson(r, r() < 0.3 ? 200 + int(r, 100) : r() < 0.7 ? 1 + int(r, 5000) : 100_000)
    return { body: r() < 0.5 ? deep : `{"key":"k","holder":"h","duration":1000,"metadata":${deep},"content":${deep}}`, contentType, kind: 'deep nesting' }
  }
  if (roll < 0.93) return { body: r() < 0.3 ? '' : randomString(r, 120), contentType, kind: 'not JSON' }
  if (roll < 0.98) return { body: bytes(r, int(r, 256)), contentType, kind: 'binary' }
  return { body: `{"content":"${'x'.repeat(1024 * 1024 + 10)}"}`, contentType, kind: 'too large' }
}

/** Logs the relay's errors (a fuzz frame may cause warnings, never an error). */
function recordingLogger(errors: string[]): Logger {
  return { info: () => undefined, warn: () => undefined, error: (message, fields) => errors.push(`${message} ${JSON.stringify(fields, (_k, v: unknown) => (v instanceof Error ? v.stack : v))}`) }
}

/** Resolves with the result of `p`, or rejects when it takes longer than `ms`. */
async function within<T>(p: Promise<T>, ms: number, what: () => string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms: ${what()}`)), ms)))])
  } finally {
    clearTimeout(timer)
  }
}

interface Stats {
  frames: number
  connections: number
  closeCodes: Map<number, number>
  kinds: Map<string, number>
}

const bump = <K>(m: Map<K, number>, k: K): void => void m.set(k, (m.get(k) ?? 0) + 1)
const newStats = (): Stats => ({ frames: 0, connections: 0, closeCodes: new Map(), kinds: new Map() })
const show = <K>(m: Map<K, number>): string => [...m].map(([k, v]) => `${String(k)}: ${v}`).join(', ')

/** A socket that reports its close code, opened on `path`. */
async function connect(url: string, path: string, sockets: Set<WsClient>): Promise<{ ws: WsClient; gone: Promise<number> }> {
  const ws = new WsClient(`${wsUrl(url)}${path}`)
  ws.on('error', () => undefined)
  sockets.add(ws)
  const gone = new Promise<number>((resolve) =>
    ws.once('close', (code: number) => {
      sockets.delete(ws)
      resolve(code)
    }),
  )
  const refused = await within(Promise.race([opened(ws).then(() => undefined), gone]), ANSWER_MS, () => `opening ${path}`)
  if (refused !== undefined) throw new Error(`${path} was refused with ${refused}`)
  return { ws, gone }
}

/**
 * Sends sync frames one at a time on a connection, each followed by a ping: the pong (or the close) shows the
 * relay handled the frame, since ws handles a connection's frames in order. A closed connection is replaced.
 */
async function syncWorker(url: string, r: Random, budget: { left: number }, stats: Stats, corpus: readonly Uint8Array[], recent: string[], sockets: Set<WsClient>): Promise<void> {
  while (budget.left > 0) {
    const { ws, gone } = await connect(url, `/sync/${pick(r, FUZZ_SPACES)}`, sockets)
    stats.connections++
    let open = true
    let closeCode: number | undefined
    void gone.then((code) => {
      open = false
      closeCode = code
      bump(stats.closeCodes, code)
    })
    let waiting: ((data: Buffer) => void) | undefined
    ws.on('pong', (data: Buffer) => waiting?.(data))
    let tag = 0
    while (open && budget.left > 0) {
      budget.left--
      const frame = syncFrame(r, corpus)
      bump(stats.kinds, frame.kind)
      recent.push(`${frame.kind} ${frame.binary ? 'binary' : 'text'} ${hex(frame.data)}`)
      if (recent.length > 20) recent.shift()
      const expected = String(++tag)
      const answered = new Promise<void>((resolve) => (waiting = (data) => data.toString() === expected && resolve()))
      ws.send(frame.data, { binary: frame.binary })
      if (ws.readyState === ws.OPEN) ws.ping(expected)
      await within(Promise.race([answered, gone]), ANSWER_MS, () => `sync frame ${recent.at(-1) ?? ''}`)
      // Text that is not UTF-8 is refused by ws itself (1007) before the relay sees it: not counted.
      if (closeCode === 1007) budget.left++
      else stats.frames++
    }
    if (open) {
      ws.close()
      await gone
    }
  }
}

const REPLY_CODES = new Set(['invalid_input', 'too_large', 'locked', 'lease_lost', 'forbidden', 'unauthorized'])

/** Lease frames one at a time: each gets one reply, except the one that closes the connection (1003). */
async function leaseWorker(url: string, r: Random, budget: { left: number }, stats: Stats, replies: Map<string, number>, recent: string[], sockets: Set<WsClient>): Promise<void> {
  const grants: LeaseGrant[] = []
  while (budget.left > 0) {
    const { ws, gone } = await connect(url, '/leases', sockets)
    stats.connections++
    let open = true
    void gone.then((code) => {
      open = false
      bump(stats.closeCodes, code)
    })
    let waiting: ((reply: unknown) => void) | undefined
    ws.on('message', (data: Buffer) => {
      const message: unknown = JSON.parse(data.toString())
      // lease_lost pushes for grants this connection took are not replies.
      if (typeof message === 'object' && message !== null && 'type' in message && message.type === 'lease_lost') return
      waiting?.(message)
    })
    while (open && budget.left > 0) {
      budget.left--
      const frame = leaseFrame(r, grants)
      bump(stats.kinds, frame.kind)
      recent.push(`${frame.kind} ${hex(frame.data)}`)
      if (recent.length > 20) recent.shift()
      const answered = new Promise<unknown>((resolve) => (waiting = resolve))
      ws.send(frame.data, { binary: frame.binary })
      const reply = await within(Promise.race([answered, gone.then(() => undefined)]), ANSWER_MS, () => `lease frame ${recent.at(-1) ?? ''}`)
      stats.frames++
      if (reply === undefined) continue
      const r2 = reply as { ok: boolean; grant?: LeaseGrant; error?: { code: string; message: string } }
      if (r2.ok) {
        bump(replies, 'ok')
        if (r2.grant !== undefined && grants.length < 50) grants.push(r2.grant)
        continue
      }
      bump(replies, r2.error?.code ?? 'none')
      expect(REPLY_CODES.has(r2.error?.code ?? ''), `lease reply ${JSON.stringify(reply)} to ${recent.at(-1) ?? ''}`).toBe(true)
      // A handler that threw something other than a ChorusError answers with this generic message.
      expect(r2.error?.message, `lease reply to ${recent.at(-1) ?? ''}`).not.toBe('could not handle the request')
    }
    if (open) {
      ws.close()
      await gone
    }
  }
}

async function restWorker(url: string, r: Random, budget: { left: number }, statuses: Map<number, number>, recent: string[]): Promise<void> {
  const grants: LeaseGrant[] = []
  while (budget.left > 0) {
    budget.left--
    const prefix = r() < 0.6 ? '' : `/spaces/${pick(r, ['fuzz-rest', 'fuzz-healthy', percentEncoded(randomString(r, 10)), '%ZZ', 'a%23ai-only', 'x'.repeat(129)])}`
    const route = pick(r, REST_ROUTES)
    const path = `${prefix}${route}`
    const { body, contentType, kind } = restBody(r, route, grants)
    const what = `POST ${path} (${kind}, ${contentType ?? 'no content-type'}) ${hex(body)}`
    recent.push(what)
    if (recent.length > 20) recent.shift()
    const res = await within(
      fetch(`${url}${path}`, { method: 'POST', body, headers: contentType === undefined ? {} : { 'content-type': contentType }, signal: AbortSignal.timeout(ANSWER_MS) }),
      ANSWER_MS,
      () => what,
    )
    const text = await res.text()
    bump(statuses, res.status)
    expect(res.status < 500 && res.status >= 200, `${res.status} ${text.slice(0, 300)} for ${what}`).toBe(true)
    expect(res.headers.get('content-type'), what).toMatch(/^application\/json/)
    const json = JSON.parse(text) as { error?: unknown; grant?: LeaseGrant }
    if (res.status >= 400) expect(typeof json.error, `${text.slice(0, 300)} for ${what}`).toBe('string')
    if (json.grant !== undefined && grants.length < 50) grants.push(json.grant)
  }
}

describe('relay fuzz', () => {
  it('takes 10,000+ bad sync frames, bad lease frames and bad REST bodies while a healthy pair keeps syncing', async () => {
    const seed = testSeed()
    const recent = { sync: [] as string[], lease: [] as string[], rest: [] as string[] }
    onTestFailed(() => {
      console.error(`last sync frames:\n${recent.sync.join('\n')}\nlast lease frames:\n${recent.lease.join('\n')}\nlast REST bodies:\n${recent.rest.join('\n')}`)
    })
    const uncaught: unknown[] = []
    const onUncaught = (e: unknown): void => void uncaught.push(e)
    process.on('uncaughtException', onUncaught)
    process.on('unhandledRejection', onUncaught)
    const sockets = new Set<WsClient>()
    try {
      const errors: string[] = []
      const { url } = await f.startRelay({ rateLimit: { ratePerSecond: 100_000, burst: 100_000 }, logger: recordingLogger(errors) })

      // The healthy pair: a writes numbered entries throughout, b must see every one; neither is ever dropped.
      const a = f.provider(url, HEALTHY_SPACE)
      const b = f.provider(url, HEALTHY_SPACE)
      await Promise.all([synced(a), synced(b)])
      let drops = 0
      for (const p of [a, b]) p.on('status', ({ status }: { status: string }) => void (status === 'disconnected' && drops++))
      const log = a.doc.getArray<number>('healthy-log')
      let written = 0
      const writer = setInterval(() => log.push([written++]), 10)
      const seen = (): number => b.doc.getArray<number>('healthy-log').length

      const corpus = syncCorpus(prng(seed))
      let fuzzing = true
      let checks = 0
      const monitor = (async () => {
        while (fuzzing) {
          const target = written
          await until(() => seen() >= target, `b sees a's ${target} writes`, { on: updates(b.doc), timeoutMs: ANSWER_MS })
          const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(ANSWER_MS) })
          expect(res.status).toBe(200)
          expect(await res.json()).toMatchObject({ status: 'ok' })
          checks++
        }
      })()

      const syncStats = newStats()
      const leaseStats = newStats()
      const leaseReplies = new Map<string, number>()
      const restStatuses = new Map<number, number>()
      const syncBudget = { left: SYNC_FRAMES }
      const leaseBudget = { left: LEASE_FRAMES }
      const restBudget = { left: REST_BODIES }
      const started = Date.now()
      const workers = [
        ...[0, 1, 2, 3, 4, 5].map((w) => syncWorker(url, prng(seed + 1 + w), syncBudget, syncStats, corpus, recent.sync, sockets)),
        ...[0, 1].map((w) => leaseWorker(url, prng(seed + 101 + w), leaseBudget, leaseStats, leaseReplies, recent.lease, sockets)),
        ...[0, 1, 2].map((w) => restWorker(url, prng(seed + 201 + w), restBudget, restStatuses, recent.rest)),
      ]
      try {
        await Promise.all([Promise.all(workers).finally(() => (fuzzing = false)), monitor])
      } finally {
        // On a failure, stop the others before the relay is torn down under them.
        fuzzing = false
        syncBudget.left = leaseBudget.left = restBudget.left = 0
        await Promise.allSettled([...workers, monitor])
        clearInterval(writer)
      }
      const elapsed = Date.now() - started

      expect(syncStats.frames).toBeGreaterThanOrEqual(SYNC_FRAMES)
      expect(leaseStats.frames).toBeGreaterThanOrEqual(LEASE_FRAMES)
      // Closed only for malformed frames (1003), or by ws for a text frame that is not UTF-8 (1007).
      for (const code of [...syncStats.closeCodes.keys(), ...leaseStats.closeCodes.keys()]) {
        expect([CloseCode.unsupportedData, 1007, 1005], `close code ${code}`).toContain(code)
      }
      await until(() => seen() === written, `b sees all ${written} writes`, { on: updates(b.doc) })
      expect(b.doc.getArray<number>('healthy-log').toArray()).toEqual([...Array(written).keys()])
      expect(drops).toBe(0)
      expect(checks).toBeGreaterThan(0)

      // Still serving: health, a fresh provider gets the healthy space, and a lease can be taken.
      expect(await health(url)).toMatchObject({ status: 'ok' })
      const fresh = f.provider(url, HEALTHY_SPACE)
      await synced(fresh)
      await until(() => fresh.doc.getArray('healthy-log').length === written, 'a fresh provider has every write', { on: updates(fresh.doc) })
      const res = await fetch(`${url}/leases/acquire`, { method: 'POST', body: JSON.stringify({ key: 'after-fuzz', holder: 'me', duration: 1000 }) })
      expect(res.status).toBe(200)
      expect(errors).toEqual([])
      expect(uncaught).toEqual([])
      console.info(
        `fuzz: seed ${seed}, ${elapsed} ms\n` +
          `  sync: ${syncStats.frames} frames on ${syncStats.connections} connections; closes {${show(syncStats.closeCodes)}}; {${show(syncStats.kinds)}}\n` +
          `  leases: ${leaseStats.frames} frames on ${leaseStats.connections} connections; closes {${show(leaseStats.closeCodes)}}; replies {${show(leaseReplies)}}\n` +
          `  REST: ${REST_BODIES} bodies; statuses {${show(restStatuses)}}\n` +
          `  healthy: ${written} writes all seen, ${checks} health checks`,
      )
    } finally {
      for (const ws of sockets) ws.terminate()
      process.off('uncaughtException', onUncaught)
      process.off('unhandledRejection', onUncaught)
    }
  })

  it('refuses an awareness state nested too deep to be encoded again; the space keeps taking connections', async () => {
    const uncaught: unknown[] = []
    const onUncaught = (e: unknown): void => void uncaught.push(e)
    process.on('uncaughtException', onUncaught)
    process.on('unhandledRejection', onUncaught)
    try {
      const { url } = await f.startRelay()
      const raw = f.raw(url, '/sync/deep')
      await opened(raw)
      const state = deepObject(100_000) // JSON.parse takes it, JSON.stringify overflows
      const inner = encoding.encode((e) => (encoding.writeVarUint(e, 1), encoding.writeVarUint(e, 12345), encoding.writeVarUint(e, 1), encoding.writeVarString(e, state)))
      raw.send(concat(varUint(1), varUint(inner.length), inner))
      raw.ping('after')
      await nextEvent(raw, 'pong')
      // Before the fix the state was kept, and greeting the next connection threw: an unhandled rejection that
      // ended the relay process.
      const p = f.provider(url, 'deep')
      await synced(p)
      p.doc.getMap('m').set('k', 'v')
      const q = f.provider(url, 'deep')
      await synced(q)
      await until(() => q.doc.getMap('m').get('k') === 'v', 'q sees p', { on: updates(q.doc) })
      expect(uncaught).toEqual([])
    } finally {
      process.off('uncaughtException', onUncaught)
      process.off('unhandledRejection', onUncaught)
    }
  })

  it('answers a REST body nested too deep with 400, not 500', async () => {
    const { url } = await f.startRelay()
    for (const path of ['/leases/acquire', '/entities/register', '/tasks/create']) {
      const deep = `{"key":"k","holder":"h","duration":1000,"entity_id":"e","entity_type":"ai","name":"n","title":"t","metadata":{"x":${deepObject(5_000)}}}`
      const res = await fetch(`${url}${path}`, { method: 'POST', body: deep })
      expect(res.status, path).toBe(400)
      expect(await res.json(), path).toMatchObject({ error: 'invalid_input', message: expect.stringMatching(/nested more than \d+ levels deep/) as unknown })
    }
    // Brackets inside strings do not count.
    const res = await fetch(`${url}/leases/acquire`, { method: 'POST', body: JSON.stringify({ key: '['.repeat(200), holder: 'h', duration: 1000 }) })
    expect(res.status).toBe(200)
  })

  it('rate limits: 429 JSON on REST, 1013 on sync (the client loses nothing), rate_limited on /leases', async () => {
    const clock = new ManualClock() // frozen: a bucket holds exactly `burst` requests until the clock moves
    const burst = 40
    const { url } = await f.startRelay({ rateLimit: { ratePerSecond: 20, burst }, clock })

    // REST, per address: `burst` requests pass, the next is 429; /health is exempt; a second refills 20.
    const list = (): Promise<Response> => fetch(`${url}/spaces/limited/leases`)
    for (let i = 0; i < burst; i++) expect((await list()).status).toBe(200)
    const limited = await list()
    expect(limited.status).toBe(429)
    expect(limited.headers.get('content-type')).toMatch(/^application\/json/)
    expect(limited.headers.get('retry-after')).toBe('1')
    expect(await limited.json()).toMatchObject({ error: 'rate_limited' })
    expect((await fetch(`${url}/health`)).status).toBe(200)
    clock.advance(1_000)
    for (let i = 0; i < 20; i++) expect((await list()).status).toBe(200)
    expect((await list()).status).toBe(429)

    // A raw sync connection: the frame after the burst closes it with 1013.
    const raw = f.raw(url, '/sync/limited')
    await opened(raw)
    const rawClosed = closed(raw)
    for (let i = 0; i <= burst; i++) raw.send(encodeQueryAwareness())
    expect(await rawClosed).toEqual({ code: CloseCode.tryAgainLater, reason: 'rate limit exceeded; reconnect later' })

    // A stock provider that writes 100 updates at once is cut off, reconnects and resyncs all of them.
    const writer = f.provider(url, 'limited')
    const reader = f.provider(url, 'limited')
    await Promise.all([synced(writer), synced(reader)])
    const codes: number[] = []
    writer.on('connection-close', (event: CloseEvent | null) => void codes.push(event?.code ?? 0))
    const log = writer.doc.getArray<number>('log')
    for (let i = 0; i < 100; i++) log.push([i]) // 100 transactions, 100 frames
    await until(() => codes.includes(CloseCode.tryAgainLater), 'the writer is closed with 1013', { on: emits(writer, 'connection-close') })
    await until(() => reader.doc.getArray('log').length === 100, 'the reader has all 100 entries after the writer reconnects', { on: updates(reader.doc) })
    expect(reader.doc.getArray<number>('log').toArray()).toEqual([...Array(100).keys()])

    // /leases stays open and answers rate_limited.
    const leases = f.raw(url, '/leases')
    await opened(leases)
    const replies: Array<{ ok: boolean; error?: { code: string } }> = []
    leases.on('message', (data: Buffer) => void replies.push(JSON.parse(data.toString()) as { ok: boolean }))
    const grant = { space: 'limited', key: 'k', holder: 'h', token: 1, duration: 1000, signature: 'x' }
    for (let i = 0; i <= burst; i++) leases.send(JSON.stringify({ id: i, op: 'release', grant }))
    await until(() => replies.length === burst + 1, 'a reply to every lease frame', { on: emits(leases, 'message') })
    expect(replies.slice(0, burst).every((reply) => reply.ok)).toBe(true)
    expect(replies.at(-1)).toMatchObject({ ok: false, error: { code: 'rate_limited' } })
    expect(leases.readyState).toBe(leases.OPEN)
  })
})
