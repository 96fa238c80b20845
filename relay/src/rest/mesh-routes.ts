/**
 * Memberships for libp2p peers: `POST /p2p/membership` (or `/spaces/<space>/p2p/membership`) with
 * `{peer_id, entity_id}` returns the relay-signed credentials and document keys of the space's main document and
 * of the restricted document the participant's kind may read, plus the relay's peer id and multiaddrs (to
 * bootstrap from). The caller must act as `entity_id`; its kind is the token's, or in open mode the kind the
 * participant registered with in the space (it must have joined).
 */
import { z } from 'zod'
import { ChorusError, idSchema } from '@chorus/sync'
import type { Membership } from '@chorus/p2p'
import { documentsOf, type Access } from '../access.ts'
import type { RelayMesh } from '../mesh.ts'
import type { SpaceRoutes } from './space-routes.ts'

export interface MeshRoutesContext {
  mesh: () => RelayMesh | undefined
  access: Access
  /** How long a credential is valid (ms), or null for no expiry. */
  credentialMs: number | null
  now: () => number
}

const membershipRequest = z.object({ peer_id: z.string().min(1).max(128), entity_id: idSchema })

export function addMeshRoutes(routes: SpaceRoutes, context: MeshRoutesContext): void {
  routes.post('/p2p/membership', membershipRequest, async ({ caller, space, body }) => {
    const mesh = context.mesh()
    if (mesh === undefined) throw new ChorusError('not_found', 'this relay does not run a libp2p node')
    const kind = await context.access.kindOf(caller, space, body.entity_id)
    if (kind === undefined) throw new ChorusError('not_found', `${body.entity_id} has not joined ${space}; join, then ask for a membership`)
    const expiresAt = context.credentialMs === null ? null : context.now() + context.credentialMs
    const memberships: Membership[] = documentsOf(space, kind).map((doc) => mesh.membership(doc, body.peer_id, body.entity_id, kind, expiresAt))
    return { memberships, relay: { peer_id: mesh.peer.peerId, multiaddrs: mesh.multiaddrs } }
  })
}
