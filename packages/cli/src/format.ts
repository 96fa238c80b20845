/** Text output for people; `--json` prints the operation's result as one JSON line instead. */
import type { ParticipantView, WaitResult } from '@chorus/agent'
import type { ChorusEvent, Message, Proposal, Task } from '@chorus/sync'

const time = (ms: number): string => new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z')

export const messageLine = (m: Message): string =>
  `${time(m.at)}  ${m.from}${m.to === undefined ? ` #${m.channel}` : ` → ${m.to}`}${m.priority === 'normal' ? '' : ` [${m.priority}]`}: ${m.content}  (${m.id})`

export const taskLine = (t: Task): string => {
  const who = t.status === 'claimed' && t.claim !== undefined ? `  by ${t.claim.holder} (token ${t.claim.token})` : t.status === 'completed' && t.completedBy !== undefined ? `  by ${t.completedBy}` : ''
  return `${t.id}  ${t.status.padEnd(9)} ${t.priority.padEnd(7)} ${t.requiresHuman ? '[human] ' : ''}${t.title}${who}`
}

export const proposalLine = (p: Proposal): string =>
  `${p.id}  ${p.status.padEnd(8)} for ${p.tally.for}, against ${p.tally.against}, abstain ${p.tally.abstain}  ${p.title}  (by ${p.proposer})`

export const participantLine = (p: ParticipantView): string =>
  `${p.id.padEnd(16)} ${p.kind.padEnd(8)} ${p.presence.padEnd(8)} last seen ${time(p.lastSeen)}${p.working_on === undefined ? '' : `  working on: ${p.working_on}`}  ${p.name}`

export const eventLine = (e: ChorusEvent): string => `${time(e.at)}  ${e.type}  ${e.participant}${e.ref === undefined ? '' : `  ${e.ref}`}`

export const waitLine = (r: WaitResult & { matched: true }): string =>
  'message' in r ? messageLine(r.message) : 'task' in r ? taskLine(r.task) : eventLine(r.event)

export const until = (ms: number): string => new Date(ms).toISOString()
