/**
 * The dashboard end to end: real Chromium pages (each its own browser profile, IndexedDB and service worker), a
 * real relay serving the built dashboard on 127.0.0.1, and Node agents on @chorus/sync in the same spaces.
 * Every wait is for a condition with a deadline; nothing asserts on time.
 */
import type { Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Auth } from '@chorus/relay'
import { EVENT_TYPES, openRelaySpace, RESTRICTED_CHANNELS, type RelaySpace, type Space } from '@chorus/sync'
import { Signal } from '@chorus/sync/testing'
import { codeOf } from '../support/errors.ts'
import { nextTurn, signalled, spaceUpdates, until } from '../support/wait.ts'
import { dashboardFixture, join, messageTexts, screenshot, show, waitForStatus, type DashboardFixture, type WatchedPage } from './browser.ts'

let f: DashboardFixture
const agents: RelaySpace[] = []

beforeAll(async () => {
  f = await dashboardFixture()
}, 120_000)

afterAll(async () => {
  for (const a of agents.splice(0)) await a.close()
  await f?.teardown()
})

/** A Node agent (kind ai) joined to `space` through the relay. */
const agent = async (space: string, id = 'bot', name = 'Build bot'): Promise<RelaySpace> => {
  const a = await openRelaySpace({ relay: f.url, space, participant: { id, kind: 'ai' } })
  agents.push(a)
  await a.synced()
  a.space.join({ id, name, kind: 'ai' })
  return a
}

const send = async (page: Page, text: string, priority?: string): Promise<void> => {
  if (priority !== undefined) await page.getByTestId('composer-priority').selectOption(priority)
  await page.getByTestId('composer-input').fill(text)
  await page.getByTestId('composer-input').press('Enter')
  await page.getByTestId('message').filter({ hasText: text }).waitFor()
}

/** `read` applied to the page's own replica (the dashboard exposes it as window.chorus.web for tests). */
const pageReplica = <T>(page: Page, read: (space: Space) => T): Promise<T> =>
  page.evaluate<T>(`(${read.toString()})(window.chorus.web.space)`)

/** Waits until everything the page changed is committed to its IndexedDB. */
const stored = (page: Page): Promise<unknown> => page.evaluate('window.chorus.web.stored()')

const noProblems = (...pages: WatchedPage[]): void => {
  expect(pages.flatMap((p) => p.problems)).toEqual([])
}

/**
 * Chromium itself logs every WebSocket that fails to connect. A page reloaded under `setOffline` is told
 * `navigator.onLine === true` (an emulation quirk: a real offline browser says false, and the page then makes no
 * attempt), so its reconnect attempts fail and are logged. Those lines, and only those, are expected there.
 */
const OFFLINE_SOCKET_FAILURE = /^error: WebSocket connection to 'ws:\/\/127\.0\.0\.1:\d+\/sync\/[^']+' failed: Error in connection establishment: net::ERR_INTERNET_DISCONNECTED/
const withoutOfflineSocketFailures = (page: WatchedPage): void => {
  page.problems.splice(0, page.problems.length, ...page.problems.filter((p) => !OFFLINE_SOCKET_FAILURE.test(p)))
}

describe('the dashboard in Chromium', () => {
  it('two pages and a Node agent exchange messages both ways, on channels and directly', async () => {
    const space = 'talk'
    const bot = await agent(space)
    const botMember = bot.space.member('bot')
    const a = await f.open()
    const b = await f.open()
    await join(a.page, f.url, 'Ada', space)
    await join(b.page, f.url, 'Bob', space)

    await send(a.page, 'hello from Ada')
    await b.page.getByTestId('message').filter({ hasText: 'hello from Ada' }).waitFor()
    await until(() => bot.space.messages.all().some((m) => m.from === 'ada' && m.content === 'hello from Ada' && m.channel === 'general'), 'the agent to get Ada’s message', { on: spaceUpdates(bot.space) })

    botMember.send('build is red', { priority: 'urgent' })
    for (const p of [a, b]) await p.page.locator('[data-testid="message"][data-priority="urgent"][data-from="bot"]', { hasText: 'build is red' }).waitFor()
    await send(b.page, 'on it')
    await until(() => bot.space.messages.all().some((m) => m.from === 'bob' && m.content === 'on it'), 'the agent to get Bob’s reply', { on: spaceUpdates(bot.space) })

    // A direct message reaches only its addressee; a reply goes back to the agent's inbox.
    botMember.send('Ada: your review, please', { to: 'ada' })
    await a.page.getByTestId('dm-bot').click()
    await a.page.getByTestId('message').filter({ hasText: 'your review, please' }).waitFor()
    await send(a.page, 'looking now')
    await until(() => botMember.inbox().some((m) => m.from === 'ada' && m.to === 'bot' && m.content === 'looking now'), 'the agent’s inbox to hold Ada’s reply', { on: spaceUpdates(bot.space) })
    await b.page.getByTestId('dm-bot').click()
    await b.page.getByTestId('message-count').filter({ hasText: /^0$/ }).waitFor()
    expect(await messageTexts(b.page)).toEqual([])

    // Restricted channels: humans talk on human-only, which the agent's replica never holds; ai-only is absent.
    await a.page.getByTestId('channel-human-only').click()
    await send(a.page, 'humans only here')
    await b.page.getByTestId('channel-human-only').click()
    await b.page.getByTestId('message').filter({ hasText: 'humans only here' }).waitFor()
    botMember.send('agents only here', { channel: 'ai-only' })
    await until(() => bot.space.messages.all().some((m) => m.content === 'agents only here'), 'the agent’s own ai-only message', { on: spaceUpdates(bot.space) })
    expect(RESTRICTED_CHANNELS['ai-only']).toBe('ai')
    for (const p of [a, b]) expect(await p.page.getByTestId('channel-ai-only').count()).toBe(0)
    expect(bot.space.messages.all().some((m) => m.content === 'humans only here')).toBe(false)
    expect(await pageReplica(a.page, (s) => s.messages.all().some((m) => m.content === 'agents only here'))).toBe(false)

    await screenshot(a.page, 'chat-human-only')
    await a.page.getByTestId('channel-general').click()
    await a.page.getByTestId('message').filter({ hasText: 'build is red' }).waitFor()
    await screenshot(a.page, 'chat')
    noProblems(a, b)
  })

  it('a page and the agent race to claim the same tasks: each task has exactly one winner', async () => {
    const space = 'race'
    const bot = await agent(space)
    const botMember = bot.space.member('bot')
    const ada = await f.open()
    // Every lease request the page sends, as it leaves the browser.
    const sent = { acquires: 0, signal: new Signal() }
    ada.page.on('websocket', (ws) => {
      if (!new URL(ws.url()).pathname.endsWith('/leases')) return
      ws.on('framesent', ({ payload }) => {
        if (typeof payload === 'string' && (JSON.parse(payload) as { op?: string }).op === 'acquire') sent.acquires++
        sent.signal.notify()
      })
    })
    await join(ada.page, f.url, 'Ada', space)
    await show(ada.page, 'tasks')
    // Each round the person clicks the claim button they see while the agent claims: in the same turn, or one
    // after the other's request has gone out. The button is taken before the round starts, as the person sees it;
    // both claims are in flight together and the relay decides. Who wins is not scripted.
    const starts = ['together', 'together', 'together', 'together', 'agent', 'page', 'agent', 'page', 'agent', 'page', 'agent', 'page'] as const
    const winners: string[] = []
    for (const [round, first] of starts.entries()) {
      const task = botMember.createTask({ title: `race ${round}` })
      const card = ada.page.locator(`[data-testid="task"][data-id="${task.id}"]`)
      const button = await card.getByTestId('task-claim').elementHandle()
      if (button === null) throw new Error(`round ${round}: no claim button`)
      const agentClaims = (): Promise<string> => codeOf(bot.space.tasks.claim(task.id, 'bot'))
      let agentResult: string
      if (first === 'together') {
        ;[agentResult] = await Promise.all([agentClaims(), button.dispatchEvent('click')])
      } else if (first === 'agent') {
        // The agent's request is written to its socket within the turn its claim starts.
        const claimed = agentClaims()
        await nextTurn()
        await button.dispatchEvent('click')
        agentResult = await claimed
      } else {
        const before = sent.acquires
        await button.dispatchEvent('click')
        await until(() => sent.acquires > before, `round ${round}: the page's claim to leave the browser`, { on: signalled(sent.signal) })
        agentResult = await agentClaims()
      }
      await ada.page.locator(`[data-testid="task"][data-id="${task.id}"][data-status="claimed"]`).waitFor()
      const lease = await f.relay.leases.holder(space, `task:${task.id}`)
      expect(lease?.holder === 'bot' || lease?.holder === 'ada', `round ${round}: a live lease`).toBe(true)
      const winner = lease?.holder as string
      winners.push(winner)
      // The loser was told: the agent's claim failed with conflict, or the page showed the refusal.
      if (winner === 'bot') {
        expect(agentResult, `round ${round}`).toBe('ok')
        await ada.page.getByTestId('toast').filter({ hasText: /already claimed/ }).waitFor()
      } else {
        expect(agentResult, `round ${round}`).toBe('conflict')
      }
      // Both replicas and the relay agree on the one holder.
      await until(() => bot.space.tasks.get(task.id)?.claim?.holder === winner, `round ${round}: the agent to record ${winner}'s claim`, { on: spaceUpdates(bot.space) })
      await until(
        async () => (await pageReplica(ada.page, (s) => s.tasks.list().map((t) => [t.id, t.claim?.holder]))).some(([id, h]) => id === task.id && h === winner),
        `round ${round}: the page to record ${winner}'s claim`,
      )
    }
    console.log(`claim race: the agent won ${winners.filter((w) => w === 'bot').length} of ${winners.length} rounds, the page ${winners.filter((w) => w === 'ada').length}`)

    // The winner completes; a completed task shows as such on both sides.
    const mine = (await ada.page.locator('[data-testid="task"][data-status="claimed"]').filter({ has: ada.page.getByTestId('task-complete') }).first().getAttribute('data-id')) ?? undefined
    if (mine !== undefined) {
      await ada.page.locator(`[data-testid="task"][data-id="${mine}"]`).getByTestId('task-complete').click()
      await ada.page.locator(`[data-testid="task"][data-id="${mine}"][data-status="completed"]`).waitFor()
      await until(() => bot.space.tasks.get(mine)?.status === 'completed' && bot.space.tasks.get(mine)?.completedBy === 'ada', 'the agent to see Ada’s completion', { on: spaceUpdates(bot.space) })
    }
    noProblems(ada)
  })

  it('a page that goes offline sends and votes, reloads from IndexedDB while offline, and converges when back', async () => {
    const space = 'offline'
    const bot = await agent(space)
    const botMember = bot.space.member('bot')
    const proposal = botMember.propose({ title: 'Adopt the new build cache', quorum: 2, threshold: 0.5 })
    botMember.send('before the outage')
    const ada = await f.open()
    const bob = await f.open()
    await join(ada.page, f.url, 'Ada', space)
    await join(bob.page, f.url, 'Bob', space)
    await ada.page.getByTestId('message').filter({ hasText: 'before the outage' }).waitFor()

    await ada.context.setOffline(true)
    await waitForStatus(ada.page, 'offline')
    await send(ada.page, 'written offline, one')
    await send(ada.page, 'written offline, two', 'urgent')
    await show(ada.page, 'proposals')
    const card = ada.page.locator(`[data-testid="proposal"][data-id="${proposal.id}"]`)
    await card.getByTestId('vote-for').click()
    await card.locator('[data-testid="vote-for"][aria-pressed="true"]').waitFor()
    await stored(ada.page)
    expect(bot.space.messages.all().some((m) => m.from === 'ada')).toBe(false)

    // Reload with no network: the service worker serves the app, IndexedDB the space.
    await ada.page.reload()
    await waitForStatus(ada.page, 'offline')
    await show(ada.page, 'chat')
    await ada.page.getByTestId('message').filter({ hasText: 'written offline, two' }).waitFor()
    expect(await messageTexts(ada.page)).toEqual(
      expect.arrayContaining([expect.stringContaining('before the outage'), expect.stringContaining('written offline, one'), expect.stringContaining('written offline, two')]),
    )
    await show(ada.page, 'proposals')
    await card.locator('[data-testid="vote-for"][aria-pressed="true"]').waitFor()
    await card.locator('[data-testid="tally"][data-for="1"]').waitFor()
    await screenshot(ada.page, 'offline-proposals')

    // While Ada is away, the others go on.
    botMember.send('written while Ada was away')
    await show(bob.page, 'proposals')
    await bob.page.locator(`[data-testid="proposal"][data-id="${proposal.id}"]`).getByTestId('vote-against').click()
    await until(() => bot.space.proposals.get(proposal.id)?.votes.bob === 'against', 'Bob’s vote to reach the agent', { on: spaceUpdates(bot.space) })

    await ada.context.setOffline(false)
    await waitForStatus(ada.page, 'online')
    withoutOfflineSocketFailures(ada)
    await until(
      () => {
        const p = bot.space.proposals.get(proposal.id)
        const from = bot.space.messages.all().filter((m) => m.from === 'ada').map((m) => m.content)
        return p?.votes.ada === 'for' && from.includes('written offline, one') && from.includes('written offline, two')
      },
      'the agent to get what Ada wrote offline',
      { on: spaceUpdates(bot.space) },
    )
    await card.locator('[data-testid="tally"][data-for="1"][data-against="1"]').waitFor()
    await show(ada.page, 'chat')
    await ada.page.getByTestId('message').filter({ hasText: 'written while Ada was away' }).waitFor()
    await bob.page.getByTestId('nav-chat').click()
    await bob.page.getByTestId('message').filter({ hasText: 'written offline, two' }).waitFor()

    // Everything converges: the shared document is the same on the page, the other page and the agent.
    const shared = (s: Space): string =>
      JSON.stringify({
        messages: s.messages.all().filter((m) => m.channel !== 'human-only' && m.channel !== 'ai-only').map((m) => [m.id, m.content]),
        proposals: s.proposals.list().map((p) => [p.id, p.votes, p.status]),
        participants: s.participants.list().map((p) => p.id),
      })
    const agentView = shared(bot.space)
    for (const p of [ada, bob]) await until(async () => (await pageReplica(p.page, shared)) === agentView, 'the pages’ replicas to equal the agent’s')
    noProblems(ada, bob)
  })

  it('a human votes on a proposal an agent created, and both see it approved', async () => {
    const space = 'vote'
    const bot = await agent(space)
    const proposal = bot.space.member('bot').propose({ title: 'Rotate the API keys', description: 'Weekly, from now on.', quorum: 1, threshold: 0.5 })
    const ada = await f.open()
    await join(ada.page, f.url, 'Ada', space)
    await show(ada.page, 'proposals')
    const card = ada.page.locator(`[data-testid="proposal"][data-id="${proposal.id}"]`)
    await card.filter({ hasText: 'Rotate the API keys' }).waitFor()
    await card.getByTestId('vote-for').click()
    await until(() => bot.space.proposals.get(proposal.id)?.votes.ada === 'for', 'the agent to see Ada’s vote', { on: spaceUpdates(bot.space) })
    await until(() => bot.space.proposals.get(proposal.id)?.status === 'approved', 'the agent to see the proposal approved', { on: spaceUpdates(bot.space) })
    await ada.page.locator(`[data-testid="proposal"][data-id="${proposal.id}"][data-status="approved"]`).waitFor()
    await card.locator('[data-testid="tally"][data-for="1"][data-against="0"]').waitFor()
    noProblems(ada)
  })

  it('every view shows the space, Alt+1…7 switches between them, and each is saved as a screenshot', async () => {
    const space = 'tour'
    const bot = await agent(space)
    const botMember = bot.space.member('bot')
    const ada = await f.open()
    await join(ada.page, f.url, 'Ada', space)
    botMember.send('Nightly build passed', { channel: 'technical' })
    botMember.send('Release blocked: the signing key expired', { priority: 'urgent', channel: 'urgent' })
    botMember.set('release', { version: '1.4.0', frozen: true })
    const doc = botMember.createResource('release-notes', 'Chorus 1.4: the dashboard.')
    await botMember.lock(doc.id)
    botMember.createTask({ title: 'Sign the release', requiresHuman: true, priority: 'high' })
    const review = botMember.createTask({ title: 'Review the changelog' })
    await botMember.claim(review.id)
    botMember.propose({ title: 'Ship 1.4 on Friday', description: 'All checks are green.', quorum: 2 })
    bot.space.presence.touch('bot', 'Reviewing the changelog')

    const views = ['chat', 'tasks', 'proposals', 'people', 'state', 'resources', 'activity']
    for (const [i, view] of views.entries()) {
      await ada.page.keyboard.press(`Alt+${i + 1}`)
      await ada.page.getByTestId(`view-${view}`).waitFor()
      await ada.page.locator(`[data-testid="nav-${view}"][aria-current="page"]`).waitFor()
    }

    await show(ada.page, 'chat')
    await ada.page.getByTestId('channel-urgent').click()
    await ada.page.locator('[data-testid="message"][data-priority="urgent"]', { hasText: 'signing key expired' }).waitFor()
    await screenshot(ada.page, 'chat-urgent')

    await show(ada.page, 'tasks')
    await ada.page.locator('[data-testid="task"][data-status="open"]', { hasText: 'Sign the release' }).getByTestId('requires-human').waitFor()
    await ada.page.locator(`[data-testid="task"][data-id="${review.id}"][data-status="claimed"]`, { hasText: 'bot' }).waitFor()
    await ada.page.getByTestId('task-title').fill('Write the announcement')
    await ada.page.getByTestId('task-create').click()
    await until(() => bot.space.tasks.list().some((t) => t.title === 'Write the announcement' && t.createdBy === 'ada'), 'the agent to see Ada’s task', { on: spaceUpdates(bot.space) })
    await screenshot(ada.page, 'tasks')

    await show(ada.page, 'proposals')
    await ada.page.getByTestId('proposal').filter({ hasText: 'Ship 1.4 on Friday' }).getByTestId('vote-for').click()
    await ada.page.locator('[data-testid="tally"][data-for="1"]').waitFor()
    await screenshot(ada.page, 'proposals')

    await show(ada.page, 'people')
    await ada.page.locator('[data-testid="participant"][data-id="bot"][data-presence="online"]', { hasText: 'Reviewing the changelog' }).waitFor()
    await ada.page.locator('[data-testid="participant"][data-id="ada"][data-presence="online"]').waitFor()
    await screenshot(ada.page, 'people')

    await show(ada.page, 'state')
    await ada.page.locator('[data-testid="state-row"][data-key="release"]', { hasText: '1.4.0' }).waitFor()
    await ada.page.getByTestId('state-key').fill('launch')
    await ada.page.getByTestId('state-value').fill('{ "day": "Friday" ')
    await ada.page.getByTestId('state-set').click()
    await ada.page.getByTestId('state-error').waitFor()
    await ada.page.getByTestId('state-value').fill('{ "day": "Friday" }')
    await ada.page.getByTestId('state-set').click()
    await until(() => JSON.stringify(bot.space.state.get('launch')) === '{"day":"Friday"}', 'the agent to see Ada’s state', { on: spaceUpdates(bot.space) })
    await screenshot(ada.page, 'state')

    await show(ada.page, 'resources')
    const resource = ada.page.locator(`[data-testid="resource"][data-id="${doc.id}"]`)
    await resource.filter({ hasText: 'release-notes' }).getByTestId('resource-lock-state').filter({ hasText: 'bot' }).waitFor()
    await screenshot(ada.page, 'resources')

    await show(ada.page, 'activity')
    await ada.page.getByTestId('activity-type').selectOption('vote')
    await ada.page.locator('[data-testid="event"][data-type="vote"]').first().waitFor()
    const types = await ada.page.getByTestId('event').evaluateAll((nodes) => nodes.map((n) => n.getAttribute('data-type')))
    expect(new Set(types)).toEqual(new Set(['vote']))
    expect(EVENT_TYPES).toContain('vote')
    await ada.page.getByTestId('activity-type').selectOption('')
    await screenshot(ada.page, 'activity')
    noProblems(ada)
  })

  it('on a relay with tokens, a person joins with their token and acts as its participant', async () => {
    const secured = await dashboardFixture({
      auth: new Auth([
        { token: 'ada-token-0123456789', participant: 'ada.l', kind: 'human' },
        { token: 'bot-token-0123456789', participant: 'bot', kind: 'ai' },
      ]),
    })
    try {
      const bot = await openRelaySpace({ relay: secured.url, space: 'team', token: 'bot-token-0123456789', participant: { id: 'bot', kind: 'ai' } })
      agents.push(bot)
      await bot.synced()
      bot.space.join({ id: 'bot', name: 'Build bot', kind: 'ai' })

      const stranger = await secured.open()
      await stranger.page.goto(`${secured.url}/#/team/chat`)
      await stranger.page.getByTestId('join-name').fill('Mallory')
      await stranger.page.getByTestId('join-submit').click()
      await stranger.page.getByTestId('join-error').filter({ hasText: 'asks for an access token' }).waitFor()
      await stranger.page.locator('summary', { hasText: 'Access token' }).click()
      await stranger.page.getByTestId('join-token').fill('bot-token-0123456789')
      await stranger.page.getByTestId('join-submit').click()
      await stranger.page.getByTestId('join-error').filter({ hasText: 'the dashboard joins people' }).waitFor()

      const ada = await secured.open()
      await join(ada.page, secured.url, 'Ada Lovelace', 'team', 'ada-token-0123456789')
      await send(ada.page, 'signed in with a token')
      await until(() => bot.space.messages.all().some((m) => m.from === 'ada.l' && m.content === 'signed in with a token'), 'the agent to get the message from ada.l', { on: spaceUpdates(bot.space) })
      expect(bot.space.participants.get('ada.l')?.name).toBe('Ada Lovelace')
      // Claims go through the relay's leases with the token too.
      const task = bot.space.member('bot').createTask({ title: 'Check the token path' })
      await show(ada.page, 'tasks')
      await ada.page.locator(`[data-testid="task"][data-id="${task.id}"]`).getByTestId('task-claim').click()
      await until(async () => (await secured.relay.leases.holder('team', `task:${task.id}`))?.holder === 'ada.l', 'the relay to grant ada.l the claim')
      noProblems(ada)
      // Chromium logs the refused /whoami itself.
      expect(stranger.problems.filter((p) => !/^error: Failed to load resource: the server responded with a status of 401 \(Unauthorized\) \(http:\/\/127\.0\.0\.1:\d+\/whoami\)$/.test(p))).toEqual([])
    } finally {
      await secured.teardown()
    }
  })
})
