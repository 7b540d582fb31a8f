// The filters of `search` and `export`: checked when parsed (a bad value is a usage error that
// says what is accepted), then turned into one SQL condition over the index's columns.
import type { SQLInputValue } from 'node:sqlite';
import type { PseudonymKey } from '../capture/pseudonyms.js';
import { candidates, storedIpText } from './pseudonym-search.js';
import { traceKey } from './index-row.js';
import { parseTimeSpec } from './time-spec.js';

/** The filter options as commander hands them over (already checked by the parsers below). */
export interface FilterOptions {
  consumer?: string;
  subject?: string;
  credential?: string;
  route?: string;
  service?: string;
  method?: string;
  path?: string;
  status?: StatusFilter[];
  result?: 'success' | 'failure';
  clientIp?: string;
  node?: string;
  trace?: string;
  since?: number;
  until?: number;
}

/** One status code, or a class (4xx: 400-499). */
export type StatusFilter = { code: number } | { from: number; to: number };

export class FilterError extends Error {
  override readonly name = 'FilterError';
}

// Parsers for the options: each returns the checked value or throws FilterError with what is accepted.

export function parseStatus(text: string): StatusFilter[] {
  return text.split(',').map((part) => {
    const s = part.trim().toLowerCase();
    if (/^[1-5]\d\d$/.test(s)) return { code: Number(s) };
    if (/^[1-5]xx$/.test(s)) return { from: Number(s[0]) * 100, to: Number(s[0]) * 100 + 99 };
    throw new FilterError('expected status codes or classes, comma-separated: 401, 4xx, 401,403');
  });
}

export function parseMethod(text: string): string {
  if (!/^[A-Za-z]{1,32}$/.test(text)) throw new FilterError('expected an HTTP method such as GET or post');
  return text.toUpperCase();
}

export function parsePathPrefix(text: string): string {
  if (!text.startsWith('/')) throw new FilterError('expected a path prefix starting with "/" (e.g. /api/payments)');
  return text;
}

export function parseResult(text: string): 'success' | 'failure' {
  if (text !== 'success' && text !== 'failure') throw new FilterError('expected success or failure');
  return text;
}

export function parseTraceId(text: string): string {
  const t = text.toLowerCase();
  if (!/^[0-9a-f]{32}$/.test(t)) throw new FilterError('expected a W3C trace id (32 hex characters)');
  return t;
}

export function parseClientIp(text: string): string {
  // Checked here; the stored form (canonical, or a network when truncated) is taken at query time.
  if (storedIpText(text) === null) throw new FilterError('expected an IP address or a network as stored when truncated (203.0.113.7, 2001:db8::1, 203.0.113.0/24)');
  return text;
}

export function timeParser(now: number): (text: string) => number {
  return (text) => {
    const t = parseTimeSpec(text, now);
    if (t instanceof Error) throw new FilterError(t.message);
    return t;
  };
}

export function parseLimit(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < 1) throw new FilterError('expected a whole number >= 1');
  return n;
}

export function parseNonEmpty(text: string): string {
  if (!text) throw new FilterError('expected a non-empty value');
  return text;
}

/** A SQL condition over the index's columns (`TRUE` when no filter is set) and its parameters. */
export interface SqlCondition {
  where: string;
  params: SQLInputValue[];
}

/** `*`, `?` and `[` are GLOB's own: each is matched literally inside brackets. */
const globLiteral = (s: string) => s.replace(/[*?[]/g, (c) => `[${c}]`);

/**
 * The condition of a set of filters (all must hold). Pseudonymisable fields (consumer username
 * and custom id, subject, client address) match the clear value or, with `key`, its pseudonym.
 */
export function filterCondition(f: FilterOptions, key?: PseudonymKey): SqlCondition {
  const parts: string[] = [];
  const params: SQLInputValue[] = [];
  const anyOf = (alternatives: Array<[column: string, values: readonly SQLInputValue[]]>) => {
    parts.push(`(${alternatives.map(([c, vs]) => `${c} IN (${vs.map(() => '?').join(', ')})`).join(' OR ')})`);
    for (const [, vs] of alternatives) params.push(...vs);
  };
  if (f.consumer !== undefined) {
    // The index's consumers table maps each consumer (id, username, custom id) to the key its rows
    // carry, and one index on that key serves whichever of the three is named (audit-index.ts).
    const names: Array<[string, readonly string[]]> = [
      ['id', [f.consumer]],
      ['username', candidates(key, 'consumer_username', f.consumer)],
      ['custom_id', candidates(key, 'consumer_custom_id', f.consumer)],
    ];
    parts.push(`consumer_key IN (SELECT key FROM consumers WHERE ${names.map(([c, vs]) => `${c} IN (${vs.map(() => '?').join(', ')})`).join(' OR ')})`);
    for (const [, vs] of names) params.push(...vs);
  }
  if (f.subject !== undefined) anyOf([['subject', candidates(key, 'subject', f.subject)]]);
  if (f.credential !== undefined) anyOf([['credential_id', [f.credential]]]);
  if (f.route !== undefined) anyOf([['route_id', [f.route]], ['route_name', [f.route]]]);
  if (f.service !== undefined) anyOf([['service_id', [f.service]], ['service_name', [f.service]]]);
  if (f.method !== undefined) anyOf([['method', [f.method]]]);
  if (f.path !== undefined) {
    parts.push('path GLOB ?');
    params.push(`${globLiteral(f.path)}*`);
  }
  if (f.status?.length) {
    parts.push(`(${f.status.map((s) => ('code' in s ? 'status = ?' : 'status BETWEEN ? AND ?')).join(' OR ')})`);
    for (const s of f.status) params.push(...('code' in s ? [s.code] : [s.from, s.to]));
  }
  if (f.result !== undefined) anyOf([['result', [f.result]]]);
  if (f.clientIp !== undefined) {
    const stored = storedIpText(f.clientIp)!;
    anyOf([['client_ip', [...new Set(candidates(key, 'client_ip', stored))]]]);
  }
  if (f.node !== undefined) anyOf([['node_id', [f.node]]]);
  if (f.trace !== undefined) {
    // The index's trace key narrows to a few rows; the full id decides. (An id that is not a W3C
    // trace id, which --trace refuses, has no key: compared whole.)
    const k = traceKey(f.trace);
    if (k === null) anyOf([['trace_id', [f.trace]]]);
    else {
      parts.push('trace_key = ? AND trace_id = ?');
      params.push(k, f.trace);
    }
  }
  if (f.since !== undefined) {
    parts.push('time >= ?');
    params.push(f.since);
  }
  if (f.until !== undefined) {
    parts.push('time < ?');
    params.push(f.until);
  }
  return { where: parts.length ? parts.join(' AND ') : 'TRUE', params };
}

/** Filters that cannot match together, caught before searching. */
export function checkFilters(f: FilterOptions): void {
  if (f.since !== undefined && f.until !== undefined && f.since >= f.until) {
    throw new FilterError(`--since (${new Date(f.since).toISOString()}) must be before --until (${new Date(f.until).toISOString()})`);
  }
}
