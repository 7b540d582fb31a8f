// A hand-written fake clock for unit tests of timer-driven code: while installed, setTimeout
// and clearTimeout are the clock's, and time moves only when the test advances it. A test then
// asserts what happens before and at a delay without depending on how fast the machine is.
// Install it in serial tests only (ava runs those alone), and uninstall in a teardown.

interface FakeTimer {
  id: number;
  at: number;
  fn: () => void;
  unref(): FakeTimer;
  ref(): FakeTimer;
  hasRef(): boolean;
  refresh(): FakeTimer;
  [Symbol.toPrimitive](): number;
}

export class FakeClock {
  now = 0;
  private nextId = 1;
  private timers = new Map<number, FakeTimer>();
  private readonly realSet = globalThis.setTimeout;
  private readonly realClear = globalThis.clearTimeout;

  install(): this {
    const clock = this;
    globalThis.setTimeout = ((fn: (...a: unknown[]) => void, ms?: number, ...args: unknown[]) => clock.add(() => fn(...args), ms ?? 0)) as unknown as typeof setTimeout;
    globalThis.clearTimeout = ((t: unknown) => {
      if (t && typeof t === 'object' && 'id' in t && clock.timers.get((t as FakeTimer).id) === t) clock.timers.delete((t as FakeTimer).id);
      else clock.realClear(t as NodeJS.Timeout);
    }) as typeof clearTimeout;
    return this;
  }

  uninstall(): void {
    globalThis.setTimeout = this.realSet;
    globalThis.clearTimeout = this.realClear;
  }

  private add(fn: () => void, ms: number): FakeTimer {
    const timer: FakeTimer = {
      id: this.nextId++,
      at: this.now + Math.max(1, ms),
      fn,
      unref: () => timer,
      ref: () => timer,
      hasRef: () => true,
      refresh: () => timer,
      [Symbol.toPrimitive]: () => timer.id,
    };
    this.timers.set(timer.id, timer);
    return timer;
  }

  /** Timers not yet fired. */
  get pending(): number {
    return this.timers.size;
  }

  /**
   * Moves time forward by `ms`, firing due timers in order; after each one the microtasks and
   * immediates it caused run (real setImmediate), so promise chains settle as they would.
   */
  async advance(ms: number): Promise<void> {
    const end = this.now + ms;
    for (;;) {
      const due = [...this.timers.values()].filter((t) => t.at <= end).sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (!due) break;
      this.timers.delete(due.id);
      this.now = due.at;
      due.fn();
      await settle();
    }
    this.now = end;
    await settle();
  }
}

/** Resolves once every microtask queued so far (and the ones they queue) has run. */
export function settle(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}
