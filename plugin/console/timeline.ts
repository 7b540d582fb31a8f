// Request volume and failures over a time range, in buckets, counted by the auditor's index
// (the same rows and filters as search): all requests, 4xx, 5xx, and the 401/403 Kong answered
// itself (outcome.source = kong: an authentication or authorisation refusal at the gateway).
import type { AuditIndex } from '../workbench/audit-index.js';
import type { SqlCondition } from '../workbench/filters.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const SECOND = 1_000;
const SIZES = [SECOND, 5 * SECOND, 10 * SECOND, 30 * SECOND, MINUTE, 5 * MINUTE, 15 * MINUTE, 30 * MINUTE, HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 7 * DAY, 30 * DAY, 365 * DAY];
/** At most this many buckets. */
export const MAX_BUCKETS = 48;

export interface Bucket {
  /** Bucket start and end (exclusive), RFC 3339. */
  from: string;
  to: string;
  total: number;
  status_4xx: number;
  status_5xx: number;
  kong_401_403: number;
}

export interface Timeline {
  from: string | null;
  to: string | null;
  bucket_ms: number;
  buckets: Bucket[];
}

/** The smallest bucket size that covers [from, to) in at most MAX_BUCKETS buckets. */
export function bucketSize(from: number, to: number): number {
  return SIZES.find((s) => Math.ceil((to - from) / s) <= MAX_BUCKETS) ?? SIZES[SIZES.length - 1]!;
}

const and = (c: SqlCondition, where: string, params: SqlCondition['params']): SqlCondition => ({ where: `(${c.where}) AND ${where}`, params: [...c.params, ...params] });

/**
 * The timeline of `cond` over [since, until): without `since`, from the first matching request;
 * without `until`, up to `now`.
 */
export function timeline(index: AuditIndex, cond: SqlCondition, range: { since?: number; until?: number }, now = Date.now()): Timeline {
  let since = range.since;
  if (since === undefined) {
    const first = index.query(and(cond, 'time IS NOT NULL', []), 1).next();
    if (first.done) return { from: null, to: null, bucket_ms: 0, buckets: [] };
    since = first.value.time!;
  }
  let until = range.until ?? Math.max(now, since + 1);
  if (until <= since) until = since + 1;
  const size = bucketSize(since, until);
  const start = Math.floor(since / size) * size;
  // One pass over the range (AuditIndex.buckets), bucketed from `start`; empty buckets filled in.
  const counted = new Map(index.buckets(cond, since, until, size, start).map((b) => [b.bucket, b]));
  const buckets: Bucket[] = [];
  for (let b = start, i = 0; b < until; b += size, i++) {
    const c = counted.get(i);
    buckets.push({
      from: new Date(Math.max(b, since)).toISOString(),
      to: new Date(Math.min(b + size, until)).toISOString(),
      total: c?.total ?? 0,
      status_4xx: c?.c4xx ?? 0,
      status_5xx: c?.c5xx ?? 0,
      kong_401_403: c?.kong ?? 0,
    });
  }
  return { from: new Date(since).toISOString(), to: new Date(until).toISOString(), bucket_ms: size, buckets };
}
