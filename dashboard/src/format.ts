import type { ChorusEvent, EventData, EventType, Json, Space } from '@chorus/web'

/** "just now", "42 s ago", "5 min ago", "3 h ago", "2 d ago", then the date. */
export const relativeTime = (at: number, now = Date.now()): string => {
  const s = Math.floor((now - at) / 1000)
  if (s < 10) return 'just now'
  if (s < 60) return `${s} s ago`
  const m = Math.floor(s / 60)
  if (m < 60) return `${m} min ago`
  const h = Math.floor(m / 60)
  if (h < 24) return `${h} h ago`
  const d = Math.floor(h / 24)
  if (d < 7) return `${d} d ago`
  return new Date(at).toLocaleDateString()
}

export const absoluteTime = (at: number): string => new Date(at).toLocaleString()

/** Time of day for lists of recent things, with the date when it is not today. */
export const shortTime = (at: number, now = Date.now()): string => {
  const d = new Date(at)
  const time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' })
  return d.toDateString() === new Date(now).toDateString() ? time : `${d.toLocaleDateString([], { month: 'short', day: 'numeric' })} ${time}`
}

export const nameOf = (space: Space, id: string): string => space.participants.get(id)?.name ?? id

/** One line for a JSON value, cut to `max` characters. */
export const jsonLine = (value: Json | undefined, max = 80): string => clip(value === undefined ? '' : JSON.stringify(value), max)

export const clip = (text: string, max: number): string => {
  const line = text.replace(/\s+/g, ' ').trim()
  return line.length > max ? `${line.slice(0, max - 1)}…` : line
}

/** Pretty JSON for display; text shown as it is. */
export const prettyJson = (value: Json): string => (typeof value === 'string' ? value : JSON.stringify(value, null, 2))

const dataOf = <T extends EventType>(event: ChorusEvent, _type: T): EventData[T] => event.data as EventData[T]

/** What an event says happened, after the name of whoever did it: "claimed “Fix the build” (token 3)". */
export function describeEvent(event: ChorusEvent, space: Space, me: string): string {
  const quoted = (s: string): string => `“${clip(s, 60)}”`
  const task = (): string => quoted(space.tasks.get(event.ref ?? '')?.title ?? event.ref ?? 'a task')
  const proposal = (): string => quoted(space.proposals.get(event.ref ?? '')?.title ?? event.ref ?? 'a proposal')
  const resource = (): string => quoted(space.resources.get(event.ref ?? '')?.name ?? event.ref ?? 'a resource')
  switch (event.type) {
    case 'message': {
      const m = dataOf(event, 'message')
      if (m.to === undefined) return `said in #${m.channel}: ${quoted(m.content)}`
      // Someone else's direct messages are theirs; say that they talked, not what they said.
      if (m.to !== me && m.from !== me) return `sent a direct message to ${nameOf(space, m.to)}`
      return `said to ${m.to === me ? 'you' : nameOf(space, m.to)}: ${quoted(m.content)}`
    }
    case 'join':
      return `joined as ${dataOf(event, 'join').kind}`
    case 'leave':
      return 'left the space'
    case 'state_update': {
      const d = dataOf(event, 'state_update')
      if (d.mode === 'delete') return `deleted ${d.key}`
      return `${d.mode === 'merge' ? 'updated' : 'set'} ${d.key} to ${jsonLine(d.value, 60)}`
    }
    case 'task_created': {
      const d = dataOf(event, 'task_created')
      return `created task ${quoted(d.title)}${d.priority === 'normal' ? '' : ` (${d.priority})`}${d.requiresHuman ? ', needs a human' : ''}`
    }
    case 'task_claimed':
      return `claimed ${task()} (token ${dataOf(event, 'task_claimed').token})`
    case 'task_released':
      return `released ${task()}`
    case 'task_completed':
      return `completed ${task()}`
    case 'proposal_created':
      return `proposed ${quoted(dataOf(event, 'proposal_created').title)}`
    case 'proposal_closed':
      return `closed the vote on ${proposal()}`
    case 'vote': {
      const v = dataOf(event, 'vote').vote
      return v === 'abstain' ? `abstained on ${proposal()}` : `voted ${v} ${proposal()}`
    }
    case 'resource_created':
      return `created resource ${quoted(dataOf(event, 'resource_created').name)}`
    case 'edit':
      return `edited ${resource()} (now version ${dataOf(event, 'edit').version})`
    case 'lock':
      return `locked ${resource()}`
    case 'unlock':
      return `unlocked ${resource()}`
    case 'conflict':
      return `made a conflicting edit of ${resource()} at version ${dataOf(event, 'conflict').version}`
    case 'lease_lost':
      return `lost the lease on ${dataOf(event, 'lease_lost').key} (${dataOf(event, 'lease_lost').reason})`
  }
}
