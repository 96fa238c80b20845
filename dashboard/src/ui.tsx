import type { ComponentChildren } from 'preact'
import { PRIORITIES, type ParticipantKind, type PresenceStatus, type Priority } from '@chorus/web'
import { absoluteTime, relativeTime } from './format.ts'

export function KindBadge({ kind }: { kind: ParticipantKind | undefined }) {
  const k = kind ?? 'unknown'
  // The text stays the kind's own name ("ai", "human"); CSS sets its case.
  return <span class={`badge kind kind-${k}`}>{k}</span>
}

export function PriorityBadge({ priority }: { priority: Priority }) {
  return <span class={`badge priority priority-${priority}`}>{priority}</span>
}

export function PresenceDot({ status }: { status: PresenceStatus }) {
  return <span class={`dot presence-${status}`} role="img" aria-label={status} title={status} />
}

/** A relative time that shows the exact one on hover. */
export function Time({ at }: { at: number }) {
  return (
    <time dateTime={new Date(at).toISOString()} title={absoluteTime(at)}>
      {relativeTime(at)}
    </time>
  )
}

export function EmptyState({ title, children }: { title: string; children?: ComponentChildren }) {
  return (
    <div class="empty" data-testid="empty">
      <p class="empty-title">{title}</p>
      {children !== undefined && <p class="empty-text">{children}</p>}
    </div>
  )
}

export function ViewHeader({ title, children }: { title: string; children?: ComponentChildren }) {
  return (
    <header class="view-header">
      <h1>{title}</h1>
      {children !== undefined && <p class="view-intro">{children}</p>}
    </header>
  )
}

export const capitalize = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1)

/** The options of a priority <select>. */
export function PriorityOptions() {
  return (
    <>
      {PRIORITIES.map((p) => (
        <option key={p} value={p}>
          {capitalize(p)}
        </option>
      ))}
    </>
  )
}

export const asPriority = (value: string): Priority => (PRIORITIES as readonly string[]).includes(value) ? (value as Priority) : 'normal'

export const initials = (name: string): string =>
  name
    .split(/\s+/)
    .filter((w) => w.length > 0)
    .slice(0, 2)
    .map((w) => w.charAt(0).toUpperCase())
    .join('') || '?'

const AVATAR_HUES = [210, 235, 260, 290, 330, 15, 35, 150, 175, 195]

/** A calm colour of its own for each participant. */
export const avatarColour = (id: string): string => {
  let h = 0
  for (let i = 0; i < id.length; i++) h = (h * 31 + id.charCodeAt(i)) >>> 0
  return `hsl(${AVATAR_HUES[h % AVATAR_HUES.length] ?? 210} 50% 50%)`
}

/** Initials in a coloured circle; agents and machines get a rounded square, so they are told apart at a glance. */
export function Avatar({ id, name, kind, size = 'normal' }: { id: string; name: string; kind: ParticipantKind | undefined; size?: 'small' | 'normal' }) {
  return (
    <span class={`avatar avatar-${size} ${kind === 'human' ? 'round' : 'square'}`} aria-hidden="true" style={{ background: avatarColour(id) }}>
      {initials(name)}
    </span>
  )
}
