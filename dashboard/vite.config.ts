// Builds the dashboard into dist/, which the relay serves at `/`. The service worker is a second entry with a
// fixed name (its scope is the folder it is served from), and precache.json lists what it keeps for offline use.
import { defineConfig, type Plugin } from 'vite'

const SERVICE_WORKER = 'sw'

const precacheList = (): Plugin => ({
  name: 'chorus-precache-list',
  generateBundle(_options, bundle) {
    const files = Object.keys(bundle)
      .filter((f) => f !== `${SERVICE_WORKER}.js` && !f.endsWith('.map'))
      .map((f) => `/${f}`)
    this.emitFile({ type: 'asset', fileName: 'precache.json', source: JSON.stringify(files) })
  },
})

export default defineConfig({
  root: import.meta.dirname,
  base: '/',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: true,
    rolldownOptions: {
      input: { index: `${import.meta.dirname}/index.html`, [SERVICE_WORKER]: `${import.meta.dirname}/src/sw.ts` },
      output: {
        entryFileNames: (chunk) => (chunk.name === SERVICE_WORKER ? `${SERVICE_WORKER}.js` : 'assets/[name]-[hash].js'),
      },
    },
  },
  plugins: [precacheList()],
})
