/**
 * @chorus/relay: the Chorus relay. Stock y-websocket clients sync spaces through it, and it keeps every space
 * durable in a `node:sqlite` store.
 *
 * ```ts
 * import * as Y from 'yjs'
 * import { WebsocketProvider } from 'y-websocket'
 * import { Relay } from '@chorus/relay'
 *
 * const relay = new Relay({ port: 0, dataDir: '.data/relay' }) // port 0: any free port
 * const { url } = await relay.start()
 *
 * const doc = new Y.Doc()
 * const provider = new WebsocketProvider(`${url.replace('http', 'ws')}/sync`, 'team', doc)
 * await new Promise((resolve) => provider.once('sync', resolve))
 * doc.getMap('state').set('build', 'green') // stored by the relay before anyone else hears of it
 *
 * const health = await (await fetch(`${url}/health`)).json()
 * console.log(health.status, health.spaces) // 'ok' 1
 * provider.destroy()
 * doc.destroy() // also stops the awareness timer the provider started
 * await relay.stop()
 * ```
 *
 * From the shell: `npm run relay -- --port 8550 --data .data/relay`. (test/relay/docs.test.ts runs this example.)
 */
export { Relay, DEFAULT_MAX_FRAME_BYTES, DEFAULT_PING_INTERVAL_MS, DEFAULT_CLOSE_GRACE_MS, type RelayOptions, type RelayHealth, type RelayCapabilities } from './relay.ts'
export { Auth, type TokenEntry, type Identity } from './auth.ts'
export type { Caller } from './access.ts'
export { HostedSpaces, REST_PRESENCE_MS, type HostedSpace } from './hosted-spaces.ts'
export { RELAY_VERSION } from './version.ts'
export { loadOrCreateRelayKey, RELAY_KEY_FILE, type RelayKey } from './relay-key.ts'
export { SqliteLeaseLedger, LEASE_LEDGER_FILE } from './storage/sqlite-lease-ledger.ts'
export { openStorage, parseStorageSpec, defaultStorage, STORE_FILE, STORAGE_FORMS, type Storage, type StorageSpec } from './storage/storage.ts'
export { SpaceRegistry, checkSpaceName, DEFAULT_IDLE_MS, MAX_SPACE_NAME_LENGTH, type SpaceRegistryOptions } from './spaces.ts'
export { SpaceEntry, type SpacePeer } from './space-entry.ts'
export { SyncConnection, CloseCode, DEFAULT_MAX_MALFORMED, DEFAULT_MAX_BUFFERED_BYTES, type SyncConnectionOptions } from './sync-connection.ts'
export { parseConfig, parsePort, isLoopbackHost, ConfigError, USAGE, DEFAULT_HOST, DEFAULT_PORT, DEFAULT_DATA_DIR, type RelayConfig, type ParsedCommand } from './config.ts'
export { stderrLogger, silentLogger, type Logger } from './logger.ts'
