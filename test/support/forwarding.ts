/**
 * An object that stands for whatever `current()` returns when it is used: a fixture made per test (or per file)
 * can then be a module constant, declared once beside the hooks that make and remove it.
 */
export function forwarding<T extends object>(current: () => T): T {
  return new Proxy({} as T, {
    get(_target, key) {
      const target = current()
      const value: unknown = Reflect.get(target, key, target)
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value
    },
  })
}
