import { createContext, type ComponentChildren } from 'preact'
import { useCallback, useContext, useEffect, useMemo, useState } from 'preact/hooks'
import { errorMessage } from './errors.ts'
import { Icon } from './icons.tsx'

const HIDE_AFTER_MS = 6000

interface Toasts {
  /** Shows why an action failed. */
  fail: (error: unknown) => void
}

const ToastContext = createContext<Toasts>({ fail: () => undefined })

export const useToasts = (): Toasts => useContext(ToastContext)

interface Shown {
  /** Changes with every toast, so the same message twice restarts the timer. */
  serial: number
  message: string
}

/** Holds the one toast on screen (the newest error replaces an older one) and offers `fail` to everything below. */
export function ToastProvider({ children }: { children: ComponentChildren }) {
  const [shown, setShown] = useState<Shown | undefined>(undefined)
  const fail = useCallback((error: unknown) => setShown((s) => ({ serial: (s?.serial ?? 0) + 1, message: errorMessage(error) })), [])
  const value = useMemo(() => ({ fail }), [fail])

  useEffect(() => {
    if (shown === undefined) return
    const timer = setTimeout(() => setShown(undefined), HIDE_AFTER_MS)
    return () => clearTimeout(timer)
  }, [shown])

  return (
    <ToastContext.Provider value={value}>
      {children}
      <div class="toast-area">
        {shown !== undefined && (
          <div class="toast" data-testid="toast" role="alert" key={shown.serial}>
            <Icon name="alert" size={20} />
            <span class="toast-message">{shown.message}</span>
            <button type="button" class="toast-close" data-testid="toast-dismiss" aria-label="Dismiss" onClick={() => setShown(undefined)}>
              <Icon name="close" size={16} />
            </button>
          </div>
        )}
      </div>
    </ToastContext.Provider>
  )
}

/**
 * Runs async actions keyed by what they act on (a task id, a form): `pending` says which are running, so their
 * buttons can be disabled, and a failure becomes a toast instead of an unhandled rejection.
 */
export function useActions(): { pending: ReadonlySet<string>; run: (key: string, action: () => unknown) => void } {
  const { fail } = useToasts()
  const [pending, setPending] = useState<ReadonlySet<string>>(new Set())
  const run = useCallback(
    (key: string, action: () => unknown) => {
      const update = (add: boolean): void =>
        setPending((p) => {
          const next = new Set(p)
          if (add) next.add(key)
          else next.delete(key)
          return next
        })
      update(true)
      void (async () => {
        try {
          await action()
        } catch (e) {
          fail(e)
        } finally {
          update(false)
        }
      })()
    },
    [fail],
  )
  return { pending, run }
}
