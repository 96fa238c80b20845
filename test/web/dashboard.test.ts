/**
 * The dashboard end to end: real Chromium pages (each its own browser profile, IndexedDB and service worker), a
 * real relay serving the built dashboard on 127.0.0.1, and Node agents on @chorus/sync in the same spaces.
 * Every wait is for a condition with a deadline; nothing asserts on time.
 */
import type { Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openRelaySpace, RESTRICTED_CHANNELS, type RelaySpace, type Space } from '@chorus/sync'
import { codeOf, until } from '../relay/helpers.ts'
import { dashboardFixture, join, messageTexts, screenshot, show, waitForStatus, type DashboardFixture, type WatchedPage } from './browser.ts'

const WAIT_MS = 20_000

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
  page.evaluate(`(${read.toString()})(window.chorus.web.space)`) as Promise<T>

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
    await until(() => bot.space.messages.all().some((m) => m.from === 'ada' && m.content === 'hello from Ada' && m.channel === 'general'), 'the agent to get Ada’s message', WAIT_MS)

    botMember.send('build is red', { priority: 'urgent' })
    for (const p of [a, b]) await p.page.locator('[data-testid="message"][data-priority="urgent"][data-from="bot"]', { hasText: 'build is red' }).waitFor()
    await send(b.page, 'on it')
    await until(() => bot.space.messages.all().some((m) => m.from === 'bob' && m.content === 'on it'), 'the agent to get Bob’s reply', WAIT_MS)

    // A direct message reaches only its addressee; a reply goes back to the agent's inbox.
    botMember.send('Ada: your review, please', { to: 'ada' })
    await a.page.getByTestId('dm-bot').click()
    await a.page.getByTestId('message').filter({ hasText: 'your review, please' }).waitFor()
    await send(a.page, 'looking now')
    await until(() => botMember.inbox().some((m) => m.from === 'ada' && m.to === 'bot' && m.content === 'looking now'), 'the agent’s inbox to hold Ada’s reply', WAIT_MS)
    await b.page.getByTestId('dm-bot').click()
    await b.page.getByTestId('message-count').filter({ hasText: /^0$/ }).waitFor()
    expect(await messageTexts(b.page)).toEqual([])

    // Restricted channels: humans talk on human-only, which the agent's replica never holds; ai-only is absent.
    await a.page.getByTestId('channel-human-only').click()
    await send(a.page, 'humans only here')
    await b.page.getByTestId('channel-human-only').click()
    await b.page.getByTestId('message').filter({ hasText: 'humans only here' }).waitFor()
    botMember.send('agents only here', { channel: 'ai-only' })
    await until(() => bot.space.messages.all().some((m) => m.content === 'agents only here'), 'the agent’s own ai-only message', WAIT_MS)
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
    await join(ada.page, f.url, 'Ada', space)
    await show(ada.page, 'tasks')
    // Each round the person clicks the claim button they see while the agent claims, a few ms before or after
    // (negative: the agent first). The button is taken before the round starts, as the person sees it; both claims
    // are in flight together and the relay decides. Who wins is not scripted.
    const offsets = [0, 0, 0, 0, 2, -2, 5, -5, 10, -10, 20, -20]
    const winners: string[] = []
    const later = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)))
    for (const [round, offset] of offsets.entries()) {
      const task = botMember.createTask({ title: `race ${round}` })
      const card = ada.page.locator(`[data-testid="task"][data-id="${task.id}"]`)
      const button = await card.getByTestId('task-claim').elementHandle()
      if (button === null) throw new Error(`round ${round}: no claim button`)
      const [agentResult] = await Promise.all([
        later(-offset).then(() => codeOf(bot.space.tasks.claim(task.id, 'bot'))),
        later(offset).then(() => button.dispatchEvent('click')),
      ])
      await ada.page.locator(`[data-testid="task"][data-id="${task.id}"][data-status="claimed"]`).waitFor()
      const lease = f.relay.leases.holder(space, `task:${task.id}`)
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
      await until(() => bot.space.tasks.get(task.id)?.claim?.holder === winner, `round ${round}: the agent to record ${winner}'s claim`, WAIT_MS)
      await until(
        async () => (await pageReplica(ada.page, (s) => s.tasks.list().map((t) => [t.id, t.claim?.holder]))).some(([id, h]) => id === task.id && h === winner),
        `round ${round}: the page to record ${winner}'s claim`,
        WAIT_MS,
      )
    }
    console.log(`claim race: the agent won ${winners.filter((w) => w === 'bot').length} of ${winners.length} rounds, the page ${winners.filter((w) => w === 'ada').length}`)

    // The winner completes; a completed task shows as such on both sides.
    const mine = (await ada.page.locator('[data-testid="task"][data-status="claimed"]').filter({ has: ada.page.getByTestId('task-complete') }).first().getAttribute('data-id')) ?? undefined
    if (mine !== undefined) {
      await ada.page.locator(`[data-testid="task"][data-id="${mine}"]`).getByTestId('task-complete').click()
      await ada.page.locator(`[data-testid="task"][data-id="${mine}"][data-status="completed"]`).waitFor()
      await until(() => bot.space.tasks.get(mine)?.status === 'completed' && bot.space.tasks.get(mine)?.completedBy === 'ada', 'the agent to see Ada’s completion', WAIT_MS)
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
    await until(() => bot.space.proposals.get(proposal.id)?.votes.bob === 'against', 'Bob’s vote to reach the agent', WAIT_MS)

    withoutOfflineSocketFailures(ada)
    await ada.context.setOffline(false)
    await waitForStatus(ada.page, 'online')
    await until(
      () => {
        const p = bot.space.proposals.get(proposal.id)
        const from = bot.space.messages.all().filter((m) => m.from === 'ada').map((m) => m.content)
        return p?.votes.ada === 'for' && from.includes('written offline, one') && from.includes('written offline, two')
      },
      'the agent to get what Ada wrote offline',
      WAIT_MS,
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
    for (const p of [ada, bob]) await until(async () => (await pageReplica(p.page, shared)) === agentView, 'the pages’ replicas to equal the agent’s', WAIT_MS)
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
    await until(() => bot.space.proposals.get(proposal.id)?.votes.ada === 'for', 'the agent to see Ada’s vote', WAIT_MS)
    await until(() => bot.space.proposals.get(proposal.id)?.status === 'approved', 'the agent to see the proposal approved', WAIT_MS)
    await ada.page.locator(`[data-testid="proposal"][data-id="${proposal.id}"][data-status="approved"]`).waitFor()
    await card.locator('[data-testid="tally"][data-for="1"][data-against="0"]').waitFor()
    noProblems(ada)
  })
})
