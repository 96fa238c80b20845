/** The hash route, `#/<space>/<view>`: which space is open and which view of it is shown. */

export const VIEWS = ['chat', 'tasks', 'proposals', 'people', 'state', 'resources', 'activity'] as const
export type View = (typeof VIEWS)[number]

export const VIEW_LABELS: Record<View, string> = {
  chat: 'Chat',
  tasks: 'Tasks',
  proposals: 'Proposals',
  people: 'People',
  state: 'Shared state',
  resources: 'Resources',
  activity: 'Activity',
}

export interface Route {
  space?: string
  view: View
}

const isView = (v: string): v is View => (VIEWS as readonly string[]).includes(v)

const decode = (s: string): string => {
  try {
    return decodeURIComponent(s)
  } catch {
    return s
  }
}

export const parseRoute = (hash: string): Route => {
  const [space, view] = hash.replace(/^#\/?/, '').split('/')
  const route: Route = { view: view !== undefined && isView(view) ? view : 'chat' }
  if (space !== undefined && space.length > 0) route.space = decode(space)
  return route
}

export const routeHash = (space: string, view: View): string => `#/${encodeURIComponent(space)}/${view}`

export const currentRoute = (): Route => parseRoute(location.hash)

/** Shows a route; `replace` does it without adding a history entry (for corrections, not navigation). */
export const goTo = (space: string, view: View, replace = false): void => {
  const hash = routeHash(space, view)
  if (location.hash === hash) return
  if (replace) history.replaceState(history.state, '', hash)
  else location.hash = hash
}
