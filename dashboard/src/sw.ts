/**
 * The dashboard's service worker: it keeps the app (its page and built assets) so the page opens, and reloads,
 * without a network. Network first: a reachable relay always serves the current build, and the cache is the
 * fallback. Space data is not here; it lives in IndexedDB (@chorus/web).
 */

// The DOM lib has no service-worker scope types; these are the few parts used.
interface ExtendableEvent extends Event {
  waitUntil(promise: Promise<unknown>): void
}
interface FetchEvent extends ExtendableEvent {
  readonly request: Request
  respondWith(response: Promise<Response>): void
}
interface ServiceWorkerScope {
  addEventListener(type: 'install' | 'activate', listener: (event: ExtendableEvent) => void): void
  addEventListener(type: 'fetch', listener: (event: FetchEvent) => void): void
  skipWaiting(): Promise<void>
  readonly clients: { claim(): Promise<void> }
  readonly location: Location
}

const scope = self as unknown as ServiceWorkerScope
const CACHE = 'chorus-dashboard'
const SHELL = '/'

scope.addEventListener('install', (event) => {
  event.waitUntil(
    (async () => {
      const response = await fetch('/precache.json', { cache: 'no-store' })
      const files = (await response.json()) as string[]
      const cache = await caches.open(CACHE)
      await cache.addAll([SHELL, ...files])
      await scope.skipWaiting()
    })(),
  )
})

scope.addEventListener('activate', (event) => {
  event.waitUntil(scope.clients.claim())
})

const isApp = (request: Request, url: URL): boolean =>
  request.method === 'GET' &&
  url.origin === scope.location.origin &&
  (request.mode === 'navigate' ? url.pathname === SHELL || url.pathname === '/index.html' : url.pathname.startsWith('/assets/'))

scope.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url)
  if (!isApp(event.request, url)) return
  const key = event.request.mode === 'navigate' ? SHELL : event.request
  event.respondWith(
    (async () => {
      const cache = await caches.open(CACHE)
      try {
        const response = await fetch(event.request)
        if (response.ok) await cache.put(key, response.clone())
        return response
      } catch (e) {
        const cached = await cache.match(key)
        if (cached !== undefined) return cached
        throw e
      }
    })(),
  )
})
