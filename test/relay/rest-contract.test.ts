/**
 * The coordination hub's REST API on the relay (docs/HUBS.md): every route's success shape and error statuses, on
 * the default space and under `/spaces/<space>/`, over real HTTP against a relay on 127.0.0.1 port 0.
 */
import { beforeEach, describe, expect, it } from 'vitest'
import { ManualClock, Space } from '@chorus/sync'
import { Auth, REST_PRESENCE_MS } from '@chorus/relay'
import { prng, shuffle, testSeed } from '../support/random.ts'
import { fixtureForTest, fixturePerTest, synced } from '../support/relay.ts'
import { until } from '../support/wait.ts'
import {
  hub,
  hubPerTest,
  register,
  type ClaimReply,
  type EntityView,
  type ErrorBody,
  type MessageView,
  type ProposalView,
  type TaskView,
} from './rest-helpers.ts'

const f = fixturePerTest()
const api = hubPerTest(f)

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/

async function expectError(reply: Promise<{ status: number; body: unknown }>, status: number, error: string, message?: RegExp): Promise<ErrorBody> {
  const r = await reply
  const body = r.body as ErrorBody
  expect(r.status, JSON.stringify(body)).toBe(status)
  expect(body.error).toBe(error)
  expect(typeof body.message).toBe('string')
  if (message !== undefined) expect(body.message).toMatch(message)
  return body
}

describe('entities', () => {
  it('register takes both hubs\' entity types (any case), keeps the word, and re-registering updates', async () => {
    const cases: Array<[string, string, string]> = [
      ['claude-1', 'ai_agent', 'ai'],
      ['inst-1', 'AI_INSTANCE', 'ai'],
      ['sess-1', 'session', 'ai'],
      ['alice', 'Human', 'human'],
      ['box-1', 'computer', 'computer'],
      ['ci', 'service', 'service'],
    ]
    for (const [entity_id, entity_type, kind] of cases) {
      const r = await api.post<{ status: string; entity: EntityView }>('/entities/register', {
        entity_id,
        entity_type,
        name: `Name of ${entity_id}`,
        capabilities: ['code'],
        metadata: { machine: 'm1' },
      })
      expect(r.status).toBe(200)
      expect(r.body.status).toBe('registered')
      expect(r.body.entity).toMatchObject({ entity_id, entity_type, kind, name: `Name of ${entity_id}`, capabilities: ['code'], metadata: { machine: 'm1' }, status: 'online' })
      expect(r.body.entity.last_seen).toMatch(ISO)
      expect(r.body.entity.registered_at).toMatch(ISO)
    }
    const again = await api.post<{ entity: EntityView }>('/entities/register', { entity_id: 'claude-1', entity_type: 'session', name: 'Claude (resumed)' })
    expect(again.status).toBe(200)
    expect(again.body.entity).toMatchObject({ entity_id: 'claude-1', entity_type: 'session', name: 'Claude (resumed)', capabilities: [], metadata: {} })

    const list = await api.get<{ entities: EntityView[]; count: number }>('/entities/list')
    expect(list.status).toBe(200)
    expect(list.body.count).toBe(6)
    expect(list.body.entities.map((e) => [e.entity_id, e.entity_type, e.kind, e.status])).toEqual([
      ['alice', 'Human', 'human', 'online'],
      ['box-1', 'computer', 'computer', 'online'],
      ['ci', 'service', 'service', 'online'],
      ['claude-1', 'session', 'ai', 'online'],
      ['inst-1', 'AI_INSTANCE', 'ai', 'online'],
      ['sess-1', 'session', 'ai', 'online'],
    ])
    for (const e of list.body.entities) expect(Object.keys(e.metadata)).not.toContain('entity_type')
  })

  it('register refuses missing or malformed fields with 400 naming the field', async () => {
    const good = { entity_id: 'a', entity_type: 'ai_agent', name: 'A' }
    await expectError(api.post('/entities/register', { entity_type: 'ai_agent', name: 'A' }), 400, 'invalid_input', /^entity_id: entity_id is required/)
    await expectError(api.post('/entities/register', { ...good, entity_type: 'robot' }), 400, 'invalid_input', /^entity_type: entity_type must be one of human, ai, ai_agent/)
    await expectError(api.post('/entities/register', { ...good, entity_type: 7 }), 400, 'invalid_input', /^entity_type:/)
    for (const entity_type of ['__proto__', 'constructor', 'toString']) {
      await expectError(api.post('/entities/register', { ...good, entity_type }), 400, 'invalid_input', /^entity_type:/)
    }
    await expectError(api.post('/entities/register', { ...good, name: undefined }), 400, 'invalid_input', /^name: name is required/)
    await expectError(api.post('/entities/register', { ...good, name: '  ' }), 400, 'invalid_input', /^name: name must not be empty/)
    await expectError(api.post('/entities/register', { ...good, capabilities: 'code' }), 400, 'invalid_input', /^capabilities:/)
    await expectError(api.post('/entities/register', { ...good, metadata: [1] }), 400, 'invalid_input', /^metadata:/)
    await expectError(api.post('/entities/register', { ...good, entity_id: ' a' }), 400, 'invalid_input', /^entity_id: entity_id must not start or end with whitespace/)
    await expectError(api.raw('POST', '/entities/register', '{"entity_id": "a",'), 400, 'invalid_input', /not valid JSON/)
    await expectError(api.raw('POST', '/entities/register', '[1, 2]'), 400, 'invalid_input', /must be a JSON object/)
    expect((await api.get<{ count: number }>('/entities/list')).body.count).toBe(0)
  })

  it('heartbeat marks presence and answers with last_seen; an unknown id is 404', async () => {
    await register(api, [['bot', 'ai_agent']])
    const r = await api.post<{ status: string; entity_id: string; presence: string; last_seen: string }>('/entities/bot/heartbeat', { current_task: 'reviewing' })
    expect(r.status).toBe(200)
    expect(r.body).toMatchObject({ status: 'ok', entity_id: 'bot', presence: 'online' })
    expect(r.body.last_seen).toMatch(ISO)
    expect(Date.parse(r.body.last_seen)).toBeLessThanOrEqual(Date.now())
    const bare = await api.post('/entities/bot/heartbeat')
    expect(bare.status).toBe(200)
    const list = await api.get<{ entities: EntityView[] }>('/entities/list')
    expect(list.body.entities[0]).toMatchObject({ entity_id: 'bot', status: 'online', current_task: 'reviewing' })
    await expectError(api.post('/entities/nobody/heartbeat', {}), 404, 'not_found', /unknown entity "nobody"/)
    await expectError(api.post('/entities/bot/heartbeat', { current_task: 5 }), 400, 'invalid_input', /^current_task:/)
  })

  it('an entity that stops calling turns offline after REST_PRESENCE_MS, and a heartbeat brings it back', async () => {
    const clock = new ManualClock(Date.now())
    const g = fixtureForTest()
    const timed = hub((await g.startRelay({ clock })).url)
    await register(timed, [['bot', 'ai_agent']])
    const status = async (): Promise<string | undefined> => (await timed.get<{ entities: EntityView[] }>('/entities/list')).body.entities[0]?.status
    expect(await status()).toBe('online')
    clock.advance(REST_PRESENCE_MS + 1)
    expect(await status()).toBe('offline')
    expect((await timed.post('/entities/bot/heartbeat')).status).toBe(200)
    expect(await status()).toBe('online')
  })
})

describe('messages', () => {
  beforeEach(async () => {
    await register(api, [
      ['alice', 'human'],
      ['bob', 'human'],
      ['claude', 'ai_agent'],
      ['gpt', 'ai_instance'],
    ])
  })

  it('send: defaults to general and normal, takes priorities in any case, direct messages and replies', async () => {
    const r = await api.post<{ status: string; message: MessageView }>('/messages/send', { sender_id: 'claude', content: 'hello all' })
    expect(r.status).toBe(200)
    expect(r.body.status).toBe('sent')
    const m = r.body.message
    expect(m).toMatchObject({ sender_id: 'claude', content: 'hello all', channel: 'general', recipient_id: null, priority: 'normal', reply_to: null })
    expect(m.id).toMatch(/^\d+-\d+$/)
    expect(m.timestamp).toMatch(ISO)

    const urgent = await api.post<{ message: MessageView }>('/messages/send', { sender_id: 'alice', content: 'prod is down', channel: 'urgent', priority: 'URGENT' })
    expect(urgent.body.message).toMatchObject({ channel: 'urgent', priority: 'urgent' })
    const direct = await api.post<{ message: MessageView }>('/messages/send', { sender_id: 'alice', content: 'can you look?', recipient_id: 'claude', reply_to: m.id, recipient: null })
    expect(direct.body.message).toMatchObject({ recipient_id: 'claude', reply_to: m.id, channel: 'general' })
    for (const priority of ['low', 'normal', 'high', 'urgent']) {
      expect((await api.post('/messages/send', { sender_id: 'bob', content: priority, priority })).status).toBe(200)
    }

    await expectError(api.post('/messages/send', { content: 'x' }), 400, 'invalid_input', /^sender_id: sender_id is required/)
    await expectError(api.post('/messages/send', { sender_id: 'alice' }), 400, 'invalid_input', /^content: content is required/)
    await expectError(api.post('/messages/send', { sender_id: 'alice', content: '   ' }), 400, 'invalid_input', /^content: content must not be empty/)
    await expectError(api.post('/messages/send', { sender_id: 'alice', content: 'x', priority: 'critical' }), 400, 'invalid_input', /^priority: priority must be one of low, normal, high, urgent/)
    await expectError(api.post('/messages/send', { sender_id: 'alice', content: 'x', channel: 'Bad Channel' }), 400, 'invalid_input', /^channel:/)
    await expectError(api.post('/messages/send', { sender_id: 'alice', content: 42 }), 400, 'invalid_input', /^content: content must be a string/)
    await expectError(api.post('/messages/send', { sender_id: 'mallory', content: 'x' }), 404, 'not_found', /mallory/)
    await expectError(api.post('/messages/send', { sender_id: 'alice', content: 'x', recipient_id: 'nobody' }), 404, 'not_found', /nobody/)
    await expectError(api.post('/messages/send', { sender_id: 'alice', content: 'x', reply_to: '1-1' }), 404, 'not_found', /unknown message/)
  })

  it('restricted channels: only the right kind sends; recent and for/<id> show them only to that kind, and never another\'s direct messages', async () => {
    const send = (sender_id: string, content: string, extra: Record<string, unknown> = {}) => api.post<{ message: MessageView }>('/messages/send', { sender_id, content, ...extra })
    expect((await send('claude', 'ai secret', { channel: 'ai-only' })).status).toBe(200)
    expect((await send('alice', 'human decision', { channel: 'human-only' })).status).toBe(200)
    await expectError(send('alice', 'let me in', { channel: 'ai-only' }), 403, 'forbidden', /human participants may not use the ai-only channel/)
    await expectError(send('gpt', 'let me in', { channel: 'human-only' }), 403, 'forbidden', /ai participants may not use the human-only channel/)
    await expectError(send('claude', 'psst', { channel: 'ai-only', recipient_id: 'alice' }), 403, 'forbidden', /alice may not read the ai-only channel/)
    expect((await send('claude', 'for gpt only', { recipient_id: 'gpt' })).status).toBe(200)
    expect((await send('alice', 'for bob only', { recipient_id: 'bob' })).status).toBe(200)
    expect((await send('bob', 'hello everyone')).status).toBe(200)

    const contents = (r: { body: { messages: MessageView[] } }) => r.body.messages.map((m) => m.content)
    const publicFeed = await api.get<{ messages: MessageView[]; count: number }>('/messages/recent')
    expect(publicFeed.status).toBe(200)
    expect(contents(publicFeed)).toEqual(['hello everyone'])
    expect(publicFeed.body.count).toBe(1)

    expect(contents(await api.get('/messages/recent?entity_id=claude'))).toEqual(['ai secret', 'for gpt only', 'hello everyone'])
    expect(contents(await api.get('/messages/recent?entity_id=gpt'))).toEqual(['ai secret', 'for gpt only', 'hello everyone'])
    expect(contents(await api.get('/messages/recent?entity_id=bob'))).toEqual(['human decision', 'for bob only', 'hello everyone'])
    expect(contents(await api.get('/messages/recent?entity_id=alice'))).toEqual(['human decision', 'for bob only', 'hello everyone'])
    expect(contents(await api.get('/messages/recent?entity_id=claude&channel=ai-only'))).toEqual(['ai secret'])
    await expectError(api.get('/messages/recent?channel=ai-only'), 403, 'forbidden', /name one with \?entity_id=/)
    await expectError(api.get('/messages/recent?entity_id=alice&channel=ai-only'), 403, 'forbidden', /alice is human/)
    await expectError(api.get('/messages/recent?entity_id=nobody'), 404, 'not_found')

    const forBob = await api.get<{ entity_id: string; messages: MessageView[]; count: number }>('/messages/for/bob')
    expect(forBob.status).toBe(200)
    expect(forBob.body.entity_id).toBe('bob')
    expect(contents(forBob)).toEqual(['human decision', 'for bob only', 'hello everyone'])
    const forGpt = await api.get<{ messages: MessageView[] }>('/messages/for/gpt')
    expect(contents(forGpt)).toEqual(['ai secret', 'for gpt only', 'hello everyone'])
    for (const m of forGpt.body.messages) expect(m.channel === 'human-only' || (m.recipient_id !== null && m.recipient_id !== 'gpt')).toBe(false)
    await expectError(api.get('/messages/for/nobody'), 404, 'not_found')
    await expectError(api.get('/messages/for/bob?channel=ai-only'), 403, 'forbidden')
  })

  it('recent: channel filter, limit default 50, capped at 1000, newest kept and returned oldest first; bad values are 400', async () => {
    for (let i = 0; i < 60; i++) await api.post('/messages/send', { sender_id: 'bob', content: `m${i}`, channel: i % 2 === 0 ? 'general' : 'technical' })
    const all = await api.get<{ messages: MessageView[] }>('/messages/recent')
    expect(all.body.messages).toHaveLength(50)
    expect(all.body.messages[0]?.content).toBe('m10')
    expect(all.body.messages[49]?.content).toBe('m59')
    const few = await api.get<{ messages: MessageView[] }>('/messages/recent?limit=3&channel=technical')
    expect(few.body.messages.map((m) => m.content)).toEqual(['m55', 'm57', 'm59'])
    expect((await api.get<{ messages: MessageView[] }>('/messages/recent?limit=5000')).body.messages).toHaveLength(60)
    await expectError(api.get('/messages/recent?limit=abc'), 400, 'invalid_input', /limit must be a whole number from 1 to 1000/)
    await expectError(api.get('/messages/recent?limit=0'), 400, 'invalid_input')
    await expectError(api.get('/messages/recent?limit=-3'), 400, 'invalid_input')
    await expectError(api.get('/messages/recent?channel=NOPE'), 400, 'invalid_input')
    // Only ai-only and human-only are restricted, not names an object inherits.
    expect((await api.get('/messages/recent?channel=constructor')).status).toBe(200)
  })
})

describe('tasks', () => {
  beforeEach(async () => {
    await register(api, [
      ['alice', 'human'],
      ['claude', 'ai_agent'],
      ['gpt', 'session'],
    ])
  })

  it('create, list by status, claim, complete: the whole life of a task, with its errors', async () => {
    const created = await api.post<{ status: string; task_id: string; task: TaskView }>('/tasks/create', {
      title: 'Fix the build',
      description: 'CI is red',
      priority: 'high',
      requires_human: false,
      created_by: 'alice',
    })
    expect(created.status).toBe(200)
    expect(created.body.status).toBe('created')
    const id = created.body.task_id
    expect(created.body.task).toMatchObject({
      task_id: id,
      title: 'Fix the build',
      description: 'CI is red',
      priority: 'high',
      requires_human: false,
      status: 'open',
      created_by: 'alice',
      claimed_by: null,
      completed_by: null,
      result: null,
    })
    expect(created.body.task.created_at).toMatch(ISO)

    const open = await api.get<{ tasks: TaskView[]; count: number }>('/tasks/list?status=open')
    expect(open.body.tasks.map((t) => t.task_id)).toEqual([id])
    expect((await api.get<{ count: number }>('/tasks/list?status=claimed')).body.count).toBe(0)
    await expectError(api.get('/tasks/list?status=done'), 400, 'invalid_input', /status must be one of open, claimed, completed/)

    const claim = await api.post<ClaimReply>(`/tasks/${id}/claim`, { entity_id: 'claude', duration_ms: 30_000 })
    expect(claim.status).toBe(200)
    expect(claim.body.status).toBe('claimed')
    expect(claim.body.task).toMatchObject({ task_id: id, status: 'claimed', claimed_by: 'claude', claim_duration_ms: 30_000 })
    expect(claim.body.lease.duration_ms).toBe(30_000)
    expect(claim.body.lease.token).toBeGreaterThan(0)
    expect(claim.body.lease.grant).toMatchObject({ space: 'default', key: `task:${id}`, holder: 'claude', token: claim.body.lease.token, duration: 30_000 })
    expect(claim.body.lease.grant.signature).toMatch(/^[A-Za-z0-9_-]+$/)

    await expectError(api.post(`/tasks/${id}/claim`, { entity_id: 'gpt' }), 409, 'conflict', /already claimed/)
    await expectError(api.post(`/tasks/${id}/complete`, { entity_id: 'gpt' }), 403, 'forbidden', /gpt does not hold the claim/)
    expect((await api.get<{ tasks: TaskView[] }>('/tasks/list?status=claimed')).body.tasks.map((t) => t.claimed_by)).toEqual(['claude'])

    const done = await api.post<{ status: string; task: TaskView }>(`/tasks/${id}/complete`, { entity_id: 'claude', result: { commit: 'abc123' } })
    expect(done.status).toBe(200)
    expect(done.body.status).toBe('completed')
    expect(done.body.task).toMatchObject({ status: 'completed', completed_by: 'claude', result: { commit: 'abc123' }, claimed_by: null })
    expect(done.body.task.history.map((h) => h.status)).toEqual(['open', 'claimed', 'completed'])
    await expectError(api.post(`/tasks/${id}/complete`, { entity_id: 'claude' }), 409, 'conflict', /already completed/)
    await expectError(api.post(`/tasks/${id}/claim`, { entity_id: 'gpt' }), 409, 'conflict', /already completed/)
    expect((await api.get<{ tasks: TaskView[] }>('/tasks/list?status=completed')).body.tasks.map((t) => t.completed_by)).toEqual(['claude'])
    expect((await api.get<{ count: number }>('/tasks/list')).body.count).toBe(1)
  })

  it('requires_human: an AI claiming it is 403, a human may; unknown ids are 404; bad bodies are 400', async () => {
    const { body } = await api.post<{ task_id: string }>('/tasks/create', { title: 'Approve the $500 spend', requires_human: true, created_by: 'claude' })
    await expectError(api.post(`/tasks/${body.task_id}/claim`, { entity_id: 'claude' }), 403, 'forbidden', /requires a human/)
    await expectError(api.post(`/tasks/${body.task_id}/claim`, { entity_id: 'gpt' }), 403, 'forbidden', /requires a human/)
    const human = await api.post<ClaimReply>(`/tasks/${body.task_id}/claim`, { entity_id: 'alice' })
    expect(human.status).toBe(200)
    expect(human.body.lease.duration_ms).toBe(60_000)

    await expectError(api.post('/tasks/t-nope/claim', { entity_id: 'alice' }), 404, 'not_found', /unknown task "t-nope"/)
    await expectError(api.post('/tasks/t-nope/complete', { entity_id: 'alice' }), 404, 'not_found', /unknown task/)
    await expectError(api.post(`/tasks/${body.task_id}/claim`, { entity_id: 'nobody' }), 404, 'not_found', /unknown entity "nobody"/)
    await expectError(api.post(`/tasks/${body.task_id}/claim`, {}), 400, 'invalid_input', /^entity_id: entity_id is required/)
    await expectError(api.post(`/tasks/${body.task_id}/claim`, { entity_id: 'alice', duration_ms: 'long' }), 400, 'invalid_input', /^duration_ms:/)
    await expectError(api.post(`/tasks/${body.task_id}/claim`, { entity_id: 'alice', duration_ms: 10 }), 400, 'invalid_input', /claim duration must be between/)
    await expectError(api.post('/tasks/create', { description: 'no title' }), 400, 'invalid_input', /^title: title is required/)
    await expectError(api.post('/tasks/create', { title: 'x', requires_human: 'yes' }), 400, 'invalid_input', /^requires_human: requires_human must be true or false/)
    await expectError(api.post('/tasks/create', { title: 'x', priority: 'whenever' }), 400, 'invalid_input', /^priority:/)
    await expectError(api.post('/tasks/create', { title: 'x', created_by: 'nobody' }), 404, 'not_found', /nobody/)
  })

  it('renew and release: the holder keeps or gives back its claim; others cannot', async () => {
    const { body } = await api.post<{ task_id: string }>('/tasks/create', { title: 'Long job', created_by: 'alice' })
    const claim = await api.post<ClaimReply>(`/tasks/${body.task_id}/claim`, { entity_id: 'claude', duration_ms: 5_000 })
    const renewed = await api.post<ClaimReply>(`/tasks/${body.task_id}/renew`, { entity_id: 'claude', duration_ms: 120_000 })
    expect(renewed.status).toBe(200)
    expect(renewed.body.lease).toMatchObject({ token: claim.body.lease.token, duration_ms: 120_000 })
    await expectError(api.post(`/tasks/${body.task_id}/release`, { entity_id: 'gpt' }), 403, 'forbidden')
    const released = await api.post<{ status: string; task: TaskView }>(`/tasks/${body.task_id}/release`, { entity_id: 'claude' })
    expect(released.body).toMatchObject({ status: 'released', task: { status: 'open', claimed_by: null } })
    expect((await api.post<ClaimReply>(`/tasks/${body.task_id}/claim`, { entity_id: 'gpt' })).body.lease.token).toBeGreaterThan(claim.body.lease.token)
  })

  it('create without created_by (the hub script\'s way): made by the relay\'s coordination-hub service', async () => {
    const r = await api.post<{ task: TaskView }>('/tasks/create', { title: 'From a shell script', description: 'no creator named', priority: 'medium' })
    expect(r.status).toBe(200)
    expect(r.body.task).toMatchObject({ created_by: 'coordination-hub', priority: 'normal', requires_human: false })
    const hubEntity = (await api.get<{ entities: EntityView[] }>('/entities/list')).body.entities.find((e) => e.entity_id === 'coordination-hub')
    expect(hubEntity).toMatchObject({ entity_type: 'service', kind: 'service' })
  })

  it('the claim race: 5 claimants over 10 tasks, each in its own random order; every task claimed exactly once, then completed by its winner', async () => {
    const seed = testSeed()
    const why = `seed ${seed}`
    const random = prng(seed)
    const workers = ['w1', 'w2', 'w3', 'w4', 'w5']
    await register(api, workers.map((w): [string, string] => [w, 'ai_agent']))
    const ids: string[] = []
    for (let i = 0; i < 10; i++) ids.push((await api.post<{ task_id: string }>('/tasks/create', { title: `job ${i}`, created_by: 'alice' })).body.task_id)

    const orders = workers.map(() => shuffle(ids, random))
    const attempts = await Promise.all(
      workers.map((w, i) =>
        Promise.all((orders[i] as string[]).map(async (id) => ({ id, worker: w, ...(await api.post<ClaimReply | ErrorBody>(`/tasks/${id}/claim`, { entity_id: w })) }))),
      ),
    )
    const winners = new Map<string, string>()
    for (const a of attempts.flat()) {
      if (a.status === 200) {
        expect(winners.has(a.id), `${why}: ${a.id} claimed twice`).toBe(false)
        winners.set(a.id, a.worker)
        expect((a.body as ClaimReply).task.claimed_by, why).toBe(a.worker)
      } else {
        expect(a.status, `${why}: ${JSON.stringify(a.body)}`).toBe(409)
        expect((a.body as ErrorBody).error, why).toBe('conflict')
      }
    }
    expect(winners.size, why).toBe(10)
    expect(attempts.flat().filter((a) => a.status === 409), why).toHaveLength(40)

    const done = await Promise.all([...winners].map(([id, w]) => api.post<{ task: TaskView }>(`/tasks/${id}/complete`, { entity_id: w, result: `${w} did it` })))
    for (const d of done) expect(d.status, why).toBe(200)
    const list = await api.get<{ tasks: TaskView[] }>('/tasks/list?status=completed')
    expect(list.body.tasks, why).toHaveLength(10)
    for (const t of list.body.tasks) {
      expect(t.completed_by, why).toBe(winners.get(t.task_id))
      expect(t.result, why).toBe(`${winners.get(t.task_id)} did it`)
    }
  })
})

describe('proposals', () => {
  beforeEach(async () => {
    await register(api, [
      ['alice', 'human'],
      ['claude', 'ai_agent'],
      ['gpt', 'ai_agent'],
      ['bob', 'human'],
    ])
  })

  it('create (threshold 0.75 by default), vote for/against/abstain, list with tallies and status', async () => {
    const created = await api.post<{ status: string; proposal_id: string; proposal: ProposalView }>('/proposals/create', {
      title: 'Adopt Chorus',
      description: 'replace both hubs',
      created_by: 'alice',
    })
    expect(created.status).toBe(200)
    expect(created.body.status).toBe('created')
    const id = created.body.proposal_id
    expect(created.body.proposal).toMatchObject({
      proposal_id: id,
      title: 'Adopt Chorus',
      description: 'replace both hubs',
      created_by: 'alice',
      threshold: 0.75,
      quorum: 1,
      deadline: null,
      status: 'open',
      tally: { for: 0, against: 0, abstain: 0, total: 0, approval: 0 },
    })

    const vote = (entity_id: string, v: string) => api.post<{ status: string; vote: string; proposal: ProposalView }>(`/proposals/${id}/vote`, { entity_id, vote: v })
    const first = await vote('claude', 'for')
    expect(first.status).toBe(200)
    expect(first.body).toMatchObject({ status: 'voted', vote: 'for', proposal: { tally: { for: 1, total: 1, approval: 1 }, status: 'approved' } })
    await vote('gpt', 'against')
    await vote('bob', 'ABSTAIN')
    const list = await api.get<{ proposals: ProposalView[]; count: number }>('/proposals/list')
    expect(list.body.count).toBe(1)
    expect(list.body.proposals[0]).toMatchObject({ votes: { claude: 'for', gpt: 'against', bob: 'abstain' }, tally: { for: 1, against: 1, abstain: 1, total: 3, approval: 0.5 }, status: 'open' })
    await vote('gpt', 'for') // a changed vote replaces the voter's own
    const after = await api.get<{ proposals: ProposalView[] }>('/proposals/list?status=approved')
    expect(after.body.proposals[0]).toMatchObject({ tally: { for: 2, against: 0, abstain: 1, total: 3, approval: 1 }, status: 'approved' })
    expect((await api.get<{ count: number }>('/proposals/list?status=open')).body.count).toBe(0)
    await expectError(api.get('/proposals/list?status=passed'), 400, 'invalid_input', /status must be one of open, approved, rejected, expired/)
  })

  it('errors: bad votes and thresholds are 400, unknown ids 404, a closed proposal 409', async () => {
    const past = new Date(Date.now() - 60_000).toISOString()
    const closed = await api.post<{ proposal_id: string; proposal: ProposalView }>('/proposals/create', { title: 'Too late', created_by: 'alice', deadline: past, threshold: 0.5 })
    expect(closed.status).toBe(200)
    expect(closed.body.proposal).toMatchObject({ deadline: past, threshold: 0.5, status: 'expired' })
    await expectError(api.post(`/proposals/${closed.body.proposal_id}/vote`, { entity_id: 'bob', vote: 'for' }), 409, 'closed', /is closed/)

    const { body } = await api.post<{ proposal_id: string }>('/proposals/create', { title: 'Open one', created_by: 'bob', deadline: Date.now() + 3_600_000 })
    await expectError(api.post(`/proposals/${body.proposal_id}/vote`, { entity_id: 'bob', vote: 'maybe' }), 400, 'invalid_input', /^vote: vote must be one of for, against, abstain/)
    await expectError(api.post(`/proposals/${body.proposal_id}/vote`, { vote: 'for' }), 400, 'invalid_input', /^entity_id: entity_id is required/)
    await expectError(api.post(`/proposals/${body.proposal_id}/vote`, { entity_id: 'nobody', vote: 'for' }), 404, 'not_found', /nobody/)
    await expectError(api.post('/proposals/p-nope/vote', { entity_id: 'bob', vote: 'for' }), 404, 'not_found', /unknown proposal/)
    await expectError(api.post('/proposals/create', { title: 'x', created_by: 'bob', threshold: 1.5 }), 400, 'invalid_input', /^threshold: threshold must be at most 1/)
    await expectError(api.post('/proposals/create', { title: 'x', created_by: 'bob', threshold: 0 }), 400, 'invalid_input', /^threshold:/)
    await expectError(api.post('/proposals/create', { title: 'x', created_by: 'bob', deadline: 'someday' }), 400, 'invalid_input', /^deadline:/)
    await expectError(api.post('/proposals/create', { title: 'x' }), 400, 'invalid_input', /^created_by: created_by is required/)
    await expectError(api.post('/proposals/create', { title: 'x', created_by: 'nobody' }), 404, 'not_found')
  })
})

describe('state and dependencies', () => {
  it('GET /state: the shared state and a summary of participants, tasks and proposals', async () => {
    const empty = await api.get<{ space: string; state: unknown; summary: Record<string, unknown> }>('/state')
    expect(empty.status).toBe(200)
    expect(empty.body).toMatchObject({ space: 'default', state: {}, summary: { participants: { total: 0 }, tasks: { total: 0 }, proposals: { total: 0 } } })

    await register(api, [
      ['alice', 'human'],
      ['claude', 'ai_agent'],
    ])
    const t1 = (await api.post<{ task_id: string }>('/tasks/create', { title: 'a', created_by: 'alice' })).body.task_id
    const t2 = (await api.post<{ task_id: string }>('/tasks/create', { title: 'b', created_by: 'alice' })).body.task_id
    await api.post('/tasks/create', { title: 'c', created_by: 'alice' })
    await api.post(`/tasks/${t1}/claim`, { entity_id: 'claude' })
    await api.post(`/tasks/${t2}/claim`, { entity_id: 'claude' })
    await api.post(`/tasks/${t2}/complete`, { entity_id: 'claude' })
    await api.post('/proposals/create', { title: 'p', created_by: 'alice' })
    // Shared state written by a sync client reaches the REST view.
    const provider = f.provider(api.url, 'default')
    await synced(provider)
    const replica = new Space({ id: 'default', doc: provider.doc })
    replica.state.set('project_status', 'in_progress', { by: 'alice' })
    replica.destroy()
    await until(async () => (await api.get<{ state: Record<string, unknown> }>('/state')).body.state.project_status !== undefined, 'state to reach the relay')

    const state = await api.get<{ state: Record<string, unknown>; summary: Record<string, unknown> }>('/state')
    expect(state.body.state).toEqual({ project_status: 'in_progress' })
    expect(state.body.summary).toEqual({
      participants: { total: 2, online: 2, idle: 0, offline: 0 },
      tasks: { total: 3, open: 1, claimed: 1, completed: 1 },
      proposals: { total: 1, open: 1, approved: 0, rejected: 0, expired: 0 },
      resources: { total: 0, locked: 0 },
    })
  })

  it('GET /dependencies: each part with its real status and version', async () => {
    const r = await api.get<{ status: string; space: string; relay: { name: string; version: string }; dependencies: Record<string, { status: string; version?: string; [k: string]: unknown }> }>('/dependencies')
    expect(r.status).toBe(200)
    expect(r.body.status).toBe('ok')
    expect(r.body.relay).toEqual({ name: 'chorus-relay', version: expect.stringMatching(/^\d+\.\d+\.\d+/) as unknown })
    const d = r.body.dependencies
    expect(d.node).toEqual({ status: 'ok', version: process.versions.node })
    expect(d['node:sqlite']?.status).toBe('ok')
    expect(d['node:sqlite']?.version).toMatch(/^3\.\d+\.\d+$/)
    expect(d.store).toMatchObject({ status: 'ok' })
    expect(d.leases).toMatchObject({ status: 'ok', relay_key: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/) as unknown, live_task_claims: 0 })
    expect(d['@chorus/sync']).toMatchObject({ status: 'ok', version: '0.1.0', schema: 1 })
    for (const name of ['yjs', 'y-protocols', 'ws', 'zod']) expect(d[name]).toMatchObject({ status: 'ok', version: expect.stringMatching(/^\d+\.\d+\.\d+/) as unknown })
    expect(d.yjs?.version).toMatch(/^13\./)
    const capabilities = (await (await fetch(`${api.url}/capabilities`)).json()) as { relayKey: string; version: string }
    expect(d.leases?.relay_key).toBe(capabilities.relayKey)
    expect(r.body.relay.version).toBe(capabilities.version)
  })
})

describe('spaces', () => {
  it('the same routes under /spaces/<space>/ act in that space only', async () => {
    await register(api, [['alice', 'human']], '/spaces/team')
    await register(api, [['bob', 'human']])
    const team = await api.get<{ entities: EntityView[] }>('/spaces/team/entities/list')
    expect(team.body.entities.map((e) => e.entity_id)).toEqual(['alice'])
    expect((await api.get<{ entities: EntityView[] }>('/entities/list')).body.entities.map((e) => e.entity_id)).toEqual(['bob'])

    await expectError(api.post('/messages/send', { sender_id: 'alice', content: 'wrong space' }), 404, 'not_found')
    expect((await api.post('/spaces/team/messages/send', { sender_id: 'alice', content: 'team only' })).status).toBe(200)
    expect((await api.get<{ count: number }>('/messages/recent')).body.count).toBe(0)
    expect((await api.get<{ messages: MessageView[] }>('/spaces/team/messages/recent')).body.messages.map((m) => m.content)).toEqual(['team only'])
    expect((await api.get<{ messages: MessageView[] }>('/spaces/team/messages/for/alice')).body.messages).toHaveLength(1)

    const task = await api.post<{ task_id: string }>('/spaces/team/tasks/create', { title: 'team task', created_by: 'alice' })
    expect((await api.get<{ count: number }>('/tasks/list')).body.count).toBe(0)
    const claim = await api.post<ClaimReply>(`/spaces/team/tasks/${task.body.task_id}/claim`, { entity_id: 'alice' })
    expect(claim.body.lease.grant.space).toBe('team')
    await expectError(api.post(`/tasks/${task.body.task_id}/claim`, { entity_id: 'bob' }), 404, 'not_found')
    expect((await api.post(`/spaces/team/tasks/${task.body.task_id}/complete`, { entity_id: 'alice' })).status).toBe(200)

    const p = await api.post<{ proposal_id: string }>('/spaces/team/proposals/create', { title: 'team vote', created_by: 'alice' })
    expect((await api.post(`/spaces/team/proposals/${p.body.proposal_id}/vote`, { entity_id: 'alice', vote: 'for' })).status).toBe(200)
    expect((await api.get<{ count: number }>('/proposals/list')).body.count).toBe(0)
    expect((await api.get<{ count: number }>('/spaces/team/proposals/list')).body.count).toBe(1)
    expect((await api.post('/spaces/team/entities/alice/heartbeat')).status).toBe(200)
    expect((await api.get<{ space: string; summary: { tasks: { completed: number } } }>('/spaces/team/state')).body).toMatchObject({ space: 'team', summary: { tasks: { completed: 1 } } })
    expect((await api.get<{ space: string }>('/spaces/team/dependencies')).body.space).toBe('team')
    await expectError(api.get('/spaces/bad%20name/entities/list'), 400, 'invalid_input')
    await expectError(api.get('/spaces/team%23ai-only/messages/recent'), 400, 'invalid_input', /restricted-channel document/)
  })
})

describe('HTTP', () => {
  it('unknown routes are 404, wrong methods 405 with Allow, bodies over the limit 413', async () => {
    await expectError(api.get('/entities/nope'), 404, 'not_found', /no route for GET \/entities\/nope/)
    await expectError(api.post('/tasks/t-1/explode', {}), 404, 'not_found')
    await expectError(api.get('/spaces/team/tasks'), 404, 'not_found')
    const wrong = await fetch(`${api.url}/entities/register`)
    expect(wrong.status).toBe(405)
    expect(wrong.headers.get('allow')).toBe('POST')
    expect(((await wrong.json()) as ErrorBody).error).toBe('method_not_allowed')
    for (const path of ['/entities/list', '/messages/recent', '/tasks/list', '/proposals/list', '/state', '/dependencies']) {
      expect((await api.post(path, {})).status, path).toBe(405)
    }
    for (const path of ['/messages/send', '/tasks/create', '/tasks/x/claim', '/tasks/x/complete', '/proposals/create', '/proposals/x/vote', '/entities/x/heartbeat']) {
      expect((await api.get(path)).status, path).toBe(405)
    }

    const g = fixtureForTest()
    const small = await g.startRelay({ maxBodyBytes: 256 })
    const tight = hub(small.url)
    await expectError(tight.post('/entities/register', { entity_id: 'a', entity_type: 'human', name: 'x'.repeat(300) }), 413, 'too_large', /limit is 256 bytes/)
    await expectError(tight.post('/messages/send', { sender_id: 'a', content: 'y'.repeat(1000) }), 413, 'too_large')
    expect((await tight.post('/entities/register', { entity_id: 'a', entity_type: 'human', name: 'A' })).status).toBe(200)
    // A chunked body without content-length is cut off at the limit too.
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode(`{"sender_id":"a","content":"${'z'.repeat(400)}"}`))
        controller.close()
      },
    })
    const chunked = await fetch(`${small.url}/messages/send`, { method: 'POST', body: stream, duplex: 'half', headers: { 'content-type': 'application/json' } } as RequestInit)
    expect(chunked.status).toBe(413)
  })
})

describe('tokens', () => {
  it('with tokens, one acts and reads only as oneself, with the token\'s kind', async () => {
    const auth = new Auth([
      { token: 'alice-token-0123456789', participant: 'alice', kind: 'human' },
      { token: 'claude-token-0123456789', participant: 'claude', kind: 'ai' },
      { token: 'team-only-token-012345', participant: 'carol', kind: 'human', spaces: ['team'] },
    ])
    const g = fixtureForTest()
    const { url: secured } = await g.startRelay({ auth })
    const alice = hub(secured, { authorization: 'Bearer alice-token-0123456789' })
    const claude = hub(secured, { authorization: 'Bearer claude-token-0123456789' })
    const carol = hub(secured, { authorization: 'Bearer team-only-token-012345' })
    await expectError(hub(secured).get('/entities/list'), 401, 'unauthorized')
    await expectError(hub(secured, { authorization: 'Bearer wrong-token-0123456789' }).get('/entities/list'), 401, 'unauthorized')
    // GET /whoami tells a page who its token stands for; an open relay says it is open.
    expect((await api.get('/whoami')).body).toEqual({ open: true })
    expect((await carol.get('/whoami')).body).toEqual({ open: false, participant: 'carol', kind: 'human', spaces: ['team'] })
    expect((await claude.get('/whoami')).body).toEqual({ open: false, participant: 'claude', kind: 'ai' })
    await expectError(hub(secured).get('/whoami'), 401, 'unauthorized')

    await expectError(alice.post('/entities/register', { entity_id: 'claude', entity_type: 'ai_agent', name: 'fake' }), 403, 'forbidden', /cannot act as claude/)
    await expectError(alice.post('/entities/register', { entity_id: 'alice', entity_type: 'ai_agent', name: 'Alice' }), 403, 'forbidden', /token is for a human/)
    await register(alice, [['alice', 'human']])
    await register(claude, [['claude', 'session']])
    await expectError(carol.get('/entities/list'), 403, 'forbidden', /does not give access to space default/)
    expect((await carol.get('/spaces/team/entities/list')).status).toBe(200)

    await expectError(alice.post('/messages/send', { sender_id: 'claude', content: 'spoof' }), 403, 'forbidden')
    expect((await claude.post('/messages/send', { sender_id: 'claude', content: 'ai secret', channel: 'ai-only' })).status).toBe(200)
    expect((await claude.post('/messages/send', { sender_id: 'claude', content: 'hi all' })).status).toBe(200)
    // The token's identity is the reader: alice never sees ai-only, even when she names claude.
    expect((await alice.get<{ messages: MessageView[] }>('/messages/recent')).body.messages.map((m) => m.content)).toEqual(['hi all'])
    await expectError(alice.get('/messages/recent?entity_id=claude'), 403, 'forbidden')
    await expectError(alice.get('/messages/for/claude'), 403, 'forbidden')
    expect((await claude.get<{ messages: MessageView[] }>('/messages/for/claude')).body.messages.map((m) => m.content)).toEqual(['ai secret', 'hi all'])

    const t = await claude.post<{ task: TaskView }>('/tasks/create', { title: 'made by the token holder' })
    expect(t.body.task.created_by).toBe('claude')
    await expectError(alice.post(`/tasks/${t.body.task.task_id}/claim`, { entity_id: 'claude' }), 403, 'forbidden')
    expect((await alice.post(`/tasks/${t.body.task.task_id}/claim`, { entity_id: 'alice' })).status).toBe(200)
    await expectError(claude.post('/proposals/create', { title: 'x', created_by: 'alice' }), 403, 'forbidden')
    await expectError(alice.post('/entities/claude/heartbeat'), 403, 'forbidden')
  })
})
