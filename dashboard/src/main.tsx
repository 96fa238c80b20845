import { render } from 'preact'
import { App } from './app.tsx'

// The service worker keeps the app itself for offline use; without one (or if it fails) the app still works online.
if ('serviceWorker' in navigator) {
  navigator.serviceWorker.register('/sw.js').catch(() => undefined)
}

render(<App />, document.getElementById('app') as HTMLElement)
