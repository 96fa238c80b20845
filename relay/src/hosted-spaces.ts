/**
 * Spaces the relay acts in itself, through the typed `Space` API: the REST routes and the `/ws` event streams
 * read and write here. A hosted space holds its three documents in the registry (`<space>`,
 * `<space>#ai-only`, `<space>#human-only`), so whatever it writes is persisted and fanned out to sync clients
 * like any other update, and whatever they write is visible to it at once.
 */
import { ChorusError, isChorusError, Space, type Clock, type LeaseClient, type RestrictedChannel } from '@chorus/sync'
import type { Logger } from './logger.ts'
import type { SpaceEntry } from './space-entry.ts'
import type { SpaceRegistry } from './spaces.ts'

export interface HostedSpace {
  readonly space: Space
  /** Give the space back; it is unloaded once nobody uses it for the registry's idle time. */
  release(): void
}

interface Slot {
  readonly name: string
  users: number
  readonly ready: Promise<{ space: Space; entries: SpaceEntry[] }>
  idle: ReturnType<typeof setTimeout> | undefined
}

export interface HostedSpacesOptions {
  registry: SpaceRegistry
  clock: Clock
  /** The lease client the hosted spaces claim and lock through (the relay's own arbiter). */
  leases: LeaseClient
  /** Unload a hosted space this long after its last use. */
  idleMs: number
  logger: Logger
}

const RESTRICTED: RestrictedChannel[] = ['ai-only', 'human-only']

/**
 * A participant present only through REST calls (register, heartbeat, send...) turns offline this long after its
 * last call, as the coordination hub's heartbeat detection had it.
 */
export const REST_PRESENCE_MS = 2 * 60_000

export class HostedSpaces {
  private readonly options: HostedSpacesOptions
  private readonly slots = new Map<string, Slot>()
  private closed = false
  private readonly pruner: ReturnType<typeof setInterval>

  constructor(options: HostedSpacesOptions) {
    this.options = options
    // Reads prune too; the timer makes silent participants go offline for sync clients as well.
    this.pruner = setInterval(() => void this.prune(), REST_PRESENCE_MS / 4)
    this.pruner.unref()
  }

  private async prune(): Promise<void> {
    for (const slot of this.slots.values()) {
      const loaded = await slot.ready.catch(() => undefined)
      loaded?.space.presence.prune(REST_PRESENCE_MS)
    }
  }

  /** The hosted space `name` (a main space, without `#`), loading it if needed; call `release()` when done. */
  async use(name: string): Promise<HostedSpace> {
    if (this.closed) throw new ChorusError('closed', 'the relay is stopping')
    if (name.includes('#')) throw new ChorusError('invalid_input', `"${name}" names a restricted-channel document, not a space`)
    let slot = this.slots.get(name)
    if (slot === undefined) {
      slot = { name, users: 0, ready: this.open(name), idle: undefined }
      this.slots.set(name, slot)
      const s = slot
      slot.ready.catch(() => {
        if (this.slots.get(name) === s) this.slots.delete(name)
      })
    }
    slot.users++
    if (slot.idle !== undefined) {
      clearTimeout(slot.idle)
      slot.idle = undefined
    }
    let space: Space
    try {
      space = (await slot.ready).space
    } catch (e) {
      slot.users--
      throw e
    }
    space.presence.prune(REST_PRESENCE_MS)
    let released = false
    const s = slot
    return {
      space,
      release: () => {
        if (released) return
        released = true
        this.release(s)
      },
    }
  }

  /** Runs `fn` in the hosted space `name`, given back whatever happens. */
  async using<T>(name: string, fn: (space: Space) => T | Promise<T>): Promise<T> {
    const hosted = await this.use(name)
    try {
      return await fn(hosted.space)
    } finally {
      hosted.release()
    }
  }

  /** Drop every hosted space (their documents stay with the registry, which flushes them). */
  async close(): Promise<void> {
    this.closed = true
    clearInterval(this.pruner)
    const slots = [...this.slots.values()]
    this.slots.clear()
    await Promise.all(slots.map((slot) => this.unload(slot)))
  }

  private release(slot: Slot): void {
    slot.users--
    if (slot.users > 0 || this.closed || this.slots.get(slot.name) !== slot) return
    slot.idle = setTimeout(() => {
      slot.idle = undefined
      if (slot.users === 0 && this.slots.get(slot.name) === slot) {
        this.slots.delete(slot.name)
        void this.unload(slot)
      }
    }, this.options.idleMs)
    slot.idle.unref()
  }

  private async unload(slot: Slot): Promise<void> {
    if (slot.idle !== undefined) clearTimeout(slot.idle)
    const loaded = await slot.ready.catch(() => undefined)
    if (loaded === undefined) return
    loaded.space.destroy()
    for (const entry of loaded.entries) this.options.registry.release(entry)
  }

  private async open(name: string): Promise<{ space: Space; entries: SpaceEntry[] }> {
    const { registry } = this.options
    const results = await Promise.allSettled([name, ...RESTRICTED.map((c) => `${name}#${c}`)].map((n) => registry.acquire(n)))
    const entries = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []))
    const failed = results.find((r) => r.status === 'rejected')
    if (failed !== undefined) {
      for (const entry of entries) registry.release(entry)
      const reason: unknown = failed.reason
      if (!isChorusError(reason, 'closed')) this.options.logger.error('could not load a hosted space', { space: name, error: reason })
      throw reason
    }
    const [main, ai, human] = entries as [SpaceEntry, SpaceEntry, SpaceEntry]
    const space = new Space({
      id: name,
      doc: main.doc,
      clock: this.options.clock,
      leases: this.options.leases,
      // The registry's awareness: participants acting over REST appear present to sync clients too.
      awareness: main.awareness,
      restricted: { 'ai-only': ai.doc, 'human-only': human.doc },
    })
    space.initialize()
    return { space, entries }
  }
}
