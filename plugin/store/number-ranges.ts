// Sequence numbers as loss records name them (docs/decisions.md #41): sorted, disjoint,
// non-adjacent ranges `[first, last]`, both ends included. Shared by the plugin that writes them
// (pipeline/loss-record.ts) and the auditor's tools that check them (workbench/coverage.ts).

export type NumberRange = [number, number];

/**
 * Adds n to the ranges, merging neighbours; false when it would need a range beyond `max` (then
 * nothing changes: only numbers counted are ever listed).
 */
export function addNumber(ranges: NumberRange[], n: number, max: number): boolean {
  // The first range ending at or after n - 1 (the common case, the next number, is the last one).
  let i = ranges.length;
  while (i > 0 && ranges[i - 1]![1] >= n - 1) i--;
  const r = ranges[i];
  if (r && n >= r[0] && n <= r[1]) return true;
  if (r && n === r[1] + 1) {
    r[1] = n;
    const next = ranges[i + 1];
    if (next && next[0] === n + 1) {
      r[1] = next[1];
      ranges.splice(i + 1, 1);
    }
    return true;
  }
  if (r && n === r[0] - 1) {
    r[0] = n;
    return true;
  }
  if (ranges.length >= max) return false;
  ranges.splice(i, 0, [n, n]);
  return true;
}

/** How many numbers the ranges name. */
export function rangesSize(ranges: ReadonlyArray<readonly [number, number]>): number {
  return ranges.reduce((n, [a, b]) => n + b - a + 1, 0);
}

/** True for at most `max` sorted, disjoint, non-adjacent ranges of safe integers >= 1. */
export function validRanges(v: unknown, max = Infinity): v is NumberRange[] {
  if (!Array.isArray(v) || v.length > max) return false;
  let prev = -1;
  for (const r of v as unknown[]) {
    if (!Array.isArray(r) || r.length !== 2 || !Number.isSafeInteger(r[0]) || !Number.isSafeInteger(r[1])) return false;
    const [a, b] = r as NumberRange;
    if (a < 1 || a > b || (prev >= 0 && a <= prev + 1)) return false;
    prev = b;
  }
  return true;
}
