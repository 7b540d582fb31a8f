// Small pure helpers for the benchmarks: percentiles, summaries, ratios and plain-text tables.
// No I/O here (unit-tested in test/unit/bench-stats.test.ts).

export interface Summary {
  n: number;
  min: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/** Percentile of an ascending array, linear interpolation between closest ranks (p in 0..100). */
export function percentileSorted(sorted: ArrayLike<number>, p: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  if (n === 1) return sorted[0]!;
  const q = Math.min(100, Math.max(0, p)) / 100;
  const pos = q * (n - 1);
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  const a = sorted[lo]!;
  const b = sorted[hi]!;
  return a + (b - a) * (pos - lo);
}

export function percentile(values: ArrayLike<number>, p: number): number {
  return percentileSorted(Float64Array.from(values).sort(), p);
}

export function median(values: ArrayLike<number>): number {
  return percentile(values, 50);
}

export function summarize(values: ArrayLike<number>): Summary {
  const s = Float64Array.from(values).sort();
  let sum = 0;
  for (let i = 0; i < s.length; i++) sum += s[i]!;
  return {
    n: s.length,
    min: s.length ? s[0]! : NaN,
    mean: s.length ? sum / s.length : NaN,
    p50: percentileSorted(s, 50),
    p90: percentileSorted(s, 90),
    p99: percentileSorted(s, 99),
    max: s.length ? s[s.length - 1]! : NaN,
  };
}

/** a / b, NaN when b is 0 or either is not finite. */
export function ratio(a: number, b: number): number {
  if (!Number.isFinite(a) || !Number.isFinite(b) || b === 0) return NaN;
  return a / b;
}

/** Rate per second of `count` events in `ms` milliseconds. */
export function perSecond(count: number, ms: number): number {
  return ms > 0 ? (count * 1000) / ms : NaN;
}

/** Least-squares slope of y over x (NaN with fewer than two distinct x). */
export function slope(xs: readonly number[], ys: readonly number[]): number {
  const n = Math.min(xs.length, ys.length);
  if (n < 2) return NaN;
  let mx = 0;
  let my = 0;
  for (let i = 0; i < n; i++) {
    mx += xs[i]!;
    my += ys[i]!;
  }
  mx /= n;
  my /= n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i]! - mx) * (ys[i]! - my);
    den += (xs[i]! - mx) ** 2;
  }
  return den === 0 ? NaN : num / den;
}

/** A number for a table: thousands separated, `digits` decimals below 100, none above 1000. */
export function fmt(v: unknown, digits = 2): string {
  if (v === null || v === undefined) return '-';
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  if (typeof v !== 'number') return String(v);
  if (Number.isNaN(v)) return 'n/a';
  if (!Number.isFinite(v)) return v > 0 ? 'inf' : '-inf';
  const abs = Math.abs(v);
  const d = Number.isInteger(v) || abs >= 1000 ? 0 : abs >= 100 ? Math.min(digits, 1) : digits;
  return v.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
}

export interface Column {
  key: string;
  header?: string;
  digits?: number;
}

/** Plain-text table; numbers right-aligned, text left-aligned. */
export function formatTable(rows: ReadonlyArray<Record<string, unknown>>, columns?: ReadonlyArray<Column | string>): string {
  const cols: Column[] = (columns ?? [...new Set(rows.flatMap((r) => Object.keys(r)))]).map((c) => (typeof c === 'string' ? { key: c } : c));
  const head = cols.map((c) => c.header ?? c.key);
  const cells = rows.map((r) => cols.map((c) => fmt(r[c.key], c.digits)));
  const numeric = cols.map((c) => rows.some((r) => typeof r[c.key] === 'number'));
  const width = cols.map((_, i) => Math.max(head[i]!.length, ...cells.map((row) => row[i]!.length)));
  const line = (vals: string[]) => vals.map((v, i) => (numeric[i] ? v.padStart(width[i]!) : v.padEnd(width[i]!))).join('  ').trimEnd();
  return [line(head), width.map((w) => '-'.repeat(w)).join('  '), ...cells.map(line)].join('\n');
}

export type TargetOp = '>=' | '<=';

export interface TargetCheck {
  name: string;
  value: number;
  op: TargetOp;
  target: number;
  met: boolean;
}

export function checkTarget(name: string, value: number, op: TargetOp, target: number): TargetCheck {
  const met = Number.isFinite(value) && (op === '>=' ? value >= target : value <= target);
  return { name, value, op, target, met };
}

/** Rounds every number in a JSON-able value to `digits` significant decimals (for compact JSON). */
export function roundDeep<T>(v: T, digits = 4): T {
  if (typeof v === 'number') {
    if (!Number.isFinite(v) || Number.isInteger(v)) return v;
    const m = 10 ** Math.max(0, digits - Math.floor(Math.log10(Math.abs(v) || 1)) - 1);
    return (Math.round(v * m) / m) as T;
  }
  if (Array.isArray(v)) return v.map((x) => roundDeep(x, digits)) as T;
  if (v && typeof v === 'object' && !Buffer.isBuffer(v)) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, roundDeep(x, digits)])) as T;
  }
  return v;
}
