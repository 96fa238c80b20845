/**
 * Test helpers for Chorus replicas and transports: `@chorus/sync/testing`.
 *
 * ```ts
 * import { MemoryNetwork } from '@chorus/sync/testing'
 * const net = new MemoryNetwork({ seed: 1 })
 * const a = net.transport('a')
 * ```
 *
 * The shared acceptance suites (which need vitest) are at `@chorus/sync/testing/suites`.
 */
export { MemoryNetwork, MemoryTransport } from './memory-network.ts'
export type { MemoryNetworkOptions } from './memory-network.ts'
export { Signal } from './signal.ts'
