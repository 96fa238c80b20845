/** Tiny assertion helpers for examples: each example exits 0 only when its story worked. */
let failures = 0

export const check = (what: string, ok: boolean): void => {
  if (!ok) failures++
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`)
}

export const finish = (name: string): void => {
  if (failures > 0) {
    console.error(`${name}: ${failures} check(s) failed`)
    process.exit(1)
  }
  console.log(`${name}: all checks passed`)
}
