// Type-aware lint for the whole workspace (import cycles, type-only imports included, are checked by dpdm in `npm run lint`).
// Code that runs in browsers (@chorus/web, the dashboard, and the parts of @chorus/sync they load) may not import
// Node's modules.
import { builtinModules } from 'node:module'
import tseslint from 'typescript-eslint'

const crossPackage = { group: ['../../*/src/*', '../../../packages/*'], message: 'Import another package by its name, not by a relative path.' }
const browserOnly = 'Browser code: Node modules (and the Node-only parts of Chorus) are not available here.'
// Node's modules by exact name: as a pattern, `events` or `stream` would also match a folder of that name.
const nodeModules = builtinModules.filter((m) => !m.startsWith('_') && !m.startsWith('node:')).map((name) => ({ name, message: browserOnly }))
const nodeOnly = { group: ['node:*', '@chorus/sync/sqlite', '@chorus/sync/stream', '@chorus/p2p', '@chorus/relay'], message: browserOnly }

export default tseslint.config(
  { ignores: ['**/node_modules/**', '**/dist/**', 'coverage/**'] },
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-imports': ['error', { patterns: [crossPackage] }],
    },
  },
  {
    files: ['packages/web/src/**/*.ts', 'dashboard/src/**/*.{ts,tsx}', 'packages/sync/src/**/*.ts'],
    ignores: ['packages/sync/src/store/sqlite-store.ts', 'packages/sync/src/transports/stream-transport.ts', 'packages/sync/src/testing/**'],
    rules: {
      'no-restricted-imports': ['error', { paths: nodeModules, patterns: [crossPackage, nodeOnly] }],
    },
  },
  {
    files: ['**/*.js'],
    extends: [tseslint.configs.disableTypeChecked],
  },
)
