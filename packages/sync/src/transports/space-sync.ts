import { Awareness } from 'y-protocols/awareness'
import { Replicator, type ReplicatorOptions } from '../sync/replicator.ts'
import type { Space, SpaceDocument } from '../space/space.ts'
import type { Transport } from './transport.ts'

/** The replicators that share one space's documents over transports. */
export interface SpaceConnection {
  /** One replicator per document that got a transport, keyed by document name. */
  readonly replicators: ReadonlyMap<string, Replicator>
  stop(): Promise<void>
}

/**
 * Shares a space: each of its documents (main, and the restricted channels this replica may hold) is replicated
 * over the transport `transportFor` returns for it; a document without a transport stays local. Presence rides
 * on the main document's replicator.
 */
export const connectSpace = async (
  space: Space,
  transportFor: (doc: SpaceDocument) => Transport | undefined,
  options: ReplicatorOptions = {},
): Promise<SpaceConnection> => {
  const replicators = new Map<string, Replicator>()
  const extraAwareness: Awareness[] = []
  for (const d of space.documents) {
    const transport = transportFor(d)
    if (transport === undefined) continue
    let awareness = space.presence.awareness
    if (d.doc !== space.doc) {
      awareness = new Awareness(d.doc)
      awareness.setLocalState(null)
      extraAwareness.push(awareness)
    }
    const r = new Replicator(d.doc, awareness, options)
    await r.attach(transport)
    replicators.set(d.name, r)
  }
  return {
    replicators,
    stop: async () => {
      for (const r of replicators.values()) await r.stop()
      for (const a of extraAwareness) a.destroy()
    },
  }
}
