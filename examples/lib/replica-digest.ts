/**
 * A comparable picture of one space replica: what it holds (messages of every channel it syncs, shared state,
 * tasks, participants) and the state vector of each document it syncs. Two replicas with the same `hash` hold
 * the same space, down to which updates of which writers they have seen.
 */
import { createHash } from 'node:crypto'
import * as Y from 'yjs'
import type { Space } from '@chorus/sync'

export interface ReplicaDigest {
  /** sha256 (first 16 hex digits) of the content and the state vectors. */
  hash: string
  messages: number
  /** Of which on the `ai-only` channel. */
  aiOnly: number
  stateKeys: number
  tasks: number
  participants: number
  /** Every message's content, sorted: to check that each write arrived. */
  contents: string[]
}

/** Writer (Yjs client id) → how many of its updates the document holds, in client order. */
const stateVector = (doc: Y.Doc): Array<[number, number]> => [...Y.decodeStateVector(Y.encodeStateVector(doc))].sort((a, b) => a[0] - b[0])

/** The digest of `space`, over the documents named in `documents` (e.g. `<space>` and `<space>#ai-only`). */
export function replicaDigest(space: Space, documents: readonly string[]): ReplicaDigest {
  const messages = space.messages.all()
  const state = space.state.all()
  const tasks = space.tasks.list()
  const participants = space.participants.list()
  const vectors = space.documents.filter((d) => documents.includes(d.name)).map((d) => [d.name, stateVector(d.doc)])
  const hash = createHash('sha256').update(JSON.stringify({ messages, state, tasks, participants, vectors })).digest('hex').slice(0, 16)
  return {
    hash,
    messages: messages.length,
    aiOnly: messages.filter((m) => m.channel === 'ai-only').length,
    stateKeys: Object.keys(state).length,
    tasks: tasks.length,
    participants: participants.length,
    contents: messages.map((m) => m.content).sort(),
  }
}
