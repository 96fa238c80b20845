import { useMemo, useState } from 'preact/hooks'
import type { Json, Resource } from '@chorus/web'
import { nameOf, prettyJson } from './format.ts'
import { Icon } from './icons.tsx'
import { useActions, useToasts } from './toast.tsx'
import { EmptyState, Time, ViewHeader } from './ui.tsx'
import { useSpace } from './use-space.ts'

/** New resources: text that parses as JSON is stored as JSON, anything else as text. */
const dataFromText = (text: string): Json => {
  try {
    return JSON.parse(text) as Json
  } catch {
    return text
  }
}

/** An edit keeps the resource's kind: a text resource stays text; a JSON one must still be JSON. */
const editedData = (resource: Resource, text: string): { data: Json } | { error: string } => {
  if (resource.kind === 'text') return { data: text }
  try {
    return { data: JSON.parse(text) as Json }
  } catch (e) {
    return { error: `This resource holds JSON: ${e instanceof Error ? e.message : String(e)}` }
  }
}

export function ResourcesView() {
  const { space, version } = useSpace()
  const resources = useMemo(() => space.resources.list(), [space, version])

  return (
    <section class="view resources-view" data-testid="view-resources" aria-label="Resources">
      <ViewHeader title="Resources">
        Shared documents with a version history. Lock one while you change it, or edit against the version you read: a stale edit is refused.
      </ViewHeader>
      <CreateResourceForm />
      {resources.length === 0 ? (
        <EmptyState title="No resources yet">Create one above: a note, a config, a plan in JSON. Everyone sees each new version.</EmptyState>
      ) : (
        <ul class="resource-list">
          {resources.map((r) => (
            <ResourceCard key={r.id} resource={r} />
          ))}
        </ul>
      )}
    </section>
  )
}

function CreateResourceForm() {
  const { me } = useSpace()
  const { fail } = useToasts()
  const [name, setName] = useState('')
  const [text, setText] = useState('')

  const create = (e: Event): void => {
    e.preventDefault()
    try {
      me.createResource(name.trim(), dataFromText(text))
      setName('')
      setText('')
    } catch (err) {
      fail(err)
    }
  }

  return (
    <form class="card create-form" onSubmit={create} aria-label="New resource">
      <div class="form-row">
        <label class="field grow">
          <span class="field-label">New resource</span>
          <input data-testid="resource-name" value={name} maxLength={200} placeholder="release-notes.md" onInput={(e) => setName(e.currentTarget.value)} />
        </label>
        <button type="submit" class="button primary" data-testid="resource-create" disabled={name.trim().length === 0}>
          <Icon name="plus" size={16} />
          Create resource
        </button>
      </div>
      <label class="field">
        <span class="visually-hidden">Content</span>
        <textarea
          data-testid="resource-data"
          class="mono"
          rows={3}
          value={text}
          placeholder={'Text, or JSON such as { "steps": [] }'}
          onInput={(e) => setText(e.currentTarget.value)}
        />
      </label>
    </form>
  )
}

function ResourceCard({ resource: r }: { resource: Resource }) {
  const { space, me } = useSpace()
  const { fail } = useToasts()
  const { pending, run } = useActions()
  // The version the edit started from: saving against it refuses to overwrite a newer one.
  const [editing, setEditing] = useState<{ text: string; base: number } | undefined>(undefined)
  const [error, setError] = useState<string | undefined>(undefined)
  const busy = pending.size > 0
  const lockedByOther = r.lock !== undefined && r.lock.holder !== me.id
  const mineLock = r.lock?.holder === me.id

  const save = (e: Event): void => {
    e.preventDefault()
    if (editing === undefined) return
    const parsed = editedData(r, editing.text)
    if ('error' in parsed) return setError(parsed.error)
    try {
      me.edit(r.id, parsed.data, { expectedVersion: editing.base })
      setEditing(undefined)
      setError(undefined)
    } catch (err) {
      fail(err)
    }
  }

  return (
    <li class="card resource" data-testid="resource" data-id={r.id}>
      <div class="resource-top">
        <h3 class="resource-name">{r.name}</h3>
        <span class="badge kind-data">{r.kind}</span>
        <span class="badge version" data-testid="resource-version">
          v{r.version}
        </span>
        <span class="topbar-spacer" />
        {r.lock === undefined ? (
          <span class="lock-state unlocked" data-testid="resource-lock-state">
            unlocked
          </span>
        ) : (
          <span class="lock-state locked" data-testid="resource-lock-state">
            <Icon name="lock" size={14} /> locked by {mineLock ? 'you' : nameOf(space, r.lock.holder)}
          </span>
        )}
      </div>
      <p class="resource-meta">
        Owner <strong>{r.owner === me.id ? 'you' : nameOf(space, r.owner)}</strong> · created <Time at={r.createdAt} /> ·{' '}
        <span class={r.conflicts.length > 0 ? 'conflicts has-conflicts' : 'conflicts'} data-testid="resource-conflicts">
          {r.conflicts.length} {r.conflicts.length === 1 ? 'conflict' : 'conflicts'}
        </span>
      </p>
      {editing === undefined ? (
        <pre class="resource-data">{prettyJson(r.data)}</pre>
      ) : (
        <form class="resource-editor" onSubmit={save}>
          <label class="field">
            <span class="visually-hidden">Content of {r.name}</span>
            <textarea
              data-testid="resource-edit-data"
              class="mono"
              rows={6}
              value={editing.text}
              onInput={(e) => {
                setEditing({ ...editing, text: e.currentTarget.value })
                setError(undefined)
              }}
            />
          </label>
          {error !== undefined && (
            <p class="form-error" data-testid="resource-error" role="alert">
              {error}
            </p>
          )}
          {editing.base !== r.version && (
            <p class="form-warning">Someone saved version {r.version} since you started; saving now will be refused. Cancel and edit again to start from it.</p>
          )}
          <div class="card-actions">
            <button type="submit" class="button primary" data-testid="resource-save">
              Save version {editing.base + 1}
            </button>
            <button type="button" class="button subtle" data-testid="resource-cancel" onClick={() => {
                setEditing(undefined)
                setError(undefined)
              }}>
              Cancel
            </button>
          </div>
        </form>
      )}
      {editing === undefined && (
        <div class="card-actions">
          {r.lock === undefined && (
            <button type="button" class="button" data-testid="resource-lock" disabled={busy} onClick={() => run('lock', () => me.lock(r.id))}>
              <Icon name="lock" size={14} />
              Lock
            </button>
          )}
          {mineLock && (
            <button type="button" class="button" data-testid="resource-unlock" disabled={busy} onClick={() => run('unlock', () => me.unlock(r.id))}>
              <Icon name="unlock" size={14} />
              Unlock
            </button>
          )}
          <button
            type="button"
            class="button subtle"
            data-testid="resource-edit"
            disabled={lockedByOther}
            title={lockedByOther ? 'Locked by someone else' : undefined}
            onClick={() => setEditing({ text: prettyJson(r.data), base: r.version })}
          >
            <Icon name="edit" size={14} />
            Edit
          </button>
        </div>
      )}
    </li>
  )
}
