/**
 * Acceptance suites every Transport and Store implementation runs (vitest): `@chorus/sync/testing/suites`.
 *
 * ```ts
 * import { runStoreTests } from '@chorus/sync/testing/suites'
 * runStoreTests('my store', async () => ({ store: new MyStore(), cleanup: async () => {} }))
 * ```
 */
export { runTransportTests } from './transport-suite.ts'
export type { TransportTestSetup } from './transport-suite.ts'
export { runStoreTests } from './store-suite.ts'
export type { StoreHarness } from './store-suite.ts'
