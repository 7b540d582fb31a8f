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
  if (s.length > max) {
    // Never cut a surrogate pair in half: a lone surrogate is not valid in canonical JSON.
    const cut = /[\ud800-\udbff]/.test(s[max - 1]!) ? max - 1 : max;
    s = s.slice(0, cut) + '…';
  }
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

/** Every value of a header (Kong sends repeated headers as arrays), clean and bounded. */
export function headerValues(headers: unknown, name: string, maxValues = 16, max = MAX_FIELD_LENGTH): string[] {
  if (!isRecord(headers) || !Object.prototype.hasOwnProperty.call(headers, name)) return [];
  const v = headers[name];
  const list = Array.isArray(v) ? v.slice(0, maxValues) : [v];
  return list.map((x) => str(x, max)).filter((x): x is string => x !== null);
}

export const MAX_PROBLEMS = 32;

/**
 * A capture problem safe to store and log: bounded, and never quoting input. V8's JSON.parse
 * messages can quote the text around the error ("Unexpected token 'x', "...apikey..." is not
 * valid JSON"): only the kind of error and its position are kept.
 */
export function safeProblem(problem: string): string {
  const m = /^(kong\.log\.serialize returned invalid JSON): (.*)$/s.exec(problem);
  if (m) {
    const msg = m[2]!;
    // V8 quotes input only between quotes; the fixed text before the first quote is kept.
    const kind = msg.split(/['"`]|\s+in JSON|\s+at position/)[0]!.replace(/[^A-Za-z -]/g, '').replace(/\s+(or)?\s*$/, '').slice(0, 80).trim() || 'syntax error';
    const pos = /at position (\d+)/.exec(msg);
    return `${m[1]}: ${kind}${pos ? ` at position ${pos[1]}` : ''}`;
  }
  return str(problem, 300) ?? '';
}

/** Problems made safe in place and bounded to MAX_PROBLEMS (the last one says how many more). */
export function boundProblems(problems: string[]): void {
  for (let i = 0; i < problems.length; i++) problems[i] = safeProblem(problems[i]!);
  if (problems.length > MAX_PROBLEMS) {
    const more = problems.length - (MAX_PROBLEMS - 1);
    problems.splice(MAX_PROBLEMS - 1, problems.length, `${more} more problems`);
  }
}
