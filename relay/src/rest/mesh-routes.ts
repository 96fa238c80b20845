/**
 * Memberships for libp2p peers: `POST /p2p/membership` (or `/spaces/<space>/p2p/membership`) with
 * `{peer_id, entity_id}` returns the relay-signed credentials and document keys of the space's main document and
 * of the restricted document the participant's kind may read, plus the relay's peer id and multiaddrs (to
 * bootstrap from). The caller must act as `entity_id`; its kind is the token's, or in open mode the kind the
 * participant registered with in the space (it must have joined).
 */
import type { IncomingMessage } from 'node:http'
import { z } from 'zod'
import { ChorusError, idSchema, restrictedChannelOf, type ParticipantKind } from '@chorus/sync'
import type { Membership } from '@chorus/p2p'
import { checkActingAs, checkSpaceAccess, type Caller } from '../auth.ts'
import type { RelayMesh } from '../mesh.ts'
import type { Router } from './http.ts'
import { parseBody, spaceParam } from './params.ts'

export interface MeshRoutesContext {
  mesh: () => RelayMesh | undefined
  caller: (req: IncomingMessage) => Caller
  defaultSpace: string
  /** The kind `participant` registered with in `space`, or undefined if it has not joined. */
  registeredKind: (space: string, participant: string) => Promise<ParticipantKind | undefined>
  /** How long a credential is valid (ms), or null for no expiry. */
  credentialMs: number | null
  now: () => number
}

const membershipRequest = z.object({ peer_id: z.string().min(1).max(128), entity_id: idSchema })

export function addMeshRoutes(router: Router, context: MeshRoutesContext): void {
  for (const prefix of ['', '/spaces/{space}']) {
    router.post(`${prefix}/p2p/membership`, async (ctx) => {
      const mesh = context.mesh()
      if (mesh === undefined) throw new ChorusError('not_found', 'this relay does not run a libp2p node')
      const caller = context.caller(ctx.req)
      const space = spaceParam(ctx, context.defaultSpace)
      checkSpaceAccess(caller, space)
      const body = parseBody(membershipRequest, await ctx.body())
      checkActingAs(caller, body.entity_id)
      const kind: ParticipantKind | undefined = caller.open ? await context.registeredKind(space, body.entity_id) : caller.identity.kind
      if (kind === undefined) throw new ChorusError('not_found', `${body.entity_id} has not joined ${space}; join, then ask for a membership`)
      const expiresAt = context.credentialMs === null ? null : context.now() + context.credentialMs
      const channel = restrictedChannelOf(kind)
      const docs = channel === undefined ? [space] : [space, `${space}#${channel}`]
      const memberships: Membership[] = docs.map((doc) => mesh.membership(doc, body.peer_id, body.entity_id, kind, expiresAt))
      return { memberships, relay: { peer_id: mesh.peer.peerId, multiaddrs: mesh.multiaddrs } }
    })
  }
}
