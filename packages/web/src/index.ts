/**
 * @chorus/web: the Chorus space replica for browsers. The same typed API as `@chorus/sync` (everything it exports
 * is exported here too), plus `openBrowserSpace`: documents cached in IndexedDB, synced with a relay over
 * WebSocket, usable offline.
 *
 * Browser code: no `node:*` module may be imported here (the lint enforces it).
 */
import './no-eval.ts'
export * from '@chorus/sync'
export { openBrowserSpace, clearStoredSpace, type BrowserSpace, type BrowserSpaceOptions, type ConnectionStatus } from './browser-space.ts'
export { OfflineCache } from './offline-cache.ts'
