import { useMemo, useState } from 'preact/hooks'
import { PRIORITIES, type Task, type TaskStatus } from '@chorus/web'
import { nameOf } from './format.ts'
import { Icon } from './icons.tsx'
import { useActions, useToasts } from './toast.tsx'
import { asPriority, PriorityBadge, PriorityOptions, Time, ViewHeader } from './ui.tsx'
import { useSpace } from './use-space.ts'

const COLUMNS: Array<{ status: TaskStatus; title: string; empty: string }> = [
  { status: 'open', title: 'Open', empty: 'Nothing waiting. New tasks land here until someone claims them.' },
  { status: 'claimed', title: 'Claimed', empty: 'Nobody is working on a task right now.' },
  { status: 'completed', title: 'Completed', empty: 'Finished tasks show up here.' },
]

const urgency = (t: Task): number => PRIORITIES.length - PRIORITIES.indexOf(t.priority)

/** Open and claimed: most urgent first, then oldest. Completed: most recently finished first. */
const order = (status: TaskStatus) =>
  status === 'completed'
    ? (a: Task, b: Task) => (b.completedAt ?? 0) - (a.completedAt ?? 0)
    : (a: Task, b: Task) => urgency(a) - urgency(b) || a.createdAt - b.createdAt

export function TaskBoard() {
  const { space, version } = useSpace()
  const tasks = useMemo(() => space.tasks.list(), [space, version])

  return (
    <section class="view tasks-view" data-testid="view-tasks" aria-label="Tasks">
      <ViewHeader title="Tasks">Claim a task to work on it: the claim is yours alone (the fencing token proves it) until you complete or release it.</ViewHeader>
      <CreateTaskForm />
      <div class="board">
        {COLUMNS.map((col) => {
          const list = tasks.filter((t) => t.status === col.status).sort(order(col.status))
          return (
            <section key={col.status} class={`column column-${col.status}`} data-testid={`column-${col.status}`} aria-label={col.title}>
              <h2 class="column-title">
                {col.title} <span class="column-count">{list.length}</span>
              </h2>
              {list.length === 0 ? (
                <p class="column-empty">{tasks.length === 0 && col.status === 'open' ? 'No tasks yet. Create the first one above.' : col.empty}</p>
              ) : (
                <ul class="cards">
                  {list.map((t) => (
                    <TaskCard key={t.id} task={t} />
                  ))}
                </ul>
              )}
            </section>
          )
        })}
      </div>
    </section>
  )
}

function CreateTaskForm() {
  const { me } = useSpace()
  const { fail } = useToasts()
  const [title, setTitle] = useState('')
  const [description, setDescription] = useState('')
  const [priority, setPriority] = useState('normal')
  const [requiresHuman, setRequiresHuman] = useState(false)

  const create = (e: Event): void => {
    e.preventDefault()
    try {
      me.createTask({ title, description, priority: asPriority(priority), requiresHuman })
      setTitle('')
      setDescription('')
      setPriority('normal')
      setRequiresHuman(false)
    } catch (err) {
      fail(err)
    }
  }

  return (
    <form class="card create-form task-form" onSubmit={create} aria-label="New task">
      <div class="form-row">
        <label class="field grow">
          <span class="field-label">New task</span>
          <input data-testid="task-title" value={title} maxLength={500} placeholder="What needs doing?" onInput={(e) => setTitle(e.currentTarget.value)} />
        </label>
        <label class="field">
          <span class="field-label">Priority</span>
          <select data-testid="task-priority" value={priority} onChange={(e) => setPriority(e.currentTarget.value)}>
            <PriorityOptions />
          </select>
        </label>
        <label class="checkbox">
          <input type="checkbox" data-testid="task-requires-human" checked={requiresHuman} onChange={(e) => setRequiresHuman(e.currentTarget.checked)} />
          Needs a human
        </label>
        <button type="submit" class="button primary" data-testid="task-create" disabled={title.trim().length === 0}>
          <Icon name="plus" size={16} />
          Create task
        </button>
      </div>
      <label class="field">
        <span class="visually-hidden">Description</span>
        <textarea
          data-testid="task-description"
          rows={2}
          value={description}
          placeholder="Details (optional)"
          onInput={(e) => setDescription(e.currentTarget.value)}
        />
      </label>
    </form>
  )
}

function TaskCard({ task: t }: { task: Task }) {
  const { space, me, web } = useSpace()
  const { pending, run } = useActions()
  const busy = pending.size > 0
  const mine = t.claim?.holder === me.id

  return (
    <li
      class={`card task priority-${t.priority}`}
      data-testid="task"
      data-id={t.id}
      data-status={t.status}
      data-holder={t.claim?.holder}
      data-token={t.claim?.token}
      data-completed-by={t.completedBy}
    >
      <div class="task-top">
        <h3 class="task-title">{t.title}</h3>
        <PriorityBadge priority={t.priority} />
      </div>
      {t.requiresHuman && (
        <span class="badge needs-human" data-testid="requires-human">
          Needs a human
        </span>
      )}
      {t.description.length > 0 && <p class="task-description">{t.description}</p>}
      <p class="task-meta">
        Created by {nameOf(space, t.createdBy)} · <Time at={t.createdAt} />
      </p>
      {t.status === 'claimed' && t.claim !== undefined && (
        <p class="task-claim">
          Claimed by{' '}
          <strong data-testid="task-holder">
            {nameOf(space, t.claim.holder)}
            {mine && ' (you)'}
          </strong>{' '}
          <span class="token" title="Fencing token: only writes under the newest token count">
            token <span data-testid="task-token">{t.claim.token}</span>
          </span>
        </p>
      )}
      {t.status === 'completed' && t.completedBy !== undefined && (
        <p class="task-done">
          Completed by{' '}
          <strong data-testid="task-completer">
            {nameOf(space, t.completedBy)}
            {t.completedBy === me.id && ' (you)'}
          </strong>
          {t.completedAt !== undefined && (
            <>
              {' '}
              · <Time at={t.completedAt} />
            </>
          )}
        </p>
      )}
      <div class="card-actions">
        {t.status === 'open' && (
          <button type="button" class="button" data-testid="task-claim" disabled={busy} onClick={() => run('claim', () => me.claim(t.id))}>
            {busy ? 'Claiming…' : 'Claim'}
          </button>
        )}
        {t.status === 'claimed' && mine && (
          <>
            <button type="button" class="button primary" data-testid="task-complete" disabled={busy} onClick={() => run('complete', () => me.complete(t.id))}>
              Complete
            </button>
            <button
              type="button"
              class="button subtle"
              data-testid="task-release"
              disabled={busy}
              onClick={() => run('release', () => web.space.tasks.release(t.id, me.id))}
            >
              Release
            </button>
          </>
        )}
      </div>
    </li>
  )
}
