import * as Y from 'yjs'
import { z } from 'zod'
import type { SpaceCore } from './core.ts'
import { ChorusError } from '../errors.ts'
import { LIMITS, VOTES, type Proposal, type ProposalStatus, type Tally, type Vote } from '../schema.ts'
import { checkId, checkOneOf, checkSize, idSchema, parse } from '../validate.ts'

export interface CreateProposalOptions {
  title: string
  description?: string
  proposer: string
  /** Share of for / (for + against) needed to approve; default 0.75. */
  threshold?: number
  /** Votes (any choice) needed before the proposal can pass; default 1. */
  quorum?: number
  /** Time (ms since epoch) after which votes are closed. */
  deadline?: number
}

const createSchema = z.object({
  title: z.string({ error: 'title must be a string' }).trim().min(1, 'title must not be empty').max(LIMITS.titleLength),
  description: z.string().optional(),
  proposer: idSchema,
  threshold: z.number().gt(0, 'threshold must be above 0').max(1, 'threshold must be at most 1').optional(),
  quorum: z.number().int('quorum must be a whole number').min(1, 'quorum must be at least 1').optional(),
  deadline: z.number().int().positive().optional(),
})

export const DEFAULT_THRESHOLD = 0.75

interface StoredVote {
  vote: Vote
  at: number
}

/**
 * Proposals and votes. Each voter owns one key in the proposal's `votes` map, so concurrent votes never conflict
 * and a changed vote simply replaces the voter's own. Tally and status are pure functions of the document and
 * the time, so every replica derives the same at the same instant:
 * - closed (deadline passed or closed by the proposer): `approved` if quorum was met and the ratio reaches the
 *   threshold, `rejected` if quorum was met and it does not, `expired` without quorum;
 * - still open: `approved` as soon as quorum and threshold are met (votes may still change until closed), else `open`.
 */
export class Proposals {
  private readonly core: SpaceCore

  constructor(core: SpaceCore) {
    this.core = core
  }

  create(options: CreateProposalOptions): Proposal {
    const o = parse(createSchema, options, 'proposal')
    checkSize('proposal description', o.description ?? '', LIMITS.description)
    this.core.requireParticipant(o.proposer)
    const id = this.core.newId('p')
    const now = this.core.now()
    this.core.transact(() => {
      const m = new Y.Map<unknown>()
      m.set('title', o.title)
      m.set('description', o.description ?? '')
      m.set('proposer', o.proposer)
      m.set('createdAt', now)
      m.set('threshold', o.threshold ?? DEFAULT_THRESHOLD)
      m.set('quorum', o.quorum ?? 1)
      if (o.deadline !== undefined) m.set('deadline', o.deadline)
      m.set('votes', new Y.Map<StoredVote>())
      this.core.proposals.set(id, m)
      this.core.record({ type: 'proposal_created', by: o.proposer, ref: id, data: { title: o.title } }, now)
    })
    return this.require(id)
  }

  /** Casts or changes `voter`'s vote; refused once the proposal is closed. Read the outcome with `get`. */
  vote(id: string, voter: string, vote: Vote): void {
    const v = checkOneOf(vote, VOTES, 'vote')
    this.core.requireKind(checkId(voter, 'voter id'))
    const m = this.core.proposals.get(checkId(id, 'proposal id'))
    if (m === undefined) throw new ChorusError('not_found', `unknown proposal "${id}"`, { proposal: id })
    // Checked from the raw fields: deriving the whole proposal here would make each vote cost O(voters).
    const deadline = m.get('deadline')
    if (m.has('closedAt') || (typeof deadline === 'number' && this.core.now() >= deadline)) {
      throw new ChorusError('closed', `proposal ${id} is closed (${this.require(id).status})`, { proposal: id })
    }
    const now = this.core.now()
    // The vote entry is its own record: `vote` events are derived from it (see derived-events.ts).
    this.core.transact(() => (m.get('votes') as Y.Map<StoredVote>).set(voter, { vote: v, at: now }))
  }

  /** Closes voting now; only the proposer may. */
  close(id: string, by: string): Proposal {
    const p = this.require(id)
    if (p.proposer !== by) throw new ChorusError('forbidden', `only the proposer (${p.proposer}) may close proposal ${id}`)
    if (this.isClosed(p)) throw new ChorusError('closed', `proposal ${id} is already closed`)
    const now = this.core.now()
    this.core.transact(() => {
      ;(this.core.proposals.get(id) as Y.Map<unknown>).set('closedAt', now)
      this.core.record({ type: 'proposal_closed', by, ref: id }, now)
    })
    return this.require(id)
  }

  get(id: string): Proposal | undefined {
    const m = this.core.proposals.get(id)
    return m === undefined ? undefined : this.read(id, m)
  }

  require(id: string): Proposal {
    const p = this.get(checkId(id, 'proposal id'))
    if (p === undefined) throw new ChorusError('not_found', `unknown proposal "${id}"`, { proposal: id })
    return p
  }

  /** All proposals in creation order. */
  list(): Proposal[] {
    const out: Proposal[] = []
    for (const [id, m] of this.core.proposals) out.push(this.read(id, m))
    return out.sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : 1))
  }

  private isClosed(p: Proposal): boolean {
    return p.closedAt !== undefined || (p.deadline !== undefined && this.core.now() >= p.deadline)
  }

  private read(id: string, m: Y.Map<unknown>): Proposal {
    const votes: Record<string, Vote> = {}
    const tally: Tally = { for: 0, against: 0, abstain: 0, ratio: 0 }
    const stored = m.get('votes') as Y.Map<StoredVote>
    const deadline = m.get('deadline')
    const closedAt = m.get('closedAt')
    for (const voter of [...stored.keys()].sort()) {
      const { vote: v, at } = stored.get(voter) as StoredVote
      if (!VOTES.includes(v)) continue
      // A vote that arrives after the proposal closed (a late or skewed replica) does not change the outcome.
      if ((typeof deadline === 'number' && at >= deadline) || (typeof closedAt === 'number' && at > closedAt)) continue
      votes[voter] = v
      tally[v]++
    }
    tally.ratio = tally.for + tally.against === 0 ? 0 : tally.for / (tally.for + tally.against)
    const p: Proposal = {
      id,
      title: m.get('title') as string,
      description: m.get('description') as string,
      proposer: m.get('proposer') as string,
      createdAt: m.get('createdAt') as number,
      threshold: m.get('threshold') as number,
      quorum: m.get('quorum') as number,
      votes,
      tally,
      status: 'open',
    }
    if (typeof deadline === 'number') p.deadline = deadline
    if (typeof closedAt === 'number') p.closedAt = closedAt
    p.status = statusOf(p, this.isClosed(p))
    return p
  }
}

export const statusOf = (p: Pick<Proposal, 'tally' | 'quorum' | 'threshold'>, closed: boolean): ProposalStatus => {
  const cast = p.tally.for + p.tally.against + p.tally.abstain
  const quorate = cast >= p.quorum
  const passes = quorate && p.tally.for > 0 && p.tally.ratio >= p.threshold
  if (!closed) return passes ? 'approved' : 'open'
  if (!quorate) return 'expired'
  return passes ? 'approved' : 'rejected'
}
