// The console's query string as the workbench's filters: the same names as the CLI's options
// (client_ip for --client-ip) and the same parsers, so a bad value gets the CLI's message.
import {
  FilterError, parseClientIp, parseLimit, parseMethod, parseNonEmpty, parsePathPrefix, parseResult, parseStatus, parseTraceId, timeParser,
  type FilterOptions, type SqlCondition,
} from '../workbench/filters.js';

const PARSERS: ReadonlyArray<[param: string, option: keyof FilterOptions, parse: (v: string, now: number) => unknown]> = [
  ['consumer', 'consumer', parseNonEmpty],
  ['subject', 'subject', parseNonEmpty],
  ['credential', 'credential', parseNonEmpty],
  ['route', 'route', parseNonEmpty],
  ['service', 'service', parseNonEmpty],
  ['method', 'method', parseMethod],
  ['path', 'path', parsePathPrefix],
  ['status', 'status', parseStatus],
  ['result', 'result', parseResult],
  ['client_ip', 'clientIp', parseClientIp],
  ['node', 'node', parseNonEmpty],
  ['trace', 'trace', parseTraceId],
  ['since', 'since', (v, now) => timeParser(now)(v)],
  ['until', 'until', (v, now) => timeParser(now)(v)],
];

/** The filters set in `q` (empty values are unset); throws FilterError naming the parameter. */
export function filtersOf(q: URLSearchParams, now = Date.now()): FilterOptions {
  const o: Record<string, unknown> = {};
  for (const [param, option, parse] of PARSERS) {
    const v = q.get(param);
    if (v === null || v === '') continue;
    try {
      o[option] = parse(v, now);
    } catch (e) {
      if (e instanceof FilterError) throw new FilterError(`${param}: ${e.message}`);
      throw e;
    }
  }
  return o as FilterOptions;
}

export function limitOf(q: URLSearchParams, fallback: number, max: number): number {
  const v = q.get('limit');
  if (v === null || v === '') return fallback;
  try {
    return Math.min(parseLimit(v), max);
  } catch (e) {
    throw new FilterError(`limit: ${(e as Error).message}`);
  }
}

/** A page's position: after the row at (request time, rowid), in the index's order (nulls first). */
export interface Cursor {
  time: number | null;
  rowid: number;
}

export function cursorOf(q: URLSearchParams): Cursor | undefined {
  const v = q.get('after');
  if (!v) return undefined;
  const m = /^(null|\d{1,16}):(\d{1,16})$/.exec(v);
  if (!m) throw new FilterError('after: expected a cursor from a previous page');
  return { time: m[1] === 'null' ? null : Number(m[1]), rowid: Number(m[2]) };
}

export const cursorText = (c: Cursor) => `${c.time ?? 'null'}:${c.rowid}`;

/** `cond` and "after the cursor" (keyset paging: no OFFSET, a deep page costs as much as the first). */
export function afterCursor(cond: SqlCondition, c: Cursor | undefined): SqlCondition {
  if (!c) return cond;
  const after = c.time === null ? '((time IS NULL AND rowid > ?) OR time IS NOT NULL)' : '(time > ? OR (time = ? AND rowid > ?))';
  const params = c.time === null ? [c.rowid] : [c.time, c.time, c.rowid];
  return { where: `(${cond.where}) AND ${after}`, params: [...cond.params, ...params] };
}
