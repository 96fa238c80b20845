/**
 * The collaboration hub's demo on Chorus: Alice (human) and two AI instances share a space, talk, update shared
 * state, and take turns on a locked resource. Exits 0 only if every step behaved as the story says.
 *
 *   node examples/collaboration-demo.ts
 */
import { CollaborationHub } from '@chorus/sync'
import { check, finish } from './lib/check.ts'

const hub = new CollaborationHub({ hubId: 'demo_hub' })

const alice = hub.addParticipant('Alice', 'human', { role: 'lead' }, 'alice')
const instance1 = hub.addParticipant('Instance 1', 'ai_instance', { model: 'assistant' }, 'instance_1')
const instance2 = hub.addParticipant('Instance 2', 'ai_instance', { model: 'assistant' }, 'instance_2')
check('three participants are active', hub.getActiveParticipants().length === 3)

const received: string[] = []
hub.onEvent('message', (e) => received.push(e.data.content))

hub.sendMessage(alice, 'Good morning! Today we build the parser.')
hub.sendMessage(instance1, 'I will take the tokenizer.', alice)
hub.sendMessage(instance2, 'Tests are failing on main, please look.', undefined, 'URGENT')
check('every message produced an event', received.length === 3)
check('the direct message reached only Alice', hub.space.messages.inbox(alice).some((m) => m.content.startsWith('I will take')) && !hub.space.messages.inbox(instance2).some((m) => m.content.startsWith('I will take')))

hub.updateSharedState(alice, 'project_status', 'in_progress')
hub.updateSharedState(instance1, 'progress', { tokenizer: 'started' }, 'merge')
hub.updateSharedState(instance2, 'progress', { tests: 'red' }, 'merge')
check('merged state keeps both fields', JSON.stringify(hub.getSharedState('progress')) === JSON.stringify({ tests: 'red', tokenizer: 'started' }))

const mainPy = hub.createResource('main.py', alice, 'def main():\n    pass\n')
check('Alice locks main.py', await hub.lockResource(mainPy, alice, 60))
check('Instance 1 cannot lock it while Alice holds it', !(await hub.lockResource(mainPy, instance1, 60)))
check('Instance 1 cannot edit it either', !hub.editResource(mainPy, instance1, 'oops'))
check('Alice edits at version 1', hub.editResource(mainPy, alice, 'def main():\n    print("hello")\n', 1))
check('a stale version is refused', !hub.editResource(mainPy, alice, 'stale', 1))
check('Alice unlocks', await hub.unlockResource(mainPy, alice))
check('now Instance 1 can lock it', await hub.lockResource(mainPy, instance1, 60))
check('and unlock it', await hub.unlockResource(mainPy, instance1))
check('main.py is at version 2, unlocked', hub.getResource(mainPy).version === 2 && hub.getResource(mainPy).lockedBy === null)

console.log(hub.generateActivityReport())
for (const id of [alice, instance1, instance2]) {
  const s = hub.getParticipantStatus(id)
  console.log(`${s.name}: ${s.text}`)
}
check('the report names every participant', ['Alice', 'Instance 1', 'Instance 2'].every((n) => hub.generateActivityReport().includes(n)))
check('recent lock events are recorded', hub.getRecentEvents(20, 'lock').length === 2)

hub.destroy()
finish('collaboration demo')
