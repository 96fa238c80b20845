/**
 * The command line every benchmark file reads: `--quick`, `--only=a,b` (sections to run), `--name` switches and
 * `--name=value` options. Unknown flags are left to each file (`npm run bench` passes the same ones to all).
 */
export interface BenchArgs<S extends string> {
  readonly quick: boolean
  /** The sections named by `--only`, or undefined for all. */
  readonly only: ReadonlySet<string> | undefined
  readonly want: (section: S) => boolean
  /** Whether `--name` was given. */
  readonly flag: (name: string) => boolean
  /** The value of `--name=value`, if given. */
  readonly value: (name: string) => string | undefined
}

export function benchArgs<S extends string>(argv: readonly string[] = process.argv.slice(2)): BenchArgs<S> {
  const value = (name: string): string | undefined => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3)
  const onlyArg = value('only')
  const only = onlyArg === undefined ? undefined : new Set(onlyArg.split(','))
  return {
    quick: argv.includes('--quick'),
    only,
    want: (section) => only === undefined || only.has(section),
    flag: (name) => argv.includes(`--${name}`),
    value,
  }
}
