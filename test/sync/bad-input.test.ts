/** Bad input gets a typed error with a clear message and never changes the document. */
import * as Y from 'yjs'
import { describe, expect, it } from 'vitest'
import { ChorusError, LIMITS, LocalLeaseClient, Space, type Json } from '@chorus/sync'

const setup = (): Space => {
  const space = new Space({ id: 'bad-input', leases: new LocalLeaseClient() })
  space.join({ id: 'alice', name: 'Alice', kind: 'human' })
  space.join({ id: 'bot', name: 'Bot', kind: 'ai' })
  return space
}

/** Runs `fn`, expects a ChorusError with `code` whose message matches, and checks the document did not change. */
const refuses = async (space: Space, code: ChorusError['code'], message: RegExp, fn: () => unknown): Promise<void> => {
  const before = space.documents.map((d) => Y.encodeStateAsUpdate(d.doc))
  let error: unknown
  try {
    await fn()
  } catch (e) {
    error = e
  }
  expect(error, `expected a ${code} error`).toBeInstanceOf(ChorusError)
  expect((error as ChorusError).code).toBe(code)
  expect((error as ChorusError).message).toMatch(message)
  const after = space.documents.map((d) => Y.encodeStateAsUpdate(d.doc))
  expect(after).toEqual(before)
}

describe('bad input', () => {
  it('rejects invalid kinds, priorities, votes and channels', async () => {
    const s = setup()
    await refuses(s, 'invalid_input', /kind must be one of human, ai, computer, service/, () => s.participants.join({ name: 'X', kind: 'robot' as 'ai' }))
    await refuses(s, 'invalid_input', /priority must be one of low, normal, high, urgent/, () => s.messages.send({ from: 'alice', content: 'hi', priority: 'extreme' as 'low' }))
    await refuses(s, 'invalid_input', /priority must be one of/, () => s.tasks.create({ title: 't', createdBy: 'alice', priority: 'soon' as 'low' }))
    const p = s.proposals.create({ title: 'p', proposer: 'alice' })
    await refuses(s, 'invalid_input', /vote must be one of for, against, abstain/, () => s.proposals.vote(p.id, 'bot', 'maybe' as 'for'))
    await refuses(s, 'invalid_input', /channel must be/, () => s.messages.send({ from: 'alice', content: 'hi', channel: 'Not A Channel!' }))
    await refuses(s, 'invalid_input', /threshold must be at most 1/, () => s.proposals.create({ title: 'p', proposer: 'alice', threshold: 2 }))
    await refuses(s, 'invalid_input', /mode must be "merge" or "replace"/, () => s.state.set('k', 1, { by: 'alice', mode: 'append' as 'merge' }))
    await refuses(s, 'invalid_input', /merge mode needs an object/, () => s.state.set('k', 1, { by: 'alice', mode: 'merge' }))
    await refuses(s, 'invalid_input', /not JSON/, () => s.state.set('k', { f: () => 1 } as unknown as Json, { by: 'alice' }))
    await refuses(s, 'invalid_input', /non-finite/, () => s.state.set('k', Number.NaN, { by: 'alice' }))
    s.destroy()
  })

  it('rejects empty content, names and titles', async () => {
    const s = setup()
    await refuses(s, 'invalid_input', /content must not be empty/, () => s.messages.send({ from: 'alice', content: '   ' }))
    await refuses(s, 'invalid_input', /name must not be empty/, () => s.participants.join({ name: '', kind: 'human' }))
    await refuses(s, 'invalid_input', /title must not be empty/, () => s.tasks.create({ title: '', createdBy: 'alice' }))
    await refuses(s, 'invalid_input', /title must not be empty/, () => s.proposals.create({ title: ' ', proposer: 'alice' }))
    await refuses(s, 'invalid_input', /content must be a string/, () => s.messages.send({ from: 'alice', content: 42 as unknown as string }))
    s.destroy()
  })

  it('rejects unknown ids', async () => {
    const s = setup()
    await refuses(s, 'not_found', /unknown participant "ghost"/, () => s.messages.send({ from: 'ghost', content: 'boo' }))
    await refuses(s, 'not_found', /unknown participant "ghost"/, () => s.messages.send({ from: 'alice', content: 'hi', to: 'ghost' }))
    await refuses(s, 'not_found', /unknown task "t-nope"/, () => s.tasks.claim('t-nope', 'alice'))
    await refuses(s, 'not_found', /unknown proposal "p-nope"/, () => s.proposals.vote('p-nope', 'alice', 'for'))
    await refuses(s, 'not_found', /unknown resource "r-nope"/, () => s.resources.edit('r-nope', 'alice', 'x'))
    await refuses(s, 'not_found', /unknown resource "r-nope"/, () => s.resources.lock('r-nope', 'alice'))
    await refuses(s, 'not_found', /cannot reply to unknown message "1-1"/, () => s.messages.send({ from: 'alice', content: 'hi', replyTo: '1-1' }))
    await refuses(s, 'not_found', /no shared state named "nothing"/, () => s.state.delete('nothing', { by: 'alice' }))
    await refuses(s, 'not_found', /no event with id/, () => s.events.history({ after: '1-1' }))
    s.destroy()
  })

  it('rejects content over the documented size limits', async () => {
    const s = setup()
    const limits = LIMITS
    await refuses(s, 'too_large', new RegExp(`limit is ${limits.messageContent} bytes`), () => s.messages.send({ from: 'alice', content: 'x'.repeat(limits.messageContent + 1) }))
    // Multi-byte characters count in bytes, not characters.
    await refuses(s, 'too_large', /message content is/, () => s.messages.send({ from: 'alice', content: 'é'.repeat(limits.messageContent / 2 + 1) }))
    await refuses(s, 'too_large', /state value/, () => s.state.set('big', 'x'.repeat(limits.stateValue + 1), { by: 'alice' }))
    await refuses(s, 'too_large', /resource data/, () => s.resources.create({ name: 'big', owner: 'alice', data: 'x'.repeat(limits.resourceData + 1) }))
    await refuses(s, 'too_large', /metadata/, () => s.participants.join({ name: 'M', kind: 'ai', metadata: { blob: 'x'.repeat(limits.metadata + 1) } }))
    // Exactly at the limit is fine.
    expect(s.messages.send({ from: 'alice', content: 'x'.repeat(limits.messageContent) }).content).toHaveLength(limits.messageContent)
    s.destroy()
  })

  it('refuses what the rules forbid without touching the document', async () => {
    const s = setup()
    await refuses(s, 'forbidden', /human participants may not use the ai-only channel/, () => s.messages.send({ from: 'alice', content: 'hi', channel: 'ai-only' }))
    await refuses(s, 'forbidden', /ai participants may not use the human-only channel/, () => s.messages.send({ from: 'bot', content: 'hi', channel: 'human-only' }))
    const t = s.tasks.create({ title: 'approve spend', createdBy: 'bot', requiresHuman: true })
    await refuses(s, 'forbidden', /requires a human; bot is ai/, () => s.tasks.claim(t.id, 'bot'))
    const open = s.tasks.create({ title: 'fix the build', createdBy: 'bot' })
    await s.tasks.claim(open.id, 'alice')
    await refuses(s, 'conflict', /already claimed/, () => s.tasks.claim(open.id, 'bot'))
    await refuses(s, 'forbidden', /bot does not hold the claim/, () => s.tasks.complete(open.id, 'bot'))
    const r = s.resources.create({ name: 'doc', owner: 'alice', data: 'v1' })
    await s.resources.lock(r.id, 'alice')
    await refuses(s, 'locked', /locked by alice/, () => s.resources.edit(r.id, 'bot', 'mine'))
    await refuses(s, 'version_conflict', /at version 1, not 7/, () => s.resources.edit(r.id, 'alice', 'v2', { expectedVersion: 7 }))
    s.destroy()
  })
})
