/** Who this browser joins as, and the spaces it joined before; both kept in localStorage. */

export interface Identity {
  name: string
  id: string
  space: string
  /** The bearer token, on a relay that requires one (its participant is `id`). */
  token?: string
}

const IDENTITY_KEY = 'chorus.identity'
const SPACES_KEY = 'chorus.spaces'
const LAST_NAME_KEY = 'chorus.lastName'
const MAX_KNOWN_SPACES = 20

// localStorage throws in some private modes and when storage is disabled; the app then just forgets.
const read = (key: string): unknown => {
  try {
    const raw = localStorage.getItem(key)
    return raw === null ? undefined : (JSON.parse(raw) as unknown)
  } catch {
    return undefined
  }
}

const write = (key: string, value: unknown): void => {
  try {
    if (value === undefined) localStorage.removeItem(key)
    else localStorage.setItem(key, JSON.stringify(value))
  } catch {
    // Not being remembered is not worth interrupting anyone for.
  }
}

const isString = (v: unknown): v is string => typeof v === 'string' && v.length > 0

export const loadIdentity = (): Identity | undefined => {
  const v = read(IDENTITY_KEY)
  if (typeof v !== 'object' || v === null) return undefined
  const { name, id, space, token } = v as Record<string, unknown>
  if (!(isString(name) && isString(id) && isString(space))) return undefined
  return isString(token) ? { name, id, space, token } : { name, id, space }
}

export const saveIdentity = (identity: Identity): void => {
  write(IDENTITY_KEY, identity)
  write(LAST_NAME_KEY, identity.name)
  write(SPACES_KEY, [identity.space, ...knownSpaces().filter((s) => s !== identity.space)].slice(0, MAX_KNOWN_SPACES))
}

export const forgetIdentity = (): void => write(IDENTITY_KEY, undefined)

/** The name used last, to fill in the join form again after leaving. */
export const lastName = (): string => {
  const v = read(LAST_NAME_KEY)
  return typeof v === 'string' ? v : ''
}

/** Spaces joined before, most recent first. */
export const knownSpaces = (): string[] => {
  const v = read(SPACES_KEY)
  return Array.isArray(v) ? v.filter(isString) : []
}

/** The participant id for a display name: lowercase, spaces become '-', only [a-z0-9._-] kept; '' if none is left. */
export const idFromName = (name: string): string =>
  name
    .trim()
    .toLowerCase()
    .replace(/\s/g, '-')
    .replace(/[^a-z0-9._-]/g, '')

const SPACE_NAME = /^[A-Za-z0-9._-]{1,128}$/

/** Why a space name cannot be used (the relay's rule, without the '#' it keeps for its own documents), or undefined. */
export const spaceNameProblem = (space: string): string | undefined =>
  SPACE_NAME.test(space) ? undefined : 'A space name is 1–128 letters, digits, ".", "_" or "-".'

/** What the relay says about a token (GET /whoami). */
export type TokenCheck = { ok: true; id?: string } | { ok: false; problem: string }

/**
 * Asks the relay who `token` stands for: on an open relay anyone may join under the id made from their name;
 * on a relay with tokens the token decides the id, and it must be a human's. Unreachable: decided later.
 */
export async function checkToken(token: string | undefined): Promise<TokenCheck> {
  let response: Response
  try {
    response = await fetch('/whoami', token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } })
  } catch {
    return { ok: true }
  }
  if (response.status === 401) {
    return { ok: false, problem: token === undefined ? 'This relay asks for an access token.' : 'The relay does not know this access token.' }
  }
  if (!response.ok) return { ok: true }
  const who = (await response.json()) as { open?: boolean; participant?: string; kind?: string }
  if (who.open === true || typeof who.participant !== 'string') return { ok: true }
  if (who.kind !== 'human') return { ok: false, problem: `This token is for ${who.participant}, a participant of kind ${who.kind ?? 'unknown'}; the dashboard joins people.` }
  return { ok: true, id: who.participant }
}
