import { useMemo } from 'preact/hooks'
import type { PresenceStatus } from '@chorus/web'
import { Avatar, EmptyState, KindBadge, PresenceDot, Time, ViewHeader } from './ui.tsx'
import { useSpace } from './use-space.ts'

const PRESENCE_ORDER: Record<PresenceStatus, number> = { online: 0, idle: 1, offline: 2 }
const PRESENCE_LABELS: Record<PresenceStatus, string> = { online: 'Online', idle: 'Idle', offline: 'Offline' }

export function PeopleView() {
  const { space, me, version } = useSpace()
  const people = useMemo(
    () =>
      space.participants
        .list()
        .map((p) => ({ p, presence: space.presence.status(p.id) }))
        // Who is here first, then by name.
        .sort((a, b) => PRESENCE_ORDER[a.presence.status] - PRESENCE_ORDER[b.presence.status] || a.p.name.localeCompare(b.p.name)),
    [space, version],
  )
  const online = people.filter((x) => x.presence.status === 'online').length

  return (
    <section class="view people-view" data-testid="view-people" aria-label="People">
      <ViewHeader title="People">
        Everyone who joined this space, people and agents. {online} {online === 1 ? 'is' : 'are'} online now.
      </ViewHeader>
      {people.length === 0 ? (
        <EmptyState title="Nobody here yet">Share the space name with someone; they show up here as soon as they join.</EmptyState>
      ) : (
        <div class="card table-card">
          <table class="table people-table">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Kind</th>
                <th scope="col">Presence</th>
                <th scope="col">Last seen</th>
                <th scope="col">Working on</th>
              </tr>
            </thead>
            <tbody>
              {people.map(({ p, presence }) => (
                <tr key={p.id} data-testid="participant" data-id={p.id} data-presence={presence.status}>
                  <td>
                    <div class="person">
                      <Avatar id={p.id} name={p.name} kind={p.kind} />
                      <div>
                        <div class="person-name">
                          {p.name}
                          {p.id === me.id && <span class="you"> (you)</span>}
                          {p.leftAt !== undefined && <span class="badge left">left</span>}
                        </div>
                        <div class="person-id">{p.id}</div>
                      </div>
                    </div>
                  </td>
                  <td>
                    <KindBadge kind={p.kind} />
                  </td>
                  <td>
                    <span class="presence">
                      <PresenceDot status={presence.status} />
                      {PRESENCE_LABELS[presence.status]}
                    </span>
                  </td>
                  <td class="muted">{presence.lastSeen > 0 ? <Time at={presence.lastSeen} /> : 'never'}</td>
                  <td>{presence.task !== undefined ? <span data-testid="working-on">{presence.task}</span> : <span class="muted">—</span>}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  )
}
