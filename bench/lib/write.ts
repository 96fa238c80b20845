/**
 * Write workloads: each typed-API operation beside the same work done on plain Yjs.
 * Every case starts from fresh state, so a run of N operations shows how the cost grows with N.
 */
import * as Y from 'yjs'
import { Space, VOTES, type Member, type Vote } from '@chorus/sync'
import { bench, type Bench } from './measure.ts'
import { content, type MessageRecord } from './build.ts'

export const SENDERS = 5
export const STATE_KEYS = 100
export const VOTERS = 100
export const MANY_VOTERS = 1000
/** Operation counts every workload runs (fresh state each): per-op cost at 2k vs 20k shows growth. */
export const OPS_SIZES = [2_000, 20_000] as const

const BODY = content(0)
const senderId = (i: number): string => `p${i % SENDERS}`
const voteOf = (i: number, voters: number): Vote => VOTES[Math.floor(i / voters) % VOTES.length] as Vote
const stateValue = (i: number): { step: number; status: string } => ({ step: i, status: 'working on the review' })

/** A space with `n` joined participants p0..p(n-1). */
const spaceWith = (id: string, n: number): { space: Space; members: Member[] } => {
  const space = new Space({ id })
  const members: Member[] = []
  for (let i = 0; i < n; i++) members.push(space.join({ id: `p${i}`, name: `Participant ${i}`, kind: 'ai' }))
  return { space, members }
}

interface SpaceCtx {
  space: Space
  members: Member[]
}
const member = (c: SpaceCtx, i: number): Member => c.members[i % c.members.length] as Member
const destroySpace = (c: SpaceCtx): void => c.space.destroy()

export interface Workload {
  name: string
  /** Operation counts to measure. */
  sizes: readonly number[]
  ours: Bench
  baselines: Bench[]
  /** The same typed operation without the Member handle (no presence touch), for the breakdown. */
  spaceApi?: Bench
}

const sendWorkload: Workload = {
  name: 'message send',
  sizes: OPS_SIZES,
  ours: bench<SpaceCtx>({
    name: 'member.send',
    setup: () => spaceWith('bench-send', SENDERS),
    op: (c, i) => {
      member(c, i).send(BODY)
    },
    teardown: destroySpace,
  }),
  spaceApi: bench<SpaceCtx>({
    name: 'space.messages.send',
    setup: () => spaceWith('bench-send', SENDERS),
    op: (c, i) => {
      c.space.messages.send({ from: senderId(i), content: BODY })
    },
    teardown: destroySpace,
  }),
  baselines: [
    bench<Y.Array<MessageRecord & { at: number }>>({
      name: 'Y.Array.push(record)',
      setup: () => new Y.Doc().getArray('messages'),
      op: (arr, i) => arr.push([{ at: Date.now(), channel: 'general', from: senderId(i), priority: 'normal', content: BODY }]),
      teardown: (arr) => arr.doc?.destroy(),
    }),
    bench<Y.Text>({
      name: 'Y.Text.insert(line)',
      setup: () => new Y.Doc().getText('messages'),
      op: (text, i) => {
        const record: MessageRecord = { channel: 'general', from: senderId(i), priority: 'normal', content: BODY }
        text.insert(text.length, `${Date.now()}\t${JSON.stringify(record)}\n`)
      },
      teardown: (text) => text.doc?.destroy(),
    }),
  ],
}

const stateWorkload: Workload = {
  name: `state set (${STATE_KEYS} keys)`,
  sizes: OPS_SIZES,
  ours: bench<SpaceCtx>({
    name: 'member.set',
    setup: () => spaceWith('bench-state', SENDERS),
    op: (c, i) => member(c, i).set(`key-${i % STATE_KEYS}`, stateValue(i)),
    teardown: destroySpace,
  }),
  spaceApi: bench<SpaceCtx>({
    name: 'space.state.set',
    setup: () => spaceWith('bench-state', SENDERS),
    op: (c, i) => c.space.state.set(`key-${i % STATE_KEYS}`, stateValue(i), { by: senderId(i) }),
    teardown: destroySpace,
  }),
  baselines: [
    bench<Y.Map<unknown>>({
      name: 'Y.Map.set',
      setup: () => new Y.Doc().getMap('state'),
      op: (map, i) => map.set(`key-${i % STATE_KEYS}`, stateValue(i)),
      teardown: (map) => map.doc?.destroy(),
    }),
  ],
}

interface VoteCtx extends SpaceCtx {
  proposal: string
}

const voteWorkload = (voters: number, sizes: readonly number[], breakdown: boolean): Workload => {
  const setup = (): VoteCtx => {
    const c = spaceWith('bench-vote', voters)
    const proposal = member(c, 0).propose({ title: 'Adopt the review rota' }).id
    return { ...c, proposal }
  }
  return {
    name: `vote (${voters} voters, 1 proposal)`,
    sizes,
    ours: bench<VoteCtx>({
      name: 'member.vote',
      setup,
      op: (c, i) => {
        member(c, i).vote(c.proposal, voteOf(i, voters))
      },
      teardown: destroySpace,
    }),
    ...(breakdown
      ? {
          spaceApi: bench<VoteCtx>({
            name: 'space.proposals.vote',
            setup,
            op: (c, i) => {
              c.space.proposals.vote(c.proposal, `p${i % voters}`, voteOf(i, voters))
            },
            teardown: destroySpace,
          }),
        }
      : {}),
    baselines: [
      bench<Y.Map<Y.Map<unknown>>>({
        name: 'Y.Map.set (nested votes map)',
        setup: () => {
          const proposals = new Y.Doc().getMap<Y.Map<unknown>>('proposals')
          const p = new Y.Map<unknown>()
          p.set('title', 'Adopt the review rota')
          p.set('votes', new Y.Map<unknown>())
          proposals.set('p-1', p)
          return proposals
        },
        op: (proposals, i) => {
          const votes = (proposals.get('p-1') as Y.Map<unknown>).get('votes') as Y.Map<unknown>
          votes.set(`p${i % voters}`, { vote: voteOf(i, voters), at: Date.now() })
        },
        teardown: (proposals) => proposals.doc?.destroy(),
      }),
    ],
  }
}

/** The required figures at 2k and 20k ops; the 1000-voter vote only at 2k (each vote costs O(voters), see the report). */
export const WORKLOADS: readonly Workload[] = [
  sendWorkload,
  stateWorkload,
  voteWorkload(VOTERS, OPS_SIZES, true),
  voteWorkload(MANY_VOTERS, [OPS_SIZES[0]], false),
]
