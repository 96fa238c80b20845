import { isChorusError } from '@chorus/web'

/** The sentence to show for a failed action. ChorusError messages are written for people already. */
export const errorMessage = (e: unknown): string => {
  if (isChorusError(e)) return e.message
  if (e instanceof Error && e.message.length > 0) return e.message
  return 'Something went wrong.'
}
