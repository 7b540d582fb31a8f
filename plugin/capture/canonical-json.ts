// Canonical JSON (RFC 8785) of plain data, what an AuditEntry is, with V8's native
// JSON.stringify doing the work. JSON.stringify already writes strings and numbers exactly as
// RFC 8785 requires (both are defined on ECMAScript's JSON.stringify); only member order differs:
//  - if every object's keys are already in UTF-16 code-unit order, JSON.stringify(value) is the
//    canonical form: one native call;
//  - otherwise a key-sorted copy is stringified (1.5x faster than the canonicalize package,
//    which builds the string member by member; docs/decisions.md #14).
// Same refusals as canonicalize: non-finite numbers and strings with lone surrogates throw.
// The canonicalize package (the RFC's reference implementation) is the oracle of its tests.

/** String.prototype.isWellFormed (ES2024; Node 20+), typed for this project's ES2023 lib. */
function wellFormed(s: string): boolean {
  return (s as unknown as { isWellFormed(): boolean }).isWellFormed();
}

interface Scan {
  /** Every object's keys are in canonical order already. */
  ok: boolean;
  /** Some key looks like an array index: JS enumerates those first, so a sorted copy would not print sorted. */
  indexKeys: boolean;
}

const INDEX_KEY = /^(?:0|[1-9][0-9]{0,9})$/;

function check(v: unknown, sorted: Scan): void {
  if (v === null) return;
  switch (typeof v) {
    case 'string':
      if (!wellFormed(v)) throw new Error('Lone surrogate is not allowed');
      return;
    case 'number':
      if (!Number.isFinite(v)) throw new Error(Number.isNaN(v) ? 'NaN is not allowed' : 'Infinity is not allowed');
      return;
    case 'object': {
      if (Array.isArray(v)) {
        for (const x of v) check(x, sorted);
        return;
      }
      if (typeof (v as { toJSON?: unknown }).toJSON === 'function') {
        sorted.ok = false; // leave toJSON and friends to the general path
        return;
      }
      let prev: string | undefined;
      for (const k in v as Record<string, unknown>) {
        if (!Object.hasOwn(v as object, k)) continue;
        if (prev !== undefined && !(prev < k)) sorted.ok = false;
        prev = k;
        const c = k.charCodeAt(0);
        if (c >= 48 && c <= 57 && INDEX_KEY.test(k)) sorted.indexKeys = true;
        if (!wellFormed(k)) throw new Error('Lone surrogate is not allowed');
        check((v as Record<string, unknown>)[k], sorted);
      }
      return;
    }
    default:
      return;
  }
}

/** Member-by-member serialization (the path for objects with index-like keys). */
function serialize(v: unknown): string | undefined {
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (typeof (v as { toJSON?: unknown }).toJSON === 'function') return serialize((v as { toJSON(): unknown }).toJSON());
  if (Array.isArray(v)) return `[${v.map((x) => serialize(x) ?? 'null').join(',')}]`;
  const parts: string[] = [];
  for (const k of Object.keys(v).sort()) {
    const s = serialize((v as Record<string, unknown>)[k]);
    if (s !== undefined) parts.push(`${JSON.stringify(k)}:${s}`);
  }
  return `{${parts.join(',')}}`;
}

function sortedCopy(v: unknown): unknown {
  if (v === null || typeof v !== 'object') return v;
  if (typeof (v as { toJSON?: unknown }).toJSON === 'function') return sortedCopy((v as { toJSON(): unknown }).toJSON());
  if (Array.isArray(v)) return v.map(sortedCopy);
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v).sort()) out[k] = sortedCopy((v as Record<string, unknown>)[k]);
  return out;
}

/** Canonical JSON (RFC 8785) of plain JSON data; undefined for undefined (like canonicalize). */
export function canonicalJson(value: unknown): string | undefined {
  const scan: Scan = { ok: true, indexKeys: false };
  check(value, scan);
  if (scan.ok) return JSON.stringify(value);
  return scan.indexKeys ? serialize(value) : JSON.stringify(sortedCopy(value));
}

/** Whether `canonicalJson` takes its one-call path for this value (keys already in order). */
export function isCanonicalOrder(value: unknown): boolean {
  const scan: Scan = { ok: true, indexKeys: false };
  check(value, scan);
  return scan.ok;
}

/** A copy of `value` whose objects have their keys in canonical order. */
export function inCanonicalOrder<T>(value: T): T {
  return sortedCopy(value) as T;
}
