import { useMemo, useState } from 'preact/hooks'
import { EVENT_TYPES, type EventType, type HistoryQuery } from '@chorus/web'
import { absoluteTime, describeEvent, nameOf, shortTime } from './format.ts'
import { Avatar, EmptyState, ViewHeader } from './ui.tsx'
import { useSpace } from './use-space.ts'

const LIMIT = 200

const isEventType = (v: string): v is EventType => (EVENT_TYPES as readonly string[]).includes(v)

/** Groups of event types, for a colour per kind of thing that happened. */
const CATEGORY: Record<EventType, string> = {
  message: 'chat',
  join: 'people',
  leave: 'people',
  state_update: 'state',
  task_created: 'tasks',
  task_claimed: 'tasks',
  task_released: 'tasks',
  task_completed: 'tasks',
  proposal_created: 'proposals',
  proposal_closed: 'proposals',
  vote: 'proposals',
  resource_created: 'resources',
  edit: 'resources',
  lock: 'resources',
  unlock: 'resources',
  conflict: 'warning',
  lease_lost: 'warning',
}

export function ActivityView() {
  const { space, me, version } = useSpace()
  const [type, setType] = useState('')
  const [participant, setParticipant] = useState('')
  const participants = useMemo(() => space.participants.list(), [space, version])
  const events = useMemo(() => {
    const query: HistoryQuery = { limit: LIMIT }
    if (isEventType(type)) query.type = type
    if (participant !== '') query.participant = participant
    return space.events.history(query).reverse()
  }, [space, version, type, participant])
  const filtered = type !== '' || participant !== ''

  return (
    <section class="view activity-view" data-testid="view-activity" aria-label="Activity">
      <ViewHeader title="Activity">Everything that happened in the space, newest first (the latest {LIMIT}).</ViewHeader>
      <div class="filters" role="group" aria-label="Filters">
        <label class="inline-field">
          <span>Type</span>
          <select data-testid="activity-type" value={type} onChange={(e) => setType(e.currentTarget.value)}>
            <option value="">All types</option>
            {EVENT_TYPES.map((t) => (
              <option key={t} value={t}>
                {t.replace(/_/g, ' ')}
              </option>
            ))}
          </select>
        </label>
        <label class="inline-field">
          <span>Who</span>
          <select data-testid="activity-participant" value={participant} onChange={(e) => setParticipant(e.currentTarget.value)}>
            <option value="">Everyone</option>
            {participants.map((p) => (
              <option key={p.id} value={p.id}>
                {p.name} ({p.id})
              </option>
            ))}
          </select>
        </label>
        {filtered && (
          <button
            type="button"
            class="button subtle small"
            onClick={() => {
              setType('')
              setParticipant('')
            }}
          >
            Clear filters
          </button>
        )}
      </div>
      {events.length === 0 ? (
        <EmptyState title={filtered ? 'No events match' : 'Nothing has happened yet'}>
          {filtered ? 'Try another type or person, or clear the filters.' : 'Messages, tasks, votes and edits will be listed here as they happen.'}
        </EmptyState>
      ) : (
        <ol class="card events">
          {events.map((e) => {
            const who = space.participants.get(e.participant)
            return (
              <li key={`${e.type}:${e.id}`} class={`event category-${CATEGORY[e.type]}`} data-testid="event" data-type={e.type}>
                <time class="event-time" dateTime={new Date(e.at).toISOString()} title={absoluteTime(e.at)}>
                  {shortTime(e.at)}
                </time>
                <Avatar id={e.participant} name={who?.name ?? e.participant} kind={who?.kind} size="small" />
                <p class="event-text">
                  <strong>{e.participant === me.id ? 'You' : nameOf(space, e.participant)}</strong> {describeEvent(e, space, me.id)}
                </p>
                <span class="event-type">{e.type.replace(/_/g, ' ')}</span>
              </li>
            )
          })}
        </ol>
      )}
    </section>
  )
}
