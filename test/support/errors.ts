import { isChorusError } from '@chorus/sync'

/** The ChorusError code `p` rejects with, or 'ok' when it resolves (any other error fails the test). */
export async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p
    return 'ok'
  } catch (e) {
    if (isChorusError(e)) return e.code
    throw e
  }
}
