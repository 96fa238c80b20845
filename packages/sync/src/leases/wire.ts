/**
 * The lease protocol between a replica and the relay (docs/PROTOCOL.md): JSON text frames on the relay's
 * `/leases` WebSocket, a path the stock y-websocket client never opens. Each request carries an `id` that its
 * reply repeats; the relay also pushes `lease_lost` for grants the connection acquired or renewed (L6).
 */
import { z } from 'zod'
import type { ChorusErrorCode } from '../errors.ts'
import type { LeaseLossReason } from './lease-client.ts'
import { LIMITS, type LeaseGrant } from '../schema.ts'
import { idSchema } from '../validate.ts'

/** WebSocket path of the lease protocol on a relay. */
export const LEASE_PATH = '/leases'
/** Largest lease frame either side sends or accepts (a grant is a few hundred bytes). */
export const MAX_LEASE_FRAME_BYTES = 16 * 1024
/** Longest lease key: `task:<id>`, `resource:<id>` or another name of the caller's choosing. */
export const MAX_LEASE_KEY_LENGTH = 256

export const leaseKeySchema = z
  .string({ error: 'key must be a string' })
  .min(1, 'key must not be empty')
  .max(MAX_LEASE_KEY_LENGTH, `key must be at most ${MAX_LEASE_KEY_LENGTH} characters`)
  .refine((s) => !/[\u0000-\u001f]/.test(s), 'key must not contain control characters')

const spaceSchema = z.string({ error: 'space must be a string' }).min(1, 'space must not be empty').max(LIMITS.idLength)
const durationSchema = z.number({ error: 'duration must be a number of milliseconds' })

export const grantSchema = z.object(
  {
    space: spaceSchema,
    key: leaseKeySchema,
    holder: idSchema,
    token: z.number({ error: 'token must be a number' }).int('token must be an integer').positive('token must be positive'),
    duration: durationSchema,
    signature: z.string({ error: 'signature must be a string' }).max(200),
  },
  { error: 'grant must be an object' },
)

const requestId = z.number({ error: 'id must be a number' }).int().nonnegative()

export const leaseRequestSchema = z.discriminatedUnion(
  'op',
  [
    z.object({ id: requestId, op: z.literal('acquire'), space: spaceSchema, key: leaseKeySchema, holder: idSchema, duration: durationSchema }),
    z.object({ id: requestId, op: z.literal('renew'), grant: grantSchema, duration: durationSchema.optional() }),
    z.object({ id: requestId, op: z.literal('release'), grant: grantSchema }),
  ],
  { error: 'op must be acquire, renew or release' },
)

export type LeaseWireRequest = z.infer<typeof leaseRequestSchema>

export interface LeaseWireError {
  code: ChorusErrorCode
  message: string
  details?: Record<string, unknown>
}

/** A reply: `grant` for acquire and renew, `released` for release. `id` is null when the request had none. */
export type LeaseWireReply =
  | { id: number; ok: true; grant: LeaseGrant }
  | { id: number; ok: true; released: boolean }
  | { id: number | null; ok: false; error: LeaseWireError }

export interface LeaseLostPush {
  type: 'lease_lost'
  grant: LeaseGrant
  reason: LeaseLossReason
}
