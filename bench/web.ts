/**
 * Chorus web benchmark: how long a dashboard page takes to show a 10,000-message space from IndexedDB while
 * offline, beside y-indexeddb and Yjs alone loading the same database in the same browser, in the same run.
 *
 *   npm run bench:web                      # about a minute on 2 cores
 *   npm run bench:web -- --quick           # fewer reloads
 *   node bench/web.ts --messages=50000     # another size
 *
 * The relay (in this process) serves a fresh build of the dashboard. A page joins the space online, so its
 * IndexedDB holds everything; then the browser goes offline and the page is reloaded: the service worker serves
 * the app, IndexedDB the space. "Shown" is the moment the page shows the channel's message count and its newest
 * messages, taken in the page (performance.now(), from the start of the navigation) by a MutationObserver that
 * is installed before the page's own scripts. Tables go to stdout, progress lines to stderr.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { arch, cpus, loadavg, platform, tmpdir } from 'node:os'
import { join } from 'node:path'
import { build } from 'vite'
import { openRelaySpace, Space } from '@chorus/sync'
import { Relay, silentLogger } from '@chorus/relay'
import { OfflineCache } from '@chorus/web'
import { buildDashboard, launchChromium, join as joinSpace, waitForStatus } from '../test/web/browser.ts'
import { benchArgs } from './lib/args.ts'
import { fmtMs, median, progress, quantile, verdict } from './lib/measure.ts'
import { printTable } from './lib/table.ts'

const { quick, value } = benchArgs<'offline-load'>()
const MESSAGES = Number(value('messages') ?? 10_000)
if (!(Number.isSafeInteger(MESSAGES) && MESSAGES > 0)) {
  console.error(`--messages must be a positive whole number, got ${value('messages')}`)
  process.exit(2)
}
const RELOADS = quick ? 3 : 9
const TARGET_MS = 1_000
const SPACE = 'bench-web'
const WRITERS = ['planner', 'builder', 'reviewer', 'tester', 'scribe']

const versionOf = (pkg: string): string =>
  (JSON.parse(readFileSync(new URL(`../node_modules/${pkg}/package.json`, import.meta.url), 'utf8')) as { version: string }).version

const dir = mkdtempSync(join(tmpdir(), 'chorus-bench-web-'))
const dist = join(dir, 'dist')
progress('building the dashboard and the baseline page')
await buildDashboard(dist)
await build({
  root: join(import.meta.dirname, 'lib', 'web-baseline'),
  base: '/bench-baseline/',
  logLevel: 'error',
  build: { outDir: join(dist, 'bench-baseline'), emptyOutDir: true },
})

const relay = new Relay({ port: 0, dataDir: join(dir, 'data'), logger: silentLogger, p2p: false, dashboard: dist })
const { url } = await relay.start()
const browser = await launchChromium()
console.log('Chorus web benchmark')
console.log(`node ${process.version}, chromium ${browser.version()}, yjs ${versionOf('yjs')}, y-indexeddb ${versionOf('y-indexeddb')}, preact ${versionOf('preact')}, ${platform()} ${arch()}`)
console.log(`date ${new Date().toISOString()}`)
console.log(`cpu  ${cpus()[0]?.model ?? 'unknown'} x ${cpus().length}, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`)
console.log(`mode ${quick ? 'quick' : 'full'}: ${MESSAGES.toLocaleString('en')} messages, ${RELOADS} offline reloads each`)

try {
  // The space: written locally, then handed to the relay in one sync.
  progress(`writing ${MESSAGES} messages`)
  const local = new Space({ id: SPACE })
  for (const id of WRITERS) local.join({ id, name: id, kind: 'ai' })
  for (let i = 0; i < MESSAGES; i++) {
    const from = WRITERS[i % WRITERS.length] as string
    local.member(from).send(`update ${i}: step ${i % 97} of the build finished; ${'details '.repeat(1 + (i % 8))}`, {
      priority: i % 50 === 0 ? 'urgent' : 'normal',
    })
  }
  const uploader = await openRelaySpace({ relay: url, space: SPACE, doc: local.doc, participant: { id: 'planner', kind: 'ai' } })
  await uploader.synced()
  const general = local.messages.all().filter((m) => m.channel === 'general' && m.to === undefined).length

  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } })
  // Installed before the page's scripts on every load: notes when the count and at least one message are shown.
  await context.addInitScript((expected: string) => {
    const w = window as { shownAt?: number }
    const check = (): void => {
      if (w.shownAt !== undefined) return
      const count = document.querySelector('[data-testid="message-count"]')
      if (count?.textContent === expected && document.querySelector('[data-testid="message"]') !== null) {
        w.shownAt = performance.now()
        observer.disconnect()
      }
    }
    const observer = new MutationObserver(check)
    observer.observe(document, { subtree: true, childList: true, characterData: true })
  }, String(general))
  const page = await context.newPage()
  progress('joining online, so the page stores the space in IndexedDB')
  await joinSpace(page, url, 'Bench', SPACE)
  await page.waitForFunction(() => (window as { shownAt?: number }).shownAt !== undefined, undefined, { timeout: 120_000 })
  await page.evaluate('window.chorus.web.stored()')

  await context.setOffline(true)
  await waitForStatus(page, 'offline')
  const shown: number[] = []
  for (let i = 0; i < RELOADS; i++) {
    progress(`offline reload ${i + 1}/${RELOADS}`)
    await page.reload()
    await page.waitForFunction(() => (window as { shownAt?: number }).shownAt !== undefined, undefined, { timeout: 60_000 })
    const status = await page.getByTestId('status').getAttribute('data-status')
    if (status !== 'offline') throw new Error(`the page should be offline, but says ${status}`)
    shown.push((await page.evaluate(() => (window as { shownAt?: number }).shownAt)) as number)
  }

  // The baseline, in another profile-less page of the same context (same origin, same IndexedDB).
  await context.setOffline(false)
  const db = OfflineCache.databaseName('chorus', SPACE)
  const baseline: number[] = []
  const bare = await context.newPage()
  for (let i = 0; i < RELOADS; i++) {
    progress(`baseline load ${i + 1}/${RELOADS}`)
    await bare.goto(`${url}/bench-baseline/index.html?db=${encodeURIComponent(db)}`)
    await bare.waitForFunction(() => (window as { shownAt?: number }).shownAt !== undefined, undefined, { timeout: 60_000 })
    const lines = await bare.locator('#count').textContent()
    if (Number(lines) < MESSAGES) throw new Error(`the baseline page found ${lines} messages, expected ${MESSAGES}`)
    baseline.push((await bare.evaluate(() => (window as { shownAt?: number }).shownAt)) as number)
  }

  const sorted = (xs: number[]): number[] => [...xs].sort((a, b) => a - b)
  const row = (label: string, xs: number[]): string[] => [label, fmtMs(median(xs)), fmtMs(quantile(sorted(xs), 0)), fmtMs(quantile(sorted(xs), 1))]
  printTable(
    `Time until a page shows a ${MESSAGES.toLocaleString('en')}-message space from IndexedDB, offline (${RELOADS} loads each)`,
    ['page', 'median', 'best', 'worst'],
    [row('dashboard (service worker + @chorus/web + Preact)', shown), row('baseline: y-indexeddb + Yjs, no UI', baseline)],
    [
      `target: the dashboard under ${fmtMs(TARGET_MS)}, every load: ${verdict(Math.max(...shown) < TARGET_MS)}; dashboard / baseline (medians) = ${(median(shown) / median(baseline)).toFixed(2)}x`,
      'both from the start of the navigation; the dashboard also parses its bundle, derives the space and renders the newest 200 messages',
    ],
  )
  await uploader.close()
  local.destroy()
} finally {
  await browser.close()
  await relay.stop()
  rmSync(dir, { recursive: true, force: true })
}
