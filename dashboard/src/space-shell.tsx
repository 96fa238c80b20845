import { useCallback, useEffect, useMemo, useState } from 'preact/hooks'
import type { ConnectionStatus, Message } from '@chorus/web'
import { ActivityView } from './activity-view.tsx'
import { ChatView } from './chat-view.tsx'
import { PeopleView } from './people-view.tsx'
import { ProposalsView } from './proposals-view.tsx'
import { ResourcesView } from './resources-view.tsx'
import { VIEW_LABELS, VIEWS, type View } from './route.ts'
import type { Session } from './session.ts'
import { StateView } from './state-view.tsx'
import { TaskBoard } from './task-board.tsx'
import { BrandMark, Icon } from './icons.tsx'
import { Avatar, KindBadge } from './ui.tsx'
import { SpaceContext, useSpaceVersion, type SpaceView } from './use-space.ts'

interface Props {
  session: Session
  status: ConnectionStatus
  view: View
  onView: (view: View) => void
  onLeave: () => void
}

const STATUS_TEXT: Record<ConnectionStatus, { label: string; help: string }> = {
  online: { label: 'Online', help: 'Connected to the relay and up to date.' },
  syncing: { label: 'Syncing', help: 'Connected to the relay, catching up.' },
  connecting: { label: 'Connecting', help: 'Reaching the relay…' },
  offline: { label: 'Offline', help: 'No link to the relay. Everything still works here and is sent once it is back.' },
  closed: { label: 'Closed', help: 'This space is closed.' },
}

export function SpaceShell({ session, status, view, onView, onLeave }: Props) {
  const { web, me, identity } = session
  const space = web.space
  const spaceVersion = useSpaceVersion(space)
  const [seen] = useState(() => new Set<string>())
  const [seenVersion, setSeenVersion] = useState(0)
  const version = spaceVersion + seenVersion
  const inbox = useMemo(() => space.messages.inbox(me.id), [space, me, spaceVersion])
  const read = useCallback(
    (messages: readonly Message[]) => {
      const fresh = messages.filter((m) => !seen.has(m.id))
      if (fresh.length === 0) return
      for (const m of fresh) seen.add(m.id)
      setSeenVersion((v) => v + 1)
      me.ack(inbox.filter((m) => seen.has(m.id)))
    },
    [seen, me, inbox],
  )
  const context = useMemo<SpaceView>(() => ({ web, space, me, version, inbox, seen, read }), [web, space, me, version, inbox, seen, read])
  const unread = inbox.filter((m) => !seen.has(m.id)).length

  // Alt+1…Alt+7 switch views. `code`, not `key`: on a Mac Alt+1 types "¡".
  useEffect(() => {
    const onKey = (e: KeyboardEvent): void => {
      if (!e.altKey || e.ctrlKey || e.metaKey || !/^Digit[1-9]$/.test(e.code)) return
      const target = VIEWS[Number(e.code.slice(5)) - 1]
      if (target === undefined) return
      e.preventDefault()
      onView(target)
    }
    addEventListener('keydown', onKey)
    return () => removeEventListener('keydown', onKey)
  }, [onView])

  // Someone using the page is present: say so (Presence throttles this to one update a second).
  useEffect(() => {
    const touch = (): void => space.presence.touch(me.id)
    addEventListener('pointerdown', touch)
    addEventListener('keydown', touch)
    return () => {
      removeEventListener('pointerdown', touch)
      removeEventListener('keydown', touch)
    }
  }, [space, me])

  const { label, help } = STATUS_TEXT[status]
  return (
    <SpaceContext.Provider value={context}>
      <div class="shell">
        <header class="topbar">
          <div class="brand">
            <BrandMark />
            <span>Chorus</span>
          </div>
          <div class="space-name" title="The space you are in">
            <span class="space-label">Space</span>
            <strong data-testid="space-name">{identity.space}</strong>
          </div>
          <div class={`status status-${status}`} data-testid="status" data-status={status} title={help} role="status">
            <span class="dot" aria-hidden="true" />
            {label}
          </div>
          <div class="topbar-spacer" />
          <div class="whoami" data-testid="whoami">
            <Avatar id={me.id} name={identity.name} kind="human" size="small" />
            <span class="whoami-name">{identity.name}</span>
            <KindBadge kind="human" />
          </div>
          <button type="button" class="button subtle" data-testid="leave" onClick={onLeave} title="Close this space and sign out on this browser">
            <Icon name="leave" size={16} />
            Leave
          </button>
        </header>
        <nav class="sidenav" aria-label="Views">
          {VIEWS.map((v, i) => (
            <button
              key={v}
              type="button"
              class="nav-item"
              data-testid={`nav-${v}`}
              aria-current={v === view ? 'page' : undefined}
              aria-keyshortcuts={`Alt+${i + 1}`}
              title={`${VIEW_LABELS[v]} (Alt+${i + 1})`}
              onClick={() => onView(v)}
            >
              <Icon name={v} />
              <span class="nav-label">{VIEW_LABELS[v]}</span>
              {v === 'chat' && unread > 0 && (
                <span class="count-badge" aria-label={`${unread} unread`}>
                  {unread > 99 ? '99+' : unread}
                </span>
              )}
            </button>
          ))}
          <p class="nav-hint">
            <kbd>Alt</kbd>+<kbd>1</kbd>…<kbd>7</kbd> to switch
          </p>
        </nav>
        <main class="content" id="content">
          <CurrentView view={view} />
        </main>
      </div>
    </SpaceContext.Provider>
  )
}

function CurrentView({ view }: { view: View }) {
  switch (view) {
    case 'chat':
      return <ChatView />
    case 'tasks':
      return <TaskBoard />
    case 'proposals':
      return <ProposalsView />
    case 'people':
      return <PeopleView />
    case 'state':
      return <StateView />
    case 'resources':
      return <ResourcesView />
    case 'activity':
      return <ActivityView />
  }
}
