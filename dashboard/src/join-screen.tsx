import { useState } from 'preact/hooks'
import { BrandMark } from './icons.tsx'
import { checkToken, idFromName, knownSpaces, lastName, spaceNameProblem, type Identity } from './identity.ts'

interface Props {
  /** The space to offer: from the address, else `default`. */
  space: string
  /** Why the last attempt to open a space failed. */
  error?: string | undefined
  onJoin: (identity: Identity) => void
}

export function JoinScreen({ space: initialSpace, error: openError, onJoin }: Props) {
  const [name, setName] = useState(lastName)
  const [space, setSpace] = useState(initialSpace)
  const [token, setToken] = useState('')
  const [checking, setChecking] = useState(false)
  const [error, setError] = useState<string | undefined>(undefined)
  const spaces = knownSpaces()
  const id = idFromName(name)

  const submit = (e: Event): void => {
    e.preventDefault()
    const trimmed = name.trim()
    const spaceName = space.trim()
    const bearer = token.trim() === '' ? undefined : token.trim()
    if (trimmed.length === 0) return setError('Please enter your name.')
    if (id.length === 0 && bearer === undefined) return setError('Your name needs at least one letter or digit (a-z, 0-9) to make your participant id.')
    const problem = spaceNameProblem(spaceName)
    if (problem !== undefined) return setError(problem)
    setError(undefined)
    setChecking(true)
    void checkToken(bearer).then((check) => {
      setChecking(false)
      if (!check.ok) return setError(check.problem)
      onJoin({ name: trimmed, id: check.id ?? id, space: spaceName, token: bearer })
    })
  }

  const shown = error ?? openError
  return (
    <main class="join" data-testid="join">
      <form class="join-card" onSubmit={submit} noValidate>
        <div class="brand brand-large">
          <BrandMark size={36} />
          <span>Chorus</span>
        </div>
        <p class="join-intro">People and AI agents, working in one shared space: chat, tasks, proposals and shared state, in real time and offline.</p>
        <label class="field">
          <span class="field-label">Your name</span>
          <input
            data-testid="join-name"
            name="name"
            autoComplete="name"
            autoFocus
            required
            maxLength={200}
            value={name}
            onInput={(e) => setName(e.currentTarget.value)}
            placeholder="Ada Lovelace"
          />
          <span class="field-hint">{id.length > 0 ? <>You will be <code>{id}</code> in the space.</> : 'Your participant id is made from your name.'}</span>
        </label>
        <label class="field">
          <span class="field-label">Space</span>
          <input
            data-testid="join-space"
            name="space"
            list="known-spaces"
            autoComplete="off"
            required
            maxLength={128}
            value={space}
            onInput={(e) => setSpace(e.currentTarget.value)}
          />
          <datalist id="known-spaces">
            {spaces.map((s) => (
              <option key={s} value={s} />
            ))}
          </datalist>
          <span class="field-hint">Everyone who joins the same space works together.</span>
        </label>
        <details class="field" open={token !== ''}>
          <summary class="field-label">Access token</summary>
          <input
            data-testid="join-token"
            name="token"
            type="password"
            autoComplete="off"
            value={token}
            onInput={(e) => setToken(e.currentTarget.value)}
          />
          <span class="field-hint">Only if this relay asks for one; it then decides your participant id.</span>
        </details>
        {shown !== undefined && (
          <p class="form-error" data-testid="join-error" role="alert">
            {shown}
          </p>
        )}
        <button type="submit" class="button primary wide" data-testid="join-submit" disabled={checking}>
          {checking ? 'Checking…' : 'Join space'}
        </button>
      </form>
    </main>
  )
}
