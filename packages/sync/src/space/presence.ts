import { Awareness } from 'y-protocols/awareness'
import type { Clock } from '../clock.ts'
import type { SpaceCore } from './core.ts'

export type PresenceStatus = 'online' | 'idle' | 'offline'

export interface PresenceInfo {
  participant: string
  status: PresenceStatus
  /** Last time anyone saw the participant active (ms since epoch). */
  lastSeen: number
  /** What it says it is working on. */
  task?: string
}

interface LocalEntry {
  /** Last time the participant did something through this replica. */
  active: number
  task?: string
}

/** The awareness field Chorus uses; one replica may host several participants (a hub, a relay, a test). */
const FIELD = 'chorus'

const TOUCH_EVERY_MS = 1000

export const DEFAULT_IDLE_AFTER_MS = 5 * 60 * 1000

/**
 * Presence over y-protocols Awareness: not stored in the document, gone when a replica disconnects.
 * The Awareness instance renews the local state every 15 s by itself, which is the heartbeat; a replica that
 * stops renewing is dropped by its peers after 30 s (offline).
 */
export class Presence {
  readonly awareness: Awareness
  private readonly core: SpaceCore
  private readonly clock: Clock
  private readonly idleAfter: number
  /** An awareness passed in belongs to the caller (e.g. a relay's, shared with its connections). */
  private readonly ownsAwareness: boolean

  constructor(core: SpaceCore, options: { awareness?: Awareness; idleAfterMs?: number } = {}) {
    this.core = core
    this.clock = core.clock
    this.ownsAwareness = options.awareness === undefined
    this.awareness = options.awareness ?? new Awareness(core.doc)
    this.idleAfter = options.idleAfterMs ?? DEFAULT_IDLE_AFTER_MS
  }

  /** Marks a participant hosted by this replica as active now (every API call by it does this). */
  touch(participant: string, task?: string): void {
    const local = this.localEntries()
    const prev = local[participant]
    // Within a second nothing a peer could notice changes; skip the awareness update (it is broadcast).
    if (prev !== undefined && (task === undefined || task === prev.task) && this.clock.now() - prev.active < TOUCH_EVERY_MS) return
    const entry: LocalEntry = { active: this.clock.now() }
    const t = task ?? prev?.task
    if (t !== undefined) entry.task = t
    this.awareness.setLocalState({ ...this.awareness.getLocalState(), [FIELD]: { ...local, [participant]: entry } })
  }

  /** Stops announcing a participant from this replica. */
  remove(participant: string): void {
    const local = { ...this.localEntries() }
    if (!(participant in local)) return
    delete local[participant]
    this.awareness.setLocalStateField(FIELD, local)
  }

  /**
   * Stops announcing participants hosted here that were not active for `maxAgeMs`: for a replica acting for
   * clients that only check in now and then (a relay's REST heartbeats), so a silent one turns offline.
   */
  prune(maxAgeMs: number): string[] {
    const local = this.localEntries()
    const cutoff = this.clock.now() - maxAgeMs
    const stale = Object.keys(local).filter((id) => (local[id]?.active ?? 0) < cutoff)
    if (stale.length === 0) return []
    const kept = { ...local }
    for (const id of stale) delete kept[id]
    this.awareness.setLocalStateField(FIELD, kept)
    return stale
  }

  status(participant: string): PresenceInfo {
    const now = this.clock.now()
    let active: number | undefined
    let task: string | undefined
    for (const state of this.awareness.getStates().values()) {
      const entry = (state[FIELD] as Record<string, LocalEntry> | undefined)?.[participant]
      if (entry !== undefined && (active === undefined || entry.active > active)) {
        active = entry.active
        task = entry.task
      }
    }
    const stored = this.core.participant(participant)?.lastSeen ?? 0
    if (active === undefined) return { participant, status: 'offline', lastSeen: stored }
    const info: PresenceInfo = {
      participant,
      status: now - active > this.idleAfter ? 'idle' : 'online',
      lastSeen: Math.max(active, stored),
    }
    if (task !== undefined) info.task = task
    return info
  }

  /** Ids of participants announced by any connected replica (online or idle). */
  present(): string[] {
    const ids = new Set<string>()
    for (const state of this.awareness.getStates().values()) {
      for (const id of Object.keys((state[FIELD] as Record<string, LocalEntry> | undefined) ?? {})) ids.add(id)
    }
    return [...ids].sort()
  }

  /** Stops announcing; destroys the awareness only if this object created it. */
  destroy(): void {
    if (this.ownsAwareness) this.awareness.destroy()
    else if (Object.keys(this.localEntries()).length > 0) this.awareness.setLocalState(null)
  }

  private localEntries(): Record<string, LocalEntry> {
    return (this.awareness.getLocalState()?.[FIELD] as Record<string, LocalEntry> | undefined) ?? {}
  }
}
