/**
 * Test helpers for Chorus replicas and transports: `@chorus/sync/testing`.
 *
 * ```ts
 * import { MemoryNetwork } from '@chorus/sync/testing'
 * const net = new MemoryNetwork({ seed: 1 })
 * const a = net.transport('a')
 * ```
 */
export { MemoryNetwork, MemoryTransport } from './memory-network.ts'
export type { MemoryNetworkOptions } from './memory-network.ts'
export { runTransportTests } from './transport-suite.ts'
export type { TransportTestSetup } from './transport-suite.ts'
export { runStoreTests } from './store-suite.ts'
export type { StoreHarness } from './store-suite.ts'
