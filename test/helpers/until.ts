// Waits for a condition instead of a fixed time: polls `fn` until it returns a value (anything
// but undefined, null or false), failing with `what` after a generous deadline (a loaded machine
// is slow, never wrong).
export async function until<T>(what: string, fn: () => Promise<T | undefined | null | false> | T | undefined | null | false, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== null && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Waits for `p` or `ms`, whichever comes first (a rejection of `p` passes through), then clears
 * the timer: a timer left behind keeps the test's process alive after its last test
 * (exit-watchdog.ts).
 */
export async function settleWithin(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([p, new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
  } finally {
    clearTimeout(timer);
  }
}
