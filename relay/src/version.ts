import { readFileSync } from 'node:fs'

/** The version in a package.json, or undefined when it cannot be read. */
export function packageVersionAt(url: URL): string | undefined {
  try {
    const pkg: unknown = JSON.parse(readFileSync(url, 'utf8'))
    return typeof pkg === 'object' && pkg !== null && 'version' in pkg && typeof pkg.version === 'string' ? pkg.version : undefined
  } catch {
    return undefined
  }
}

/** The relay package's version, as `/capabilities` and `/dependencies` report it. */
export const RELAY_VERSION = packageVersionAt(new URL('../package.json', import.meta.url)) ?? '0.0.0'
