/**
 * Acceptance suites every Transport, Store and LeaseLedger implementation runs (vitest):
 * `@chorus/sync/testing/suites`.
 *
 * ```ts
 * import { runLeaseLedgerTests, runStoreTests } from '@chorus/sync/testing/suites'
 * runStoreTests('my store', async () => ({ store: new MyStore(), cleanup: async () => {} }))
 * runLeaseLedgerTests('my ledger', async (clock) => ({ ledger: new MyLedger({ clock }), cleanup: async () => {} }))
 * ```
 */
export { runTransportTests } from './transport-suite.ts'
export type { TransportTestSetup } from './transport-suite.ts'
export { runStoreTests } from './store-suite.ts'
export type { StoreHarness } from './store-suite.ts'
export { runLeaseLedgerTests } from './lease-ledger-suite.ts'
export type { LeaseLedgerHarness } from './lease-ledger-suite.ts'
