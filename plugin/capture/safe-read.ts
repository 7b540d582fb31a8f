// Defensive readers for untrusted input: they never throw, bound string lengths and drop
// characters that have no business in an audit record (control characters, lone surrogates).

export const MAX_FIELD_LENGTH = 1024;
export const MAX_PATH_LENGTH = 2048;

// C0/C1 controls and unpaired UTF-16 surrogates (what invalid UTF-8 decodes around).
const UNSAFE = /[\u0000-\u001f\u007f-\u009f]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A clean, bounded string, or null when the value is not a non-empty string or number. */
export function str(v: unknown, max = MAX_FIELD_LENGTH): string | null {
  let s: string;
  if (typeof v === 'string') s = v;
  else if (typeof v === 'number' && Number.isFinite(v)) s = String(v);
  else return null;
  s = s.replace(UNSAFE, '\ufffd');
  if (s.length > max) s = s.slice(0, max) + '…';
  return s.length ? s : null;
}

/** A finite, non-negative integer (numbers or numeric strings), or null. */
export function int(v: unknown): number | null {
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) return null;
  return Math.round(n);
}

/** A header value as Kong serializes it (string, or array for repeated headers): first value. */
export function header(headers: unknown, name: string): string | null {
  if (!isRecord(headers)) return null;
  const v = Object.prototype.hasOwnProperty.call(headers, name) ? headers[name] : undefined;
  if (Array.isArray(v)) return str(v[0]);
  return str(v);
}
