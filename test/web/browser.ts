/**
 * End-to-end helpers: the dashboard built with Vite into a temporary folder, a real relay serving it on
 * 127.0.0.1, and Debian's Chromium driven by playwright-core. A missing browser is an error, not a skip.
 */
import { existsSync, mkdirSync } from 'node:fs'
import { join as joinPath } from 'node:path'
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core'
import { build } from 'vite'
import { Relay, silentLogger, type RelayOptions } from '@chorus/relay'
import { ROOT } from '../support/paths.ts'
import { makeTempDir } from '../support/temp.ts'


/** Chromium's binary: Debian's package (`apt-get install -y chromium`) unless CHORUS_CHROMIUM names another. */
export const CHROMIUM = process.env.CHORUS_CHROMIUM ?? '/usr/bin/chromium'

/** Where the tests save a screenshot of each dashboard view. */
export const SCREENSHOTS = joinPath(ROOT, 'test-results', 'screenshots')

/** Builds the dashboard as `npm run build` does, into `outDir`. */
export async function buildDashboard(outDir: string): Promise<void> {
  await build({ configFile: joinPath(ROOT, 'dashboard', 'vite.config.ts'), logLevel: 'error', build: { outDir, emptyOutDir: true } })
}

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`no Chromium at ${CHROMIUM}: install Debian's chromium (apt-get install -y chromium), or set CHORUS_CHROMIUM to a Chromium binary`)
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    // Without the background-networking flags Chromium keeps dialling Google's hosts, which a closed network refuses.
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  })
}

/** A page whose console errors and warnings, and uncaught errors, are collected in `problems`. */
export interface WatchedPage {
  page: Page
  context: BrowserContext
  problems: string[]
}

export interface DashboardFixture {
  url: string
  relay: Relay
  browser: Browser
  /** A new browser profile (its own IndexedDB and service worker) with one page. */
  open(): Promise<WatchedPage>
  teardown(): Promise<void>
}

export async function dashboardFixture(options: Pick<RelayOptions, 'auth'> = {}): Promise<DashboardFixture> {
  const temp = makeTempDir('chorus-web-')
  const dir = temp.path
  const dist = joinPath(dir, 'dist')
  await buildDashboard(dist)
  const relay = new Relay({ port: 0, dataDir: joinPath(dir, 'data'), logger: silentLogger, p2p: false, dashboard: dist, ...options })
  const { url } = await relay.start()
  let browser: Browser
  try {
    browser = await launchChromium()
  } catch (e) {
    await relay.stop()
    throw e
  }
  const contexts: BrowserContext[] = []
  return {
    url,
    relay,
    browser,
    async open() {
      const context = await browser.newContext({ viewport: { width: 1280, height: 800 } })
      contexts.push(context)
      const page = await context.newPage()
      const problems: string[] = []
      page.on('console', (m) => {
        if (m.type() === 'error' || m.type() === 'warning') problems.push(`${m.type()}: ${m.text()} (${m.location().url})`)
      })
      page.on('pageerror', (e) => problems.push(`uncaught: ${e.message}`))
      return { page, context, problems }
    },
    async teardown() {
      for (const c of contexts) await c.close()
      await browser.close()
      await relay.stop()
      temp.remove()
    },
  }
}

/** Joins the space from the join screen as a human named `name`, and waits until the page is online. */
export async function join(page: Page, url: string, name: string, space: string, token?: string): Promise<void> {
  await page.goto(`${url}/#/${space}/chat`)
  await page.getByTestId('join-name').fill(name)
  await page.getByTestId('join-space').fill(space)
  if (token !== undefined) {
    await page.locator('summary', { hasText: 'Access token' }).click()
    await page.getByTestId('join-token').fill(token)
  }
  await page.getByTestId('join-submit').click()
  await waitForStatus(page, 'online')
  // The service worker keeps the app for offline use; wait until it controls the page.
  await page.waitForFunction(() => navigator.serviceWorker.controller !== null)
}

export async function waitForStatus(page: Page, status: string): Promise<void> {
  await page.locator(`[data-testid="status"][data-status="${status}"]`).waitFor()
}

export async function show(page: Page, view: string): Promise<void> {
  await page.getByTestId(`nav-${view}`).click()
  await page.getByTestId(`view-${view}`).waitFor()
}

export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(SCREENSHOTS, { recursive: true })
  const path = joinPath(SCREENSHOTS, `${name}.png`)
  await page.screenshot({ path })
  return path
}

/** The texts of the messages the open conversation shows. */
export const messageTexts = (page: Page): Promise<string[]> =>
  page.getByTestId('message').evaluateAll((nodes) => nodes.map((n) => n.textContent ?? ''))
