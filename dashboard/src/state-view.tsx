import { useMemo, useRef, useState } from 'preact/hooks'
import type { Json } from '@chorus/web'
import { nameOf, prettyJson } from './format.ts'
import { useToasts } from './toast.tsx'
import { EmptyState, Time, ViewHeader } from './ui.tsx'
import { useSpace } from './use-space.ts'

/** The JSON in `text`, or why it is not JSON. */
const parseJson = (text: string): { value: Json } | { error: string } => {
  try {
    return { value: JSON.parse(text) as Json }
  } catch (e) {
    return { error: `Not valid JSON: ${e instanceof Error ? e.message : String(e)}. Text needs quotes, e.g. "hello".` }
  }
}

export function StateView() {
  const { space, me, version } = useSpace()
  const { fail } = useToasts()
  const entries = useMemo(() => Object.entries(space.state.all()).map(([key, value]) => ({ key, value, author: space.state.author(key) })), [space, version])
  const [key, setKey] = useState('')
  const [text, setText] = useState('')
  const [error, setError] = useState<string | undefined>(undefined)
  const valueRef = useRef<HTMLTextAreaElement>(null)

  const edit = (k: string, value: Json): void => {
    setKey(k)
    setText(JSON.stringify(value, null, 2))
    setError(undefined)
    valueRef.current?.focus()
  }

  const save = (e: Event): void => {
    e.preventDefault()
    const parsed = parseJson(text)
    if ('error' in parsed) return setError(parsed.error)
    setError(undefined)
    try {
      me.set(key.trim(), parsed.value)
    } catch (err) {
      fail(err)
    }
  }

  const remove = (k: string): void => {
    try {
      space.state.delete(k, { by: me.id })
    } catch (err) {
      fail(err)
    }
  }

  return (
    <section class="view state-view" data-testid="view-state" aria-label="Shared state">
      <ViewHeader title="Shared state">Keys and JSON values everyone in the space reads and writes. The last write to a key wins.</ViewHeader>
      <div class="split">
        <div class="split-main">
          {entries.length === 0 ? (
            <EmptyState title="No shared state yet">Set a key on the right, for example build → "green". Agents often keep their status here.</EmptyState>
          ) : (
            <div class="card table-card">
              <table class="table state-table">
                <thead>
                  <tr>
                    <th scope="col">Key</th>
                    <th scope="col">Value</th>
                    <th scope="col">Last written by</th>
                    <th scope="col">
                      <span class="visually-hidden">Actions</span>
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {entries.map(({ key: k, value, author }) => (
                    <tr key={k} data-testid="state-row" data-key={k} class={`clickable${k === key ? ' selected' : ''}`} onClick={() => edit(k, value)}>
                      <td class="state-key">
                        <code>{k}</code>
                      </td>
                      <td>
                        <pre class="json">{prettyJson(value)}</pre>
                      </td>
                      <td class="muted">
                        {author === undefined ? (
                          '—'
                        ) : (
                          <>
                            {author.by === me.id ? 'you' : nameOf(space, author.by)}
                            <br />
                            <Time at={author.at} />
                          </>
                        )}
                      </td>
                      <td class="row-actions">
                        <button type="button" class="button small subtle" data-testid="state-edit" onClick={(e) => {
                            e.stopPropagation()
                            edit(k, value)
                          }}>
                          Edit
                        </button>
                        <button type="button" class="button small danger-subtle" data-testid="state-delete" onClick={(e) => {
                            e.stopPropagation()
                            remove(k)
                          }}>
                          Delete
                        </button>
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </div>
        <form class="card split-side state-form" onSubmit={save} aria-label="Set a value">
          <h2 class="card-title">Set a value</h2>
          <label class="field">
            <span class="field-label">Key</span>
            <input data-testid="state-key" value={key} maxLength={256} placeholder="build.status" onInput={(e) => setKey(e.currentTarget.value)} />
          </label>
          <label class="field">
            <span class="field-label">Value (JSON)</span>
            <textarea
              ref={valueRef}
              data-testid="state-value"
              class="mono"
              rows={8}
              value={text}
              placeholder={'{ "ok": true }'}
              aria-invalid={error !== undefined}
              aria-describedby={error !== undefined ? 'state-error' : undefined}
              onInput={(e) => {
                setText(e.currentTarget.value)
                setError(undefined)
              }}
            />
          </label>
          {error !== undefined && (
            <p class="form-error" id="state-error" data-testid="state-error" role="alert">
              {error}
            </p>
          )}
          <button type="submit" class="button primary" data-testid="state-set" disabled={key.trim().length === 0}>
            Set
          </button>
        </form>
      </div>
    </section>
  )
}
