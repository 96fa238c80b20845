/** Wakes whoever waits so a condition is rechecked on events, not on a timer (tests wait on this, never sleep). */
export class Signal {
  private waiters: Array<() => void> = []
  readonly notify = (): void => {
    const waiters = this.waiters
    this.waiters = []
    for (const wake of waiters) wake()
  }
  next(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve))
  }
}
