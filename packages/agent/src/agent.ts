/**
 * What an operation returns, and `Agent`: the one call every door uses. `SpaceAgent` performs operations on a
 * replica (the relay's hosted space); `RelayAgent` asks a relay for them over HTTP.
 */
import type { ChorusEvent, Json, Message, Participant, PresenceStatus, Proposal, Resource, Task } from '@chorus/sync'
import type { Input, OperationName } from './operations.ts'

/** A live lease on a task or a resource, as its holder needs it. */
export interface Held {
  /** The fencing token: pass it along with every write made under the lease. */
  token: number
  /** When the lease runs out unless renewed (ms since 1970, by the recording replica's clock). */
  expires_at: number
  duration_ms: number
}

export interface ParticipantView extends Participant {
  presence: PresenceStatus
  /** What it says it is working on, if anything. */
  working_on?: string
}

export type WaitResult =
  | { matched: true; message: Message }
  | { matched: true; task: Task }
  | { matched: true; event: ChorusEvent }
  /** Nothing within the timeout; `cursor` (for events) is where to go on from without missing one. */
  | { matched: false; cursor?: string }

export interface Results {
  join: Participant
  send_message: Message
  read_inbox: { messages: Message[]; acked: number }
  wait_for: WaitResult
  create_task: Task
  list_tasks: Task[]
  claim_task: Held & { task: Task }
  renew_claim: Held & { task: Task }
  release_claim: Task
  complete_task: Task
  create_proposal: Proposal
  vote: Proposal
  list_proposals: Proposal[]
  get_state: { key: string; value: Json; by?: string; at?: number } | { state: Record<string, Json> }
  set_state: { key: string; value: Json }
  list_participants: ParticipantView[]
  lock_resource: Held & { resource: Resource }
  unlock_resource: Resource
  report: { text: string }
}

export interface Agent {
  /** The participant every operation acts as. */
  readonly participant: string
  /** Performs `name`; rejects with a ChorusError (bad input, not found, conflict, ...) when it cannot. */
  call<N extends OperationName>(name: N, input: Input<N>, options?: { signal?: AbortSignal }): Promise<Results[N]>
}
