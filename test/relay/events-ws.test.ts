/**
 * `WS /ws/<entity>`: the coordination hub's real-time feed. A `ws` client gets hello, then the events of what
 * others do over REST; message frames respect who may read them; bad frames get error frames and the socket stays
 * usable; unknown entities and other tokens' entities are refused with 4404 and 4403.
 */
import { beforeEach, describe, expect, it } from 'vitest'
import type { WebSocket as WsClient } from 'ws'
import { ManualClock } from '@chorus/sync'
import { Auth } from '@chorus/relay'
import { closed, fixtureForTest, fixturePerTest, opened, type Fixture } from '../support/relay.ts'
import { emits, until } from '../support/wait.ts'
import { hub, hubPerTest, register, type MessageView } from './rest-helpers.ts'

interface Frame {
  type: string
  id?: string
  at?: number
  participant?: string
  ref?: string
  data?: Record<string, unknown>
  entity_id?: string
  space?: string
  error?: string
  message?: string
}

const f = fixturePerTest()
const api = hubPerTest(f)
beforeEach(async () => {
  await register(api, [
    ['alice', 'human'],
    ['bob', 'human'],
    ['claude', 'ai_agent'],
    ['gpt', 'session'],
  ])
})

interface Stream {
  ws: WsClient
  frames: Frame[]
  /** Waits for the first frame (from `from` on) that matches. */
  next(match: (frame: Frame) => boolean, what: string, from?: number): Promise<Frame>
}

async function follow(path: string, options: Parameters<Fixture['raw']>[2] = {}, fx: Fixture = f, base: string = api.url): Promise<Stream> {
  const ws = fx.raw(base, path, options)
  const frames: Frame[] = []
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    expect(isBinary).toBe(false)
    frames.push(JSON.parse(data.toString('utf8')) as Frame)
  })
  await opened(ws)
  const stream: Stream = {
    ws,
    frames,
    async next(match, what, from = 0) {
      let found: Frame | undefined
      await until(() => (found = frames.slice(from).find(match)) !== undefined, what, { on: emits(ws, 'message') })
      return found as Frame
    },
  }
  await stream.next((fr) => fr.type === 'hello', `hello on ${path}`)
  return stream
}

const messages = (s: Stream): MessageView[] => s.frames.filter((fr) => fr.type === 'message').map((fr) => fr.data as unknown as MessageView)

describe('WS /ws/<entity>', () => {
  it('sends hello, then the events of messages, tasks and votes made over REST', async () => {
    const alice = await follow('/ws/alice')
    expect(alice.frames[0]).toEqual({ type: 'hello', entity_id: 'alice', space: 'default' })

    const sent = await api.post<{ message: MessageView }>('/messages/send', { sender_id: 'claude', content: 'build is green', priority: 'high' })
    const msg = await alice.next((fr) => fr.type === 'message', 'the message event')
    expect(msg).toMatchObject({ type: 'message', id: sent.body.message.id, participant: 'claude', ref: sent.body.message.id })
    expect(msg.data).toEqual(sent.body.message)
    expect(typeof msg.at).toBe('number')

    const task = await api.post<{ task_id: string }>('/tasks/create', { title: 'Deploy', created_by: 'alice' })
    const id = task.body.task_id
    await api.post(`/tasks/${id}/claim`, { entity_id: 'claude' })
    await api.post(`/tasks/${id}/complete`, { entity_id: 'claude', result: 'shipped' })
    const completed = await alice.next((fr) => fr.type === 'task_completed', 'task_completed')
    expect(completed).toMatchObject({ participant: 'claude', ref: id, data: { result: 'shipped' } })
    const taskFrames = alice.frames.filter((fr) => fr.ref === id).map((fr) => [fr.type, fr.participant])
    expect(taskFrames).toEqual([
      ['task_created', 'alice'],
      ['task_claimed', 'claude'],
      ['task_completed', 'claude'],
    ])
    expect(alice.frames.find((fr) => fr.type === 'task_created')?.data).toEqual({ title: 'Deploy', priority: 'normal', requiresHuman: false })

    const proposal = await api.post<{ proposal_id: string }>('/proposals/create', { title: 'Ship it', created_by: 'bob' })
    await api.post(`/proposals/${proposal.body.proposal_id}/vote`, { entity_id: 'gpt', vote: 'for' })
    const vote = await alice.next((fr) => fr.type === 'vote', 'the vote event')
    expect(vote).toMatchObject({ participant: 'gpt', ref: proposal.body.proposal_id, data: { vote: 'for' } })
    expect(alice.frames.some((fr) => fr.type === 'proposal_created' && fr.ref === proposal.body.proposal_id)).toBe(true)

    await register(api, [['newcomer', 'computer']])
    expect(await alice.next((fr) => fr.type === 'join', 'the join event')).toMatchObject({ participant: 'newcomer', data: { name: 'newcomer', kind: 'computer' } })
    for (const fr of alice.frames.slice(1)) {
      expect(typeof fr.id).toBe('string')
      expect(typeof fr.at).toBe('number')
      expect(typeof fr.participant).toBe('string')
    }
  })

  it('a human\'s stream never gets ai-only messages or others\' direct messages; an AI\'s gets ai-only and its own', async () => {
    const alice = await follow('/ws/alice')
    const claude = await follow('/ws/claude')
    const send = async (sender_id: string, content: string, extra: Record<string, unknown> = {}): Promise<void> => {
      const r = await api.post('/messages/send', { sender_id, content, ...extra })
      expect(r.status, JSON.stringify(r.body)).toBe(200)
    }
    await send('claude', 'ai plans', { channel: 'ai-only' })
    await send('claude', 'to gpt', { recipient_id: 'gpt' })
    await send('gpt', 'to claude', { recipient_id: 'claude' })
    await send('bob', 'to alice', { recipient_id: 'alice' })
    await send('bob', 'human call', { channel: 'human-only' })
    await send('alice', 'alice to bob', { recipient_id: 'bob' })
    await send('gpt', 'everyone', { channel: 'urgent', priority: 'urgent' })
    // Frames on one socket arrive in order: once the last broadcast is in, every earlier frame is too.
    await alice.next((fr) => fr.type === 'message' && fr.data?.content === 'everyone', 'alice: the last broadcast')
    await claude.next((fr) => fr.type === 'message' && fr.data?.content === 'everyone', 'claude: the last broadcast')

    expect(messages(alice).map((m) => m.content)).toEqual(['to alice', 'human call', 'alice to bob', 'everyone'])
    for (const m of messages(alice)) {
      expect(m.channel).not.toBe('ai-only')
      if (m.recipient_id !== null) expect([m.recipient_id, m.sender_id]).toContain('alice')
    }
    expect(messages(claude).map((m) => m.content)).toEqual(['ai plans', 'to gpt', 'to claude', 'everyone'])
    for (const m of messages(claude)) expect(m.channel).not.toBe('human-only')
  })

  it('answers ping with pong; bad frames get error frames and the socket stays usable', async () => {
    const bob = await follow('/ws/bob')
    const count = (): number => bob.frames.length
    let from = count()
    bob.ws.send(JSON.stringify({ type: 'ping' }))
    await bob.next((fr) => fr.type === 'pong', 'pong', from)

    from = count()
    bob.ws.send('not json {')
    expect(await bob.next((fr) => fr.type === 'error', 'error for bad JSON', from)).toMatchObject({ type: 'error', error: 'invalid_input', message: 'a frame must be JSON' })
    from = count()
    bob.ws.send(JSON.stringify({ type: 'send', content: 'hi' }))
    expect(await bob.next((fr) => fr.type === 'error', 'error for an unknown frame', from)).toMatchObject({ error: 'invalid_input', message: expect.stringContaining('{"type":"ping"}') as unknown })
    from = count()
    bob.ws.send(Buffer.from([1, 2, 3]), { binary: true })
    expect(await bob.next((fr) => fr.type === 'error', 'error for a binary frame', from)).toMatchObject({ error: 'invalid_input', message: 'send JSON text frames' })
    from = count()
    bob.ws.send('42')
    await bob.next((fr) => fr.type === 'error', 'error for a JSON number', from)

    from = count()
    bob.ws.send(JSON.stringify({ type: 'ping' }))
    await bob.next((fr) => fr.type === 'pong', 'pong after the bad frames', from)
    await api.post('/messages/send', { sender_id: 'alice', content: 'still there?' })
    await bob.next((fr) => fr.type === 'message' && fr.data?.content === 'still there?', 'a message after the bad frames', from)
    expect(bob.ws.readyState).toBe(bob.ws.OPEN)
  })

  it('rate limits incoming frames with error frames, without closing', async () => {
    const g = fixtureForTest()
    const { url: limited } = await g.startRelay({ rateLimit: { ratePerSecond: 0.001, burst: 3 } })
    const limitedApi = hub(limited)
    await register(limitedApi, [['bob', 'human']])
    const bob = await follow('/ws/bob', {}, g, limited)
    for (let i = 0; i < 5; i++) bob.ws.send(JSON.stringify({ type: 'ping' }))
    await until(() => bob.frames.length >= 6, 'five answers', { on: emits(bob.ws, 'message') })
    expect(bob.frames.slice(1).map((fr) => fr.type)).toEqual(['pong', 'pong', 'pong', 'error', 'error'])
    expect(bob.frames[4]).toMatchObject({ error: 'rate_limited' })
    expect(bob.ws.readyState).toBe(bob.ws.OPEN)
  })

  it('an unknown entity is closed with 4404; a space\'s stream carries that space only', async () => {
    const unknown = f.raw(api.url, '/ws/nobody')
    const frames: string[] = []
    unknown.on('message', (d: Buffer) => frames.push(d.toString()))
    const { code, reason } = await closed(unknown)
    expect(code).toBe(4404)
    expect(reason).toMatch(/unknown entity nobody; register it first/)
    expect(frames).toEqual([])

    const long = f.raw(api.url, `/ws/${'x'.repeat(300)}`)
    expect((await closed(long)).code).toBe(4404)

    await register(api, [['alice', 'human']], '/spaces/team')
    const team = await follow('/spaces/team/ws/alice')
    expect(team.frames[0]).toEqual({ type: 'hello', entity_id: 'alice', space: 'team' })
    const home = await follow('/ws/alice')
    await api.post('/messages/send', { sender_id: 'alice', content: 'in default' })
    await api.post('/spaces/team/messages/send', { sender_id: 'alice', content: 'in team' })
    await team.next((fr) => fr.data?.content === 'in team', 'the team message')
    await home.next((fr) => fr.data?.content === 'in default', 'the default message')
    expect(messages(team).map((m) => m.content)).toEqual(['in team'])
    await until(() => messages(home).length >= 1, 'default message', { on: emits(home.ws, 'message') })
    expect(messages(home).map((m) => m.content)).toEqual(['in default'])

    const teamOnly = f.raw(api.url, '/spaces/team/ws/bob')
    expect((await closed(teamOnly)).code).toBe(4404)
  })

  it('heartbeat: a client that answers pings stays, one that does not is dropped', async () => {
    const g = fixtureForTest()
    // Heartbeats 10 times a second: soon enough for a short test, and a pause of a busy machine between a ping and
    // its pong still does not count as a missed pong.
    const { url: fast } = await g.startRelay({ pingIntervalMs: 100 })
    await register(hub(fast), [
      ['alice', 'human'],
      ['bob', 'human'],
    ])
    const alive = await follow('/ws/alice', {}, g, fast)
    let pings = 0
    alive.ws.on('ping', () => pings++)
    const silent = await follow('/ws/bob', { autoPong: false }, g, fast)
    const gone = await closed(silent.ws)
    expect(gone.code).toBe(1006)
    await until(() => pings >= 3, 'three pings answered', { on: emits(alive.ws, 'ping') })
    expect(alive.ws.readyState).toBe(alive.ws.OPEN)
  })

  it('L6: a REST claim that runs out sends lease_lost to its holder\'s stream only', async () => {
    const g = fixtureForTest()
    const clock = new ManualClock()
    const { url: timed } = await g.startRelay({ clock })
    const timedApi = hub(timed)
    await register(timedApi, [
      ['alice', 'human'],
      ['claude', 'ai_agent'],
      ['gpt', 'ai_agent'],
    ])
    const claude = await follow('/ws/claude', {}, g, timed)
    const alice = await follow('/ws/alice', {}, g, timed)
    const task = await timedApi.post<{ task_id: string }>('/tasks/create', { title: 'slow job', created_by: 'alice' })
    const id = task.body.task_id
    expect((await timedApi.post(`/tasks/${id}/claim`, { entity_id: 'claude', duration_ms: 1_000 })).status).toBe(200)
    clock.advance(1_001)
    // The relay sweeps expired grants before each lease request: gpt's claim finds claude's gone.
    expect((await timedApi.post(`/tasks/${id}/claim`, { entity_id: 'gpt' })).status).toBe(200)
    const lost = await claude.next((fr) => fr.type === 'lease_lost', 'lease_lost on claude\'s stream')
    expect(lost).toMatchObject({ participant: 'claude', ref: `task:${id}`, data: { key: `task:${id}`, reason: 'expired' } })
    await alice.next((fr) => fr.type === 'task_claimed' && fr.participant === 'gpt', 'gpt\'s claim on alice\'s stream')
    expect(alice.frames.some((fr) => fr.type === 'lease_lost')).toBe(false)
    await claude.next((fr) => fr.type === 'task_claimed' && fr.participant === 'gpt', 'gpt\'s claim on claude\'s stream')
  })

  it('with tokens, a stream follows only the token\'s own participant (4403 otherwise)', async () => {
    const g = fixtureForTest()
    const auth = new Auth([
      { token: 'alice-token-0123456789', participant: 'alice', kind: 'human' },
      { token: 'claude-token-0123456789', participant: 'claude', kind: 'ai' },
    ])
    const { url: secured } = await g.startRelay({ auth })
    await register(hub(secured, { authorization: 'Bearer alice-token-0123456789' }), [['alice', 'human']])
    await register(hub(secured, { authorization: 'Bearer claude-token-0123456789' }), [['claude', 'ai_agent']])

    const spy = g.raw(secured, '/ws/claude', { headers: { authorization: 'Bearer alice-token-0123456789' } })
    const refused = await closed(spy)
    expect(refused.code).toBe(4403)
    expect(refused.reason).toMatch(/belongs to alice/)

    const alice = await follow('/ws/alice?token=alice-token-0123456789', {}, g, secured)
    await hub(secured, { authorization: 'Bearer claude-token-0123456789' }).post('/messages/send', { sender_id: 'claude', content: 'ai only', channel: 'ai-only' })
    await hub(secured, { authorization: 'Bearer claude-token-0123456789' }).post('/messages/send', { sender_id: 'claude', content: 'for all' })
    await alice.next((fr) => fr.data?.content === 'for all', 'the broadcast')
    expect(messages(alice).map((m) => m.content)).toEqual(['for all'])
  })
})
