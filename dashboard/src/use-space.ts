import { createContext } from 'preact'
import { useContext, useEffect, useState } from 'preact/hooks'
import type { BrowserSpace, Member, Message, Space } from '@chorus/web'

/** Presence and "x minutes ago" change with time alone; redraw at least this often. */
const CLOCK_TICK_MS = 15_000

/**
 * A number that grows whenever the space changes (any of its documents, or presence), at most once per frame:
 * views derive what they show from the space on render, and use this to know when to.
 */
export function useSpaceVersion(space: Space): number {
  const [version, setVersion] = useState(0)
  useEffect(() => {
    let frame = 0
    const bump = (): void => {
      if (frame !== 0) return
      frame = requestAnimationFrame(() => {
        frame = 0
        setVersion((v) => v + 1)
      })
    }
    const docs = space.documents.map((d) => d.doc)
    for (const doc of docs) doc.on('update', bump)
    space.presence.awareness.on('change', bump)
    const timer = setInterval(bump, CLOCK_TICK_MS)
    return () => {
      for (const doc of docs) doc.off('update', bump)
      space.presence.awareness.off('change', bump)
      clearInterval(timer)
      cancelAnimationFrame(frame)
    }
  }, [space])
  return version
}

/** What every view of an open space needs. */
export interface SpaceView {
  web: BrowserSpace
  space: Space
  me: Member
  /** See useSpaceVersion: memoize derived data on it. */
  version: number
  /** My unread messages as the space counts them (`messages.inbox`), oldest first. */
  inbox: readonly Message[]
  /**
   * Messages shown to me on this page. The read cursor advances per writer only over an unbroken run, so a
   * conversation read before an older one of the same writer cannot be acknowledged yet; it still counts as read here.
   */
  seen: ReadonlySet<string>
  /** Marks messages as seen here and acknowledges every seen one the cursor can take. */
  read: (messages: readonly Message[]) => void
}

export const SpaceContext = createContext<SpaceView | undefined>(undefined)

export function useSpace(): SpaceView {
  const view = useContext(SpaceContext)
  if (view === undefined) throw new Error('useSpace outside an open space')
  return view
}
