import { openBrowserSpace, type BrowserSpace, type ConnectionStatus, type Member } from '@chorus/web'
import type { Identity } from './identity.ts'

/** An open space and the member this page acts as. */
export interface Session {
  readonly identity: Identity
  readonly web: BrowserSpace
  readonly me: Member
}

declare global {
  interface Window {
    /** The open space, for the end-to-end tests and for poking at it from the console. */
    chorus?: { web: BrowserSpace; me: Member }
  }
}

/** Opens the space from IndexedDB (works offline) and joins it as a human. */
export async function openSession(identity: Identity, onStatus: (status: ConnectionStatus) => void): Promise<Session> {
  const web = await openBrowserSpace({
    relay: location.origin,
    space: identity.space,
    participant: { id: identity.id, kind: 'human' },
    token: identity.token,
    onStatus,
  })
  try {
    const me = web.space.join({ id: identity.id, name: identity.name, kind: 'human' })
    window.chorus = { web, me }
    return { identity, web, me }
  } catch (e) {
    await web.close()
    throw e
  }
}

export async function closeSession(session: Session): Promise<void> {
  if (window.chorus?.web === session.web) delete window.chorus
  await session.web.close()
}
