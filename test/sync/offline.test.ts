/**
 * Offline: an agent with a sqlite store edits while disconnected, its process is killed, a new process reopens
 * the file and reconnects to a replica in this process; both converge and nothing written offline is lost.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { connectSpace, Space, type SpaceSnapshot } from '@chorus/sync'
import { StreamTransport } from '@chorus/sync/stream'
import { exited } from '../support/child.ts'
import { tempDir } from '../support/temp.ts'

const fixture = join(import.meta.dirname, 'fixtures', 'offline-agent.ts')

const start = (phase: 'offline' | 'reconnect', db: string): ChildProcess =>
  spawn(process.execPath, [fixture, phase, db], { stdio: ['pipe', 'pipe', 'inherit', 'ipc'] })

const nextMessage = <T>(child: ChildProcess, accept: (m: T) => boolean = () => true): Promise<T> =>
  new Promise((resolve, reject) => {
    const onMessage = (m: T): void => {
      if (!accept(m)) return
      child.off('message', onMessage)
      resolve(m)
    }
    child.on('message', onMessage)
    child.once('exit', (code) => reject(new Error(`agent exited (${code}) before replying`)))
  })

describe('offline agent with a sqlite store', () => {
  it('edits offline, is killed, reopens, reconnects, converges, and loses nothing', async () => {
    const db = join(tempDir('chorus-offline-'), 'agent.sqlite')
    const hq = new Space({ id: 'field' })
    hq.join({ id: 'hq', name: 'HQ', kind: 'human' })
    hq.member('hq').send('HQ here, report when you can')

    // Phase 1: the agent works with no connection, then dies without any chance to flush.
    const offline = start('offline', db)
    const report = await nextMessage<{ done: boolean; claimError: string; task: string; proposal: string; resource: string }>(offline)
    expect(report.claimError).toBe('lease_unavailable') // L10: offline, nothing is assumed held
    const killed = exited(offline)
    offline.kill('SIGKILL')
    await killed
    hq.member('hq').set('field_status', 'waiting for news')

    // Phase 2: a new process opens the same file and syncs with HQ over its stdio.
    const agent = start('reconnect', db)
    const transport = new StreamTransport({ readable: agent.stdout as NodeJS.ReadableStream as never, writable: agent.stdin as never, peer: 'agent' })
    const backOnline = new Promise<void>((resolve) => {
      const off = hq.events.on('message', (e) => {
        if (e.data.content === 'back online') {
          off()
          resolve()
        }
      })
    })
    const connection = await connectSpace(hq, (d) => (d.doc === hq.doc ? transport : undefined))
    const reopened = await nextMessage<{ offlineWork: { messages: number; aiOnly: number } }>(agent, (m) => 'offlineWork' in m)
    expect(reopened.offlineWork).toEqual({ messages: 21, aiOnly: 1 }) // everything written before SIGKILL
    await backOnline

    // Nothing written offline is lost on HQ's side...
    const fromAgent = hq.messages.all().filter((m) => m.from === 'field-agent').map((m) => m.content)
    expect(fromAgent).toHaveLength(21)
    expect(fromAgent).toContain('offline report 19')
    expect(hq.state.get('readings')).toEqual({ north: 12 })
    expect(hq.tasks.require(report.task).title).toBe('Calibrate the sensor')
    expect(hq.proposals.require(report.proposal).tally.for).toBe(1)
    expect(hq.resources.require(report.resource)).toMatchObject({ version: 2, data: 'day 1\nday 2' })
    // Both wrote field_status concurrently: last writer wins the same way on both sides.
    agent.send({ snapshot: true })
    const theirs = await nextMessage<{ snapshot: SpaceSnapshot }>(agent, (m) => 'snapshot' in m)
    // HQ is human and never receives the ai-only document, so compare everything but that channel.
    const visible = (snap: SpaceSnapshot): SpaceSnapshot => ({
      ...snap,
      messages: snap.messages.filter((m) => m.channel !== 'ai-only'),
      events: snap.events.filter((e) => e.type !== 'message' || (e.data as { channel: string }).channel !== 'ai-only'),
    })
    for (const key of Object.keys(hq.snapshot()) as Array<keyof SpaceSnapshot>) {
      expect(JSON.stringify(visible(theirs.snapshot)[key]), key).toBe(JSON.stringify(visible(hq.snapshot())[key]))
    }
    expect(hq.messages.inbox('field-agent').map((m) => m.content)).toContain('HQ here, report when you can')

    const done = exited(agent)
    agent.send({ bye: true })
    expect((await done).code).toBe(0)
    await connection.stop()
    hq.destroy()
  })
})
