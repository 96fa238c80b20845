import { useMemo, useState } from 'preact/hooks'
import { VOTES, type Proposal, type Tally, type Vote } from '@chorus/web'
import { Icon } from './icons.tsx'
import { useToasts } from './toast.tsx'
import { Avatar, EmptyState, KindBadge, Time, ViewHeader } from './ui.tsx'
import { useSpace } from './use-space.ts'

const VOTE_LABELS: Record<Vote, string> = { for: 'For', against: 'Against', abstain: 'Abstain' }

const STATUS_LABELS: Record<Proposal['status'], string> = {
  open: 'Open',
  approved: 'Approved',
  rejected: 'Rejected',
  expired: 'Expired',
}

/** Votes are taken until the deadline passes or the proposer closes it, even once it is approved. */
const isClosed = (p: Proposal, now: number): boolean => p.closedAt !== undefined || (p.deadline !== undefined && now >= p.deadline)

const percent = (n: number): string => `${Math.round(n * 100)}%`

export function ProposalsView() {
  const { space, version } = useSpace()
  // Newest first: the one just proposed is the one people want to see.
  const proposals = useMemo(() => space.proposals.list().reverse(), [space, version])

  return (
    <section class="view proposals-view" data-testid="view-proposals" aria-label="Proposals">
      <ViewHeader title="Proposals">Propose a decision and let everyone vote. A proposal passes once enough votes are in and enough of them are for it.</ViewHeader>
      <CreateProposalForm />
      {proposals.length === 0 ? (
        <EmptyState title="No proposals yet">Propose something above: a plan, a change, a choice the space should make together.</EmptyState>
      ) : (
        <ul class="proposal-list">
          {proposals.map((p) => (
            <ProposalCard key={p.id} proposal={p} />
          ))}
        </ul>
      )}
    </section>
  )
}

function CreateProposalForm() {
  const { me } = useSpace()
  const { fail } = useToasts()
  const [title, setTitle] = useState('')
  const [description, setDescription] = useState('')

  const create = (e: Event): void => {
    e.preventDefault()
    try {
      me.propose({ title, description })
      setTitle('')
      setDescription('')
    } catch (err) {
      fail(err)
    }
  }

  return (
    <form class="card create-form" onSubmit={create} aria-label="New proposal">
      <div class="form-row">
        <label class="field grow">
          <span class="field-label">New proposal</span>
          <input data-testid="proposal-title" value={title} maxLength={500} placeholder="What should we decide?" onInput={(e) => setTitle(e.currentTarget.value)} />
        </label>
        <button type="submit" class="button primary" data-testid="proposal-create" disabled={title.trim().length === 0}>
          <Icon name="plus" size={16} />
          Propose
        </button>
      </div>
      <label class="field">
        <span class="visually-hidden">Description</span>
        <textarea
          data-testid="proposal-description"
          rows={2}
          value={description}
          placeholder="Why, and what it would change (optional)"
          onInput={(e) => setDescription(e.currentTarget.value)}
        />
      </label>
    </form>
  )
}

function ProposalCard({ proposal: p }: { proposal: Proposal }) {
  const { space, me } = useSpace()
  const { fail } = useToasts()
  const proposer = space.participants.get(p.proposer)
  const mine = p.votes[me.id]
  const open = !isClosed(p, Date.now())

  const vote = (v: Vote): void => {
    try {
      me.vote(p.id, v)
    } catch (e) {
      fail(e)
    }
  }

  return (
    <li class={`card proposal status-${p.status}`} data-testid="proposal" data-id={p.id} data-status={p.status}>
      <div class="proposal-top">
        <h3 class="proposal-title">{p.title}</h3>
        <span class={`pill pill-${p.status}`} data-testid="proposal-status">
          {STATUS_LABELS[p.status]}
        </span>
      </div>
      <p class="proposal-meta">
        <Avatar id={p.proposer} name={proposer?.name ?? p.proposer} kind={proposer?.kind} size="small" />
        <span>
          Proposed by <strong>{p.proposer === me.id ? 'you' : (proposer?.name ?? p.proposer)}</strong>
        </span>
        <KindBadge kind={proposer?.kind} />
        <span>
          · <Time at={p.createdAt} />
        </span>
        {p.deadline !== undefined && (
          <span>
            · {open ? 'closes' : 'closed'} <Time at={p.deadline} />
          </span>
        )}
      </p>
      {p.description.length > 0 && <p class="proposal-description">{p.description}</p>}
      <TallyBar tally={p.tally} />
      <p class="proposal-rule">
        Passes with {percent(p.threshold)} of for-or-against votes for it, once {p.quorum} {p.quorum === 1 ? 'vote is' : 'votes are'} in.
      </p>
      {open ? (
        <div class="vote-buttons" role="group" aria-label="Your vote">
          {VOTES.map((v) => (
            <button
              key={v}
              type="button"
              class={`button vote vote-${v}`}
              data-testid={`vote-${v}`}
              aria-pressed={mine === v ? 'true' : 'false'}
              onClick={() => vote(v)}
            >
              {VOTE_LABELS[v]}
            </button>
          ))}
          <span class="vote-note">{mine === undefined ? 'You have not voted.' : 'You can change your vote until it closes.'}</span>
        </div>
      ) : (
        <p class="vote-note">{mine === undefined ? 'Voting is closed.' : `Voting is closed. You voted ${VOTE_LABELS[mine].toLowerCase()}.`}</p>
      )}
    </li>
  )
}

function TallyBar({ tally }: { tally: Tally }) {
  const total = tally.for + tally.against + tally.abstain
  const width = (n: number): string => (total === 0 ? '0%' : `${(n / total) * 100}%`)
  return (
    <div class="tally" data-testid="tally" data-for={tally.for} data-against={tally.against} data-abstain={tally.abstain}>
      <div class="tally-bar" role="img" aria-label={`${tally.for} for, ${tally.against} against, ${tally.abstain} abstaining`}>
        {total === 0 && <span class="tally-none">No votes yet</span>}
        <span class="tally-segment tally-for" style={{ width: width(tally.for) }} />
        <span class="tally-segment tally-against" style={{ width: width(tally.against) }} />
        <span class="tally-segment tally-abstain" style={{ width: width(tally.abstain) }} />
      </div>
      <div class="tally-legend" aria-hidden="true">
        <span class="legend legend-for">{tally.for} for</span>
        <span class="legend legend-against">{tally.against} against</span>
        <span class="legend legend-abstain">{tally.abstain} abstain</span>
      </div>
    </div>
  )
}
