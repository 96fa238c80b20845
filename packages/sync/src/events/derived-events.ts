import type * as Y from 'yjs'
import type { ChorusEvent } from './events.ts'
import { entryId } from '../space/log.ts'
import type { Resource, Vote } from '../schema.ts'
import { FIELD_SEP, type StateEntry } from '../space/state.ts'

/**
 * Events read straight from the records that hold them, rather than from the activity log: state updates and
 * votes (one per key, field or voter: a newer write replaces the older, in the document and in the history) and
 * conflicts (from resource revisions). Ids are the Yjs ids of the map entries, like log entry ids.
 */
const itemId = <T>(map: Y.Map<T>, key: string): string => {
  const item = map._map.get(key)
  return item === undefined ? `${key}` : entryId(item.id.client, item.id.clock)
}

const byOrder = (a: ChorusEvent, b: ChorusEvent): number => a.at - b.at || a.id.length - b.id.length || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)

/** The state_update event of one entry of the state map: a whole key, or one merged field (`<key>\u0000<field>`). */
export const stateEvent = (state: Y.Map<unknown>, mapKey: string): ChorusEvent | undefined => {
  const e = state.get(mapKey) as StateEntry | undefined
  if (e === undefined) return undefined
  const sep = mapKey.indexOf(FIELD_SEP)
  const key = sep < 0 ? mapKey : mapKey.slice(0, sep)
  const data: ChorusEvent<'state_update'>['data'] =
    sep >= 0 ? { key, mode: 'merge', value: { [mapKey.slice(sep + 1)]: e.v ?? null } } : e.deleted === true ? { key, mode: 'delete' } : { key, mode: 'replace', value: e.v ?? null }
  return { id: itemId(state, mapKey), type: 'state_update', at: e.at, participant: e.by, ref: key, data }
}

export const stateEvents = (state: Y.Map<unknown>): ChorusEvent[] =>
  [...state.keys()].flatMap((k) => stateEvent(state, k) ?? []).sort(byOrder)

export const voteEvent = (votes: Y.Map<{ vote: Vote; at: number }>, proposal: string, voter: string): ChorusEvent | undefined => {
  const v = votes.get(voter)
  return v === undefined ? undefined : { id: itemId(votes, voter), type: 'vote', at: v.at, participant: voter, ref: proposal, data: { vote: v.vote } }
}

export const voteEvents = (proposals: Y.Map<Y.Map<unknown>>): ChorusEvent[] => {
  const out: ChorusEvent[] = []
  for (const [id, p] of proposals) {
    const votes = p.get('votes') as Y.Map<{ vote: Vote; at: number }>
    for (const voter of votes.keys()) {
      const e = voteEvent(votes, id, voter)
      if (e !== undefined) out.push(e)
    }
  }
  return out.sort(byOrder)
}

export const conflictEvents = (resources: Resource[]): ChorusEvent[] =>
  resources
    .flatMap((r) =>
      r.conflicts.map(
        (c): ChorusEvent => ({
          id: `conflict:${c.other.id}`,
          type: 'conflict',
          at: Math.max(c.kept.at, c.other.at),
          participant: c.other.by,
          ref: r.id,
          data: { version: c.version, kept: c.kept.id, other: c.other.id },
        }),
      ),
    )
    .sort(byOrder)
