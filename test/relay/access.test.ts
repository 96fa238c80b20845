/**
 * The relay's access decisions (relay/src/access.ts), asked directly: who a request's caller is on an open relay
 * and with tokens, the spaces a token is limited to, who may open a restricted-channel document, whose messages a
 * viewer reads, and whom a caller may act as. The registry and the space are real, on a memory store.
 */
import type { IncomingMessage } from 'node:http'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { ChorusError, mayReadMessage, MemoryStore, Space, type Message } from '@chorus/sync'
import { Auth, SpaceRegistry } from '@chorus/relay'
import {
  Access,
  actingAs,
  actingAsNamedOrSelf,
  agentActor,
  checkActingAs,
  checkChannel,
  checkRegistering,
  checkSpaceAccess,
  documentsOf,
  feedReader,
  memberCaller,
  readerAs,
  viewerOf,
  type Caller,
} from '@chorus/relay/access'

const TOKENS = new Auth([
  { token: 'alice-token-0123456789', participant: 'alice', kind: 'human' },
  { token: 'claude-token-0123456789', participant: 'claude', kind: 'ai' },
  { token: 'limited-token-0123456789', participant: 'claude', kind: 'ai', spaces: ['team'] },
])
const OPEN: Caller = { open: true }

/** A request as the relay's HTTP server hands it over: only its URL and headers are read. */
const request = (url: string, headers: Record<string, string> = {}): IncomingMessage => ({ url, headers }) as unknown as IncomingMessage

/** The ChorusError code `f` throws (or resolves rejecting with), 'ok' when it does not. */
async function codeOf(f: () => unknown): Promise<string> {
  try {
    await f()
    return 'ok'
  } catch (e) {
    if (e instanceof ChorusError) return e.code
    throw e
  }
}

let registry: SpaceRegistry
let space: Space
let release: () => void

beforeEach(async () => {
  registry = new SpaceRegistry({ store: new MemoryStore() })
  const entry = await registry.acquire('team')
  release = () => registry.release(entry)
  space = new Space({ id: 'team', doc: entry.doc })
  space.join({ id: 'alice', name: 'Alice', kind: 'human' })
  space.join({ id: 'claude', name: 'Claude', kind: 'ai' })
})

afterEach(async () => {
  space.destroy()
  release()
  await registry.close()
})

describe('who the caller is', () => {
  it('without tokens everyone is an open caller, whatever it sends', () => {
    const access = new Access(new Auth(undefined), registry)
    expect(access.caller(request('/x'))).toEqual({ open: true })
    expect(access.caller(request('/x', { authorization: 'Bearer anything-at-all-1234' }))).toEqual({ open: true })
  })

  it('with tokens the caller is the token\'s identity, from the header or ?token=; no token or an unknown one is unauthorized', async () => {
    const access = new Access(TOKENS, registry)
    expect(access.caller(request('/x', { authorization: 'Bearer alice-token-0123456789' }))).toMatchObject({ open: false, identity: { participant: 'alice', kind: 'human' } })
    expect(access.caller(request('/ws/claude?token=claude-token-0123456789'))).toMatchObject({ open: false, identity: { participant: 'claude', kind: 'ai' } })
    expect(await codeOf(() => access.caller(request('/x')))).toBe('unauthorized')
    expect(await codeOf(() => access.caller(request('/x', { authorization: 'Bearer nobody-token-0123456789' })))).toBe('unauthorized')
    expect(await codeOf(() => access.caller(request('/x', { authorization: 'Basic alice-token-0123456789' })))).toBe('unauthorized')
  })

  it('a libp2p member is its credential\'s participant, limited to the space of its document', () => {
    const member = memberCaller('claude', 'ai', 'team#ai-only')
    expect(member).toEqual({ open: false, identity: { participant: 'claude', kind: 'ai', spaces: ['team'] } })
  })
})

describe('which spaces and documents', () => {
  it('a token limited to some spaces may use those (and their restricted documents) only', async () => {
    const limited = new Access(TOKENS, registry).caller(request('/x', { authorization: 'Bearer limited-token-0123456789' }))
    expect(await codeOf(() => checkSpaceAccess(limited, 'team'))).toBe('ok')
    expect(await codeOf(() => checkSpaceAccess(limited, 'team#ai-only'))).toBe('ok')
    expect(await codeOf(() => checkSpaceAccess(limited, 'other'))).toBe('forbidden')
    expect(await codeOf(() => checkSpaceAccess(OPEN, 'other'))).toBe('ok')
  })

  it('a restricted-channel document opens only for its kind: the token\'s, or on an open relay the kind its participant joined with', async () => {
    const access = new Access(TOKENS, registry)
    const alice = access.caller(request('/x', { authorization: 'Bearer alice-token-0123456789' }))
    const claude = access.caller(request('/x', { authorization: 'Bearer claude-token-0123456789' }))
    expect(await codeOf(() => access.checkDocument(claude, 'team#ai-only', undefined))).toBe('ok')
    expect(await codeOf(() => access.checkDocument(alice, 'team#ai-only', undefined))).toBe('forbidden')
    expect(await codeOf(() => access.checkDocument(alice, 'team#human-only', undefined))).toBe('ok')
    expect(await codeOf(() => access.checkDocument(alice, 'team', undefined))).toBe('ok')
    expect(await codeOf(() => access.checkDocument(claude, 'team#constructor', undefined))).toBe('forbidden')

    expect(await codeOf(() => access.checkDocument(OPEN, 'team#ai-only', 'claude'))).toBe('ok')
    expect(await codeOf(() => access.checkDocument(OPEN, 'team#ai-only', 'alice'))).toBe('forbidden')
    expect(await codeOf(() => access.checkDocument(OPEN, 'team#ai-only', undefined))).toBe('forbidden')
    // Not joined (yet): not_found, which the sync endpoint answers with a close the client retries after.
    expect(await codeOf(() => access.checkDocument(OPEN, 'team#ai-only', 'newcomer'))).toBe('not_found')
  })

  it('a member opens the main document and the restricted one of its kind', async () => {
    expect(documentsOf('team', 'ai')).toEqual(['team', 'team#ai-only'])
    expect(documentsOf('team', 'human')).toEqual(['team', 'team#human-only'])
    expect(documentsOf('team', 'service')).toEqual(['team'])
    const access = new Access(new Auth(undefined), registry)
    expect(await access.kindOf(OPEN, 'team', 'claude')).toBe('ai')
    expect(await access.kindOf(OPEN, 'team', 'newcomer')).toBeUndefined()
  })
})

describe('whom a caller may act as', () => {
  const alice: Caller = { open: false, identity: { participant: 'alice', kind: 'human' } }
  const claudeAsHuman: Caller = { open: false, identity: { participant: 'claude', kind: 'human' } }

  it('an open caller acts as anyone registered; a token only as its participant, registered with its kind', async () => {
    expect(actingAs(space, OPEN, 'claude').id).toBe('claude')
    expect(actingAs(space, alice, 'alice').id).toBe('alice')
    expect(await codeOf(() => actingAs(space, alice, 'claude'))).toBe('forbidden')
    expect(await codeOf(() => actingAs(space, claudeAsHuman, 'claude'))).toBe('forbidden')
    expect(await codeOf(() => actingAs(space, OPEN, 'newcomer'))).toBe('not_found')
    expect(await codeOf(() => checkActingAs(alice, 'newcomer'))).toBe('forbidden')
    expect(await codeOf(() => checkActingAs(OPEN, 'newcomer'))).toBe('ok')
  })

  it('a request that may leave its actor out acts as the one it names, else as the token\'s participant, else as nobody in particular', async () => {
    expect(actingAsNamedOrSelf(space, OPEN, 'claude')?.id).toBe('claude')
    expect(actingAsNamedOrSelf(space, OPEN, undefined)).toBeUndefined()
    expect(actingAsNamedOrSelf(space, alice, undefined)?.id).toBe('alice')
    expect(await codeOf(() => actingAsNamedOrSelf(space, alice, 'claude'))).toBe('forbidden')
    const unregistered: Caller = { open: false, identity: { participant: 'newcomer', kind: 'ai' } }
    expect(await codeOf(() => actingAsNamedOrSelf(space, unregistered, undefined))).toBe('not_found')
  })

  it('a token registers only its own participant, with its own kind', async () => {
    expect(await codeOf(() => checkRegistering(alice, 'alice', 'human', 'human'))).toBe('ok')
    expect(await codeOf(() => checkRegistering(alice, 'alice', 'ai', 'ai_agent'))).toBe('forbidden')
    expect(await codeOf(() => checkRegistering(alice, 'bob', 'human', 'human'))).toBe('forbidden')
    expect(await codeOf(() => checkRegistering(OPEN, 'bob', 'ai', 'session'))).toBe('ok')
  })

  it('an agent request acts as the token\'s participant, or on an open relay as the one it names', async () => {
    expect(agentActor(alice, undefined)).toEqual({ participant: 'alice', kind: 'human', fixedKind: true })
    expect(agentActor(alice, 'alice')).toEqual({ participant: 'alice', kind: 'human', fixedKind: true })
    expect(await codeOf(() => agentActor(alice, 'claude'))).toBe('forbidden')
    expect(agentActor(OPEN, 'claude')).toEqual({ participant: 'claude' })
    expect(agentActor(OPEN, undefined)).toBeUndefined()
    expect(await codeOf(() => agentActor(OPEN, ' bad id'))).toBe('invalid_input')
  })
})

describe('which messages a viewer reads', () => {
  const message = (m: Partial<Message>): Message => ({ id: '1-1', at: 0, from: 'alice', content: 'x', channel: 'general', priority: 'normal', ...m })

  it('reads as the token\'s kind, or as the kind the participant joined with; nobody is a viewer before joining on an open relay', () => {
    expect(viewerOf(OPEN, 'claude', 'ai')).toEqual({ id: 'claude', kind: 'ai' })
    expect(viewerOf(OPEN, 'newcomer', undefined)).toBeUndefined()
    const claude: Caller = { open: false, identity: { participant: 'claude', kind: 'ai' } }
    expect(viewerOf(claude, 'claude', undefined)).toEqual({ id: 'claude', kind: 'ai' })
    expect(readerAs(space, claude, 'claude')).toEqual({ id: 'claude', kind: 'ai' })
  })

  it('the public feed is nobody\'s on an open relay unless it names a reader; with a token it is the token\'s', async () => {
    expect(feedReader(space, OPEN, undefined)).toBeUndefined()
    expect(feedReader(space, OPEN, 'alice')).toEqual({ id: 'alice', kind: 'human' })
    expect(await codeOf(() => feedReader(space, OPEN, 'newcomer'))).toBe('not_found')
    const alice: Caller = { open: false, identity: { participant: 'alice', kind: 'human' } }
    expect(feedReader(space, alice, undefined)).toEqual({ id: 'alice', kind: 'human' })
    expect(await codeOf(() => feedReader(space, alice, 'claude'))).toBe('forbidden')
  })

  it('a restricted channel is for its kind only; nobody in particular reads open channels only', async () => {
    expect(await codeOf(() => checkChannel({ id: 'claude', kind: 'ai' }, 'ai-only'))).toBe('ok')
    expect(await codeOf(() => checkChannel({ id: 'alice', kind: 'human' }, 'ai-only'))).toBe('forbidden')
    expect(await codeOf(() => checkChannel(undefined, 'ai-only'))).toBe('forbidden')
    expect(await codeOf(() => checkChannel(undefined, 'general'))).toBe('ok')
    expect(await codeOf(() => checkChannel(undefined, 'constructor'))).toBe('ok')
  })

  it('the read rule is @chorus/sync\'s: without a viewer, broadcasts on open channels only', () => {
    expect(mayReadMessage(undefined, message({}))).toBe(true)
    expect(mayReadMessage(undefined, message({ to: 'claude' }))).toBe(false)
    expect(mayReadMessage(undefined, message({ channel: 'ai-only', from: 'claude' }))).toBe(false)
    expect(mayReadMessage({ id: 'claude', kind: 'ai' }, message({ to: 'claude' }))).toBe(true)
    expect(mayReadMessage({ id: 'bob', kind: 'ai' }, message({ to: 'claude' }))).toBe(false)
    expect(mayReadMessage({ id: 'claude', kind: 'ai' }, message({ channel: 'ai-only', from: 'claude' }))).toBe(true)
  })
})
