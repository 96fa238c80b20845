/**
 * Waiting in tests without sleeping: `until` re-checks a condition when something that can change it fires (a
 * document update, a socket or process event, a Signal), and polls only where nothing announces the change. Its
 * timeout is a safety net against a hang, far above what any wait needs; no test measures time with it.
 */
import type * as Y from 'yjs'
import type { Space } from '@chorus/sync'
import type { Signal } from '@chorus/sync/testing'

/** How long a wait may last before it fails: generous, so a loaded machine never reaches it. */
export const WAIT_MS = 30_000

/** Between two checks of a condition nothing announces. */
const POLL_MS = 10

/** Calls `wake` whenever what a wait depends on may have changed; returns what stops it. */
export type Wake = (wake: () => void) => () => void

export interface UntilOptions {
  /** What announces a change: the condition is checked again when one fires. Without any, it is polled. */
  on?: Wake | readonly Wake[]
  /** Fails after this long (default WAIT_MS). */
  timeoutMs?: number
}

/**
 * Resolves once `check()` holds; fails naming `what` after the timeout. With `on`, a condition that came true
 * without any of its events firing fails too, saying so: the test misses a wake-up.
 */
export function until(check: () => boolean | Promise<boolean>, what: string | (() => string), options: UntilOptions = {}): Promise<void> {
  const timeoutMs = options.timeoutMs ?? WAIT_MS
  const wakes: readonly Wake[] = options.on === undefined ? [] : typeof options.on === 'function' ? [options.on] : options.on
  const describe = (): string => (typeof what === 'string' ? what : what())
  return new Promise<void>((resolve, reject) => {
    let settled = false
    // A check is running; `dirty`: something fired meanwhile, so check once more when it ends.
    const look = { running: false, dirty: false }
    let soon = false
    let poll: ReturnType<typeof setTimeout> | undefined
    const finish = (error?: unknown): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      clearTimeout(poll)
      for (const stop of stops) stop()
      if (error === undefined) resolve()
      else reject(error instanceof Error ? error : new Error(`checking for ${describe()} threw ${JSON.stringify(error)}`))
    }
    const recheck = (): void => {
      if (settled) return
      if (look.running) {
        look.dirty = true
        return
      }
      look.running = true
      void (async () => {
        try {
          do {
            look.dirty = false
            if (await check()) return finish()
          } while (look.dirty && !settled)
        } catch (e) {
          return finish(e)
        } finally {
          look.running = false
        }
        // Polled: the next look a while after this one ended, so a slow check never runs back to back.
        if (wakes.length === 0 && !settled) poll = setTimeout(recheck, POLL_MS)
      })()
    }
    // After the turn in which it fired, so every other listener of the same event has run.
    const wake = (): void => {
      if (soon || settled) return
      soon = true
      setImmediate(() => {
        soon = false
        recheck()
      })
    }
    const timer = setTimeout(() => {
      void (async () => {
        let heldUnannounced = false
        if (wakes.length > 0) heldUnannounced = await (async () => check())().catch(() => false)
        finish(
          new Error(
            heldUnannounced
              ? `${describe()}: it came true within ${timeoutMs} ms, but no event it waits on announced it`
              : `timed out after ${timeoutMs} ms waiting for: ${describe()}`,
          ),
        )
      })()
    }, timeoutMs)
    const stops = wakes.map((w) => w(wake))
    recheck()
  })
}

/** Something with `on`/`off` (Node's EventEmitter, lib0's Observable: Y.Doc, Awareness, WebsocketProvider, ws). */
interface Emitter {
  on(event: string, listener: () => void): unknown
  off(event: string, listener: () => void): unknown
}

/** Something with `addEventListener` (an EventTarget: a libp2p node or service). */
interface Target {
  addEventListener(event: string, listener: () => void): unknown
  removeEventListener(event: string, listener: () => void): unknown
}

/** Wakes when `source` emits any of `events`. */
export const emits =
  (source: Emitter | Target, ...events: string[]): Wake =>
  (wake) => {
    const emitter = 'on' in source ? source : undefined
    const target = 'on' in source ? undefined : source
    for (const e of events) {
      emitter?.on(e, wake)
      target?.addEventListener(e, wake)
    }
    return () => {
      for (const e of events) {
        emitter?.off(e, wake)
        target?.removeEventListener(e, wake)
      }
    }
  }

/** Wakes on every update of any of `docs`. */
export const updates = (...docs: Y.Doc[]): Wake => all(docs.map((d) => emits(d, 'update')))

/** Wakes on every update of any document of any of `spaces` (the main one and its restricted channels). */
export const spaceUpdates = (...spaces: Space[]): Wake => updates(...spaces.flatMap((s) => s.documents.map((d) => d.doc)))

/** Wakes each time one of `signals` is notified. */
export const signalled = (...signals: Signal[]): Wake =>
  all(
    signals.map((signal) => (wake) => {
      let live = true
      const next = (): void => {
        void signal.next().then(() => {
          if (!live) return
          wake()
          next()
        })
      }
      next()
      return () => {
        live = false
      }
    }),
  )

/** Wakes when any of `wakes` does. */
export const all =
  (wakes: readonly Wake[]): Wake =>
  (wake) => {
    const stops = wakes.map((w) => w(wake))
    return () => {
      for (const stop of stops) stop()
    }
  }

/** The arguments of the next `event` of `emitter`; fails after `timeoutMs` (a safety net, as for `until`). */
export function nextEvent<T extends unknown[]>(
  emitter: { once(event: string, listener: (...args: T) => void): unknown },
  event: string,
  timeoutMs = WAIT_MS,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${event}`)), timeoutMs)
    emitter.once(event, (...args: T) => {
      clearTimeout(timer)
      resolve(args)
    })
  })
}

/** One macrotask turn, so I/O callbacks and what was scheduled with setImmediate get to run. */
export const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))
