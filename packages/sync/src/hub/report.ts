import type { ChorusEvent } from '../events/events.ts'
import type { Json } from '../schema.ts'
import type { Space } from '../space/space.ts'
import { HUB_KIND_NAMES } from './words.ts'

const RULE = '='.repeat(50)

const show = (v: Json | undefined): string => (typeof v === 'string' ? v : JSON.stringify(v))

const describe = (e: ChorusEvent, name: (id: string) => string): string => {
  const who = name(e.participant)
  const ref = e.ref ?? ''
  switch (e.type) {
    case 'message':
      return `${who}: ${(e as ChorusEvent<'message'>).data.content}`
    case 'join':
      return `${who}: joined`
    case 'leave':
      return `${who}: left`
    case 'state_update':
      return `${who}: ${(e as ChorusEvent<'state_update'>).data.mode === 'delete' ? 'deleted' : 'updated'} state ${ref}`
    case 'edit':
      return `${who}: edited resource ${ref}`
    case 'lock':
      return `${who}: locked resource ${ref}`
    case 'unlock':
      return `${who}: unlocked resource ${ref}`
    case 'resource_created':
      return `${who}: created resource ${ref}`
    case 'conflict':
      return `${who}: conflicting edit of resource ${ref}`
    case 'vote':
      return `${who}: voted ${(e as ChorusEvent<'vote'>).data.vote} on ${ref}`
    default:
      return `${who}: ${e.type.replace('_', ' ')} ${ref}`.trimEnd()
  }
}

/** The activity report in the collaboration hub's text format (docs/HUBS.md), with `hubId` as its title id. */
export const activityReport = (
  space: Space,
  options: { hubId?: string; recent?: number; /** Leave out events the reader may not see (e.g. others' direct messages). */ visible?: (e: ChorusEvent) => boolean } = {},
): string => {
  const recent = options.recent ?? 10
  const participants = space.participants.list().filter((p) => p.leftAt === undefined)
  const names = new Map(space.participants.list().map((p) => [p.id, p.name]))
  const name = (id: string): string => names.get(id) ?? id
  const lines = [RULE, 'REAL-TIME COLLABORATION HUB - ACTIVITY REPORT', RULE, '', `Hub ID: ${options.hubId ?? space.id}`, `Total Events: ${space.events.count()}`, '']
  lines.push(`ACTIVE PARTICIPANTS: ${participants.length}`)
  for (const p of participants) lines.push(`  - ${p.name} (${HUB_KIND_NAMES[p.kind]}): ${space.presence.status(p.id).status}`)
  lines.push('', 'SHARED STATE:')
  for (const [k, v] of Object.entries(space.state.all())) lines.push(`  - ${k}: ${show(v)}`)
  const resources = space.resources.list()
  lines.push('', `SHARED RESOURCES: ${resources.length}`)
  for (const r of resources) lines.push(`  - ${r.name} (v${r.version}): ${r.lock === undefined ? 'unlocked' : `locked by ${r.lock.holder}`}`)
  lines.push('', `RECENT EVENTS (last ${recent}):`)
  const events = options.visible === undefined ? space.events.history({ limit: recent }) : space.events.history().filter(options.visible).slice(-recent)
  for (const e of events.reverse()) lines.push(`  - [${e.type}] ${describe(e, name)}`)
  lines.push(RULE)
  return lines.join('\n')
}
