/**
 * Seeded randomness for randomized tests: the same seed gives the same run, and a failing run prints its seed, so
 * `CHORUS_SEED=<n> npx vitest run <file>` replays it.
 */
import * as lib0prng from 'lib0/prng'
import { onTestFailed } from 'vitest'

/** A random source in [0, 1) from lib0's PRNG. */
export function prng(seed: number): () => number {
  const gen = lib0prng.create(seed)
  return () => lib0prng.real53(gen)
}

/**
 * The seed of the running test: CHORUS_SEED when set, else a fresh one, so repeated runs explore. If the test
 * fails, the seed is printed with how to replay it. Call it inside the test.
 */
export function testSeed(): number {
  const fixed = process.env.CHORUS_SEED
  const seed = fixed !== undefined && fixed !== '' ? Number(fixed) : Math.floor(Math.random() * 2 ** 31)
  onTestFailed(() => console.error(`random seed ${seed}: rerun with CHORUS_SEED=${seed}`))
  return seed
}

/** `items` in a random order. */
export function shuffle<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items]
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    ;[out[i], out[j]] = [out[j] as T, out[i] as T]
  }
  return out
}

/** Runs `test` with a random source seeded by `testSeed()`. */
export function seeded<T>(test: (random: () => number, seed: number) => Promise<T>): Promise<T> {
  const seed = testSeed()
  return test(prng(seed), seed)
}
