import { useCallback, useEffect, useRef, useState } from 'preact/hooks'
import type { ConnectionStatus } from '@chorus/web'
import { errorMessage } from './errors.ts'
import { forgetIdentity, loadIdentity, saveIdentity, spaceNameProblem, type Identity } from './identity.ts'
import { JoinScreen } from './join-screen.tsx'
import { currentRoute, goTo, type Route, type View } from './route.ts'
import { closeSession, openSession, type Session } from './session.ts'
import { SpaceShell } from './space-shell.tsx'
import { ToastProvider, useToasts } from './toast.tsx'

type Phase =
  | { kind: 'join'; error?: string }
  | { kind: 'opening'; identity: Identity }
  | { kind: 'open'; session: Session }

const DEFAULT_SPACE = 'default'

/** The saved identity, moved to the space the address names (a shared link opens that space as the same person). */
const startingIdentity = (route: Route): Identity | undefined => {
  const saved = loadIdentity()
  if (saved === undefined) return undefined
  if (route.space === undefined || route.space === saved.space || spaceNameProblem(route.space) !== undefined) return saved
  return { ...saved, space: route.space }
}

export function App() {
  return (
    <ToastProvider>
      <Chorus />
    </ToastProvider>
  )
}

function Chorus() {
  const { fail } = useToasts()
  const [route, setRoute] = useState<Route>(currentRoute)
  const [phase, setPhase] = useState<Phase>(() => {
    const identity = startingIdentity(route)
    return identity === undefined ? { kind: 'join' } : { kind: 'opening', identity }
  })
  const [status, setStatus] = useState<ConnectionStatus>('connecting')
  // Each open gets a number; a slower earlier one that finishes late is closed instead of shown.
  const attempt = useRef(0)
  const current = useRef<Session | undefined>(undefined)

  const navigate = useCallback((space: string, view: View, replace = false) => {
    goTo(space, view, replace)
    setRoute(currentRoute())
  }, [])

  const open = useCallback(
    (identity: Identity) => {
      const n = ++attempt.current
      const previous = current.current
      current.current = undefined
      setPhase({ kind: 'opening', identity })
      setStatus('connecting')
      void (async () => {
        try {
          if (previous !== undefined) await closeSession(previous)
          const session = await openSession(identity, (s) => {
            if (attempt.current === n) setStatus(s)
          })
          if (attempt.current !== n) return await closeSession(session)
          current.current = session
          saveIdentity(identity)
          setStatus(session.web.status)
          setPhase({ kind: 'open', session })
          navigate(identity.space, currentRoute().view, true)
        } catch (e) {
          if (attempt.current === n) setPhase({ kind: 'join', error: `Could not open ${identity.space}: ${errorMessage(e)}` })
        }
      })()
    },
    [navigate],
  )

  const showView = useCallback(
    (view: View) => {
      if (current.current !== undefined) navigate(current.current.identity.space, view)
    },
    [navigate],
  )

  const leave = useCallback(() => {
    const session = current.current
    attempt.current++
    current.current = undefined
    forgetIdentity()
    void (async () => {
      try {
        if (session !== undefined) await closeSession(session)
      } catch (e) {
        fail(e)
      }
      setPhase({ kind: 'join' })
    })()
  }, [fail])

  useEffect(() => {
    if (phase.kind === 'opening') open(phase.identity)
    const onHash = (): void => setRoute(currentRoute())
    addEventListener('hashchange', onHash)
    return () => removeEventListener('hashchange', onHash)
    // Only on the first render: later opens are started by the actions that need them.
  }, [])

  // The address names another space: open it as the same person (a link someone shared).
  useEffect(() => {
    if (phase.kind !== 'open') return
    const { identity } = phase.session
    if (route.space === identity.space) return
    if (route.space === undefined || spaceNameProblem(route.space) !== undefined) navigate(identity.space, route.view, true)
    else open({ ...identity, space: route.space })
  }, [route, phase, navigate, open])

  switch (phase.kind) {
    case 'join':
      return (
        <JoinScreen
          key={route.space ?? DEFAULT_SPACE}
          space={route.space ?? DEFAULT_SPACE}
          error={phase.error}
          onJoin={open}
        />
      )
    case 'opening':
      return (
        <main class="opening" data-testid="opening" aria-busy="true">
          <div class="spinner" aria-hidden="true" />
          <p>
            Opening <strong>{phase.identity.space}</strong>…
          </p>
        </main>
      )
    case 'open':
      return <SpaceShell key={phase.session.identity.space} session={phase.session} status={status} view={route.view} onView={showView} onLeave={leave} />
  }
}
