/**
 * One peer of examples/p2p-mesh.ts, in a process of its own:
 *
 *   node examples/lib/p2p-mesh-peer.ts <relay-url> <space> <participant> <folder>
 *
 * It keeps its libp2p key in <folder> (the same peer id on every run), registers as an ai participant over the
 * relay's REST API, gets its memberships (the space and `<space>#ai-only`), starts a ChorusPeer that bootstraps
 * from the relay's node (no mDNS; pubsub peer discovery finds the other peers), and syncs a `Space` over libp2p:
 * one DocumentTransport per document it is a member of. Then it follows commands: one JSON object a line on
 * stdin, each answered by one JSON line on stdout. Its first line on stdout says it is ready; logs go to stderr.
 * It stops on `stop`, or when stdin closes (its parent went away).
 */
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { ChorusPeer, loadOrCreatePeerKey, parseMembership, type DocumentTransport, type Membership } from '@chorus/p2p'
import type { RelayCapabilities } from '@chorus/relay'
import { connectSpace, Space } from '@chorus/sync'
import { replicaDigest, type ReplicaDigest } from './replica-digest.ts'

export type PeerCommand =
  /** Write a round: `messages` messages on the open channels, one on ai-only, two state keys and a task. */
  | { id: number; cmd: 'write'; round: string; messages: number }
  | { id: number; cmd: 'report' }
  | { id: number; cmd: 'stop' }

export interface PeerReport {
  digest: ReplicaDigest
  /** Other peers (not the relay) this one has a direct connection to, not through a relay circuit. */
  directPeers: number
  /** Members this peer has a sync link to for the main document (the relay among them while it is up). */
  linked: string[]
}

export type PeerReply =
  | { id: number; ok: true; report?: PeerReport; wrote?: string[] }
  | { id: number; ok: false; error: string }

export interface PeerReady {
  ready: true
  peerId: string
}

/** How long the peer may take to get its memberships and first sync with the relay. */
const STARTUP_TIMEOUT_MS = 30_000

const args = process.argv.slice(2)
if (args.length !== 4) {
  process.stderr.write('usage: node examples/lib/p2p-mesh-peer.ts <relay-url> <space> <participant> <folder>\n')
  process.exit(2)
}
const [url, spaceId, me, folder] = args as [string, string, string, string]

const post = async (path: string, body: unknown): Promise<Record<string, unknown>> => {
  const res = await fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  const json = (await res.json()) as Record<string, unknown>
  if (res.status !== 200) throw new Error(`POST ${path}: ${res.status} ${JSON.stringify(json)}`)
  return json
}

const key = await loadOrCreatePeerKey(join(folder, 'peer.key'))
await post(`/spaces/${spaceId}/entities/register`, { entity_id: me, entity_type: 'ai_agent', name: me })
const got = await post(`/spaces/${spaceId}/p2p/membership`, { peer_id: key.peerId, entity_id: me })
const memberships = new Map<string, Membership>((got.memberships as unknown[]).map(parseMembership).map((m) => [m.credential.doc, m]))
const documents = [...memberships.keys()]
if (documents.join() !== `${spaceId},${spaceId}#ai-only`) throw new Error(`unexpected memberships: ${documents.join(', ')}`)

const caps = (await (await fetch(`${url}/capabilities`)).json()) as RelayCapabilities
if (caps.p2p === undefined) throw new Error('the relay runs no libp2p node')
const relayPeer = caps.p2p.peerId
const bootstrap = caps.p2p.multiaddrs.filter((a) => a.includes('/tcp/') && !a.includes('/ws'))

const peer = await ChorusPeer.start({
  key,
  bootstrap,
  mdns: false,
  pubsubDiscovery: true,
  discoveryIntervalMs: 500,
  onError: (error, context) => {
    if (process.env.CHORUS_EXAMPLE_VERBOSE !== undefined) process.stderr.write(`${me}: ${context}: ${String(error)}\n`)
  },
})
const space = new Space({ id: spaceId })
const transports = new Map<string, DocumentTransport>()
const connection = await connectSpace(space, (d) => {
  const membership = memberships.get(d.name)
  if (membership === undefined) return undefined // #human-only: not ours, stays local (and empty)
  const transport = peer.document(membership)
  transports.set(d.name, transport)
  return transport
})
const main = connection.replicators.get(spaceId)
if (main === undefined) throw new Error('the main document has no transport')

// Ready once the relay's copy arrived, with this participant in it (messages need a known sender).
const deadline = Date.now() + STARTUP_TIMEOUT_MS
await Promise.race([
  main.whenSynced(relayPeer),
  new Promise((_, reject) => setTimeout(() => reject(new Error(`${me}: no sync with the relay's node within ${STARTUP_TIMEOUT_MS} ms`)), STARTUP_TIMEOUT_MS).unref()),
])
while (space.participants.get(me) === undefined) {
  if (Date.now() > deadline) throw new Error(`${me}: its own registration did not arrive from the relay within ${STARTUP_TIMEOUT_MS} ms`)
  await new Promise((resolve) => setTimeout(resolve, 20))
}

const say = (line: PeerReply | PeerReady): void => {
  process.stdout.write(`${JSON.stringify(line)}\n`)
}

function write(round: string, count: number): string[] {
  const wrote: string[] = []
  for (let i = 1; i <= count; i++) {
    const channel = i % 2 === 1 ? 'general' : 'mesh'
    wrote.push(space.messages.send({ from: me, channel, content: `${round}: ${me} #${i} on ${channel}` }).content)
  }
  wrote.push(space.messages.send({ from: me, channel: 'ai-only', content: `${round}: ${me} on ai-only` }).content)
  space.state.set(`${round}/${me}`, { round, by: me }, { by: me })
  // Every peer writes this key in the same round: the replicas must agree on one winner.
  space.state.set('latest-round', { round, by: me }, { by: me })
  space.tasks.create({ title: `${round}: follow-up from ${me}`, createdBy: me })
  return wrote
}

function report(): PeerReport {
  const direct = new Set<string>()
  for (const c of peer.node.getConnections()) {
    const remote = c.remotePeer.toString()
    if (remote !== relayPeer && !c.remoteAddr.toString().includes('/p2p-circuit')) direct.add(remote)
  }
  return { digest: replicaDigest(space, documents), directPeers: direct.size, linked: [...(transports.get(spaceId)?.peers ?? [])].sort() }
}

let stopping: Promise<void> | undefined
const stop = (): Promise<void> =>
  (stopping ??= (async () => {
    await connection.stop()
    await peer.stop()
    space.destroy()
  })())

const lines = createInterface({ input: process.stdin })
lines.on('line', (line) => {
  let command: PeerCommand
  try {
    command = JSON.parse(line) as PeerCommand
  } catch {
    process.stderr.write(`${me}: not a JSON command: ${line.slice(0, 200)}\n`)
    return
  }
  try {
    if (command.cmd === 'write') say({ id: command.id, ok: true, wrote: write(command.round, command.messages) })
    else if (command.cmd === 'report') say({ id: command.id, ok: true, report: report() })
    else if (command.cmd === 'stop') {
      stop().then(
        () => {
          say({ id: command.id, ok: true })
          process.exit(0)
        },
        (e: unknown) => {
          say({ id: command.id, ok: false, error: String(e) })
          process.exit(1)
        },
      )
    } else say({ id: (command as { id: number }).id, ok: false, error: `unknown command ${JSON.stringify(command)}` })
  } catch (e) {
    say({ id: command.id, ok: false, error: e instanceof Error ? e.message : String(e) })
  }
})
// The parent went away: stop quietly.
lines.on('close', () => {
  void stop().finally(() => process.exit(0))
})

say({ ready: true, peerId: key.peerId })
