// The floor for showing a space from IndexedDB: y-indexeddb loads the dashboard's own database into a bare Y.Doc,
// and the page shows how many lines (one per message) the messages log holds. No Chorus code, no UI framework.
import * as Y from 'yjs'
import { IndexeddbPersistence } from 'y-indexeddb'

const database = new URLSearchParams(location.search).get('db') ?? ''
const doc = new Y.Doc()
const persistence = new IndexeddbPersistence(database, doc)
void persistence.whenSynced.then(() => {
  const log = doc.getText('messages').toJSON()
  let lines = 0
  for (let i = log.indexOf('\n'); i !== -1; i = log.indexOf('\n', i + 1)) lines++
  const element = document.getElementById('count') as HTMLElement
  element.textContent = String(lines)
  element.dataset.loaded = 'true'
  ;(window as { shownAt?: number }).shownAt = performance.now()
})
