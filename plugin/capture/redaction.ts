// The rules no configuration overrides: which header and parameter names are never stored,
// and how values that are stored (allow-listed headers and parameters, the path) are cleaned of
// the secrets they are known to carry. Everything here is defence in depth behind the
// allow-lists: an entry holds nothing by default.

/** Headers never stored, even when allow-listed (Kong redacts only the first two). */
export const ALWAYS_DENIED_HEADERS: readonly string[] = [
  'authorization',
  'proxy-authorization',
  'cookie',
  'set-cookie',
  'apikey',
  'x-api-key',
];

/**
 * Names that look like they carry a secret: a header or parameter with such a name is never
 * stored with its value. Deliberately broad (a false positive costs an allow-listed field, a
 * false negative a secret kept forever); refused allow-list names are reported at start.
 */
export const SECRET_NAME = /token|key|pass|pwd|secret|sign|credential|auth|cookie|session|jwt|bearer|saml|otp|ticket|private|(?:^|[-_.])(?:sid|sig|code)(?:$|[-_.])/i;

export const REDACTED_VALUE = '[redacted]';
export const REDACTED_SEGMENT = '{redacted}';

/**
 * A JSON Web Token (JWS/JWE compact form: base64url of a JSON header, '{"' = eyJ) anywhere in a
 * string, also when cut short by truncation. Linear: each match consumes its run.
 */
const JWT = /eyJ[A-Za-z0-9_-]{4,}(?:\.[A-Za-z0-9_-]*){0,4}/g;
/** An Authorization-style value: scheme then credentials. */
const AUTH_SCHEME = /^\s*(?:bearer|basic|digest|negotiate|ntlm|token|apikey|api-key|hoba|mutual|dpop|mac|aws4-hmac-sha256|gnap|privatetoken)(?:\s|$)/i;
/**
 * URL-like text: an authority (//host..., with or without a scheme before it), or an absolute
 * path with a query or fragment. Written to stay linear on hostile input (no optional prefix
 * that backtracks).
 */
const URL_LIKE = /\/\/[^\s"'<>]*|(?:^|(?<=[\s"'<(=,]))\/[^\s"'<>?#/][^\s"'<>?#]*[?#][^\s"'<>]*/g;
/** name=value / name: value pairs inside a value (cookies-like, key-value lists). */
const PAIR = /([A-Za-z0-9_.-]{1,64})(\s*[=:]\s*)("[^"]*"|[^\s;,&"]+)/g;

/** Whether a header must never be stored (case-insensitive). */
export function isDeniedHeader(name: string, keyNames: ReadonlySet<string>): boolean {
  const n = name.toLowerCase();
  return ALWAYS_DENIED_HEADERS.includes(n) || keyNames.has(n) || SECRET_NAME.test(n);
}

/** Whether a query parameter's value must never be stored. */
export function isSecretParam(name: string, keyNames: ReadonlySet<string>): boolean {
  return keyNames.has(name.toLowerCase()) || SECRET_NAME.test(name);
}

/** A URL (from its // or its path) without userinfo, query string and fragment. */
function cleanUrl(u: string): string {
  let s = u;
  const cut = s.search(/[?#]/);
  if (cut >= 0) s = s.slice(0, cut);
  // userinfo: //user:pass@host -> //host
  return s.replace(/^\/\/[^/@]*@/, '//');
}

/**
 * A stored value cleaned of secrets it is known to carry: credentials after an auth scheme,
 * JWTs, query strings / fragments / userinfo of URLs, and values of secret-looking
 * `name=value` pairs.
 */
export function scrubValue(value: string): string {
  if (AUTH_SCHEME.test(value)) return REDACTED_VALUE;
  let s = value.replace(JWT, REDACTED_VALUE);
  s = s.replace(URL_LIKE, (m) => cleanUrl(m));
  s = s.replace(PAIR, (m, name: string, sep: string) => (SECRET_NAME.test(name) ? `${name}${sep}${REDACTED_VALUE}` : m));
  return s;
}

export type PathTemplate = readonly string[];

/** Parses "/a/*\/:redact" into its segments; validated by the config schema. */
export function parsePathTemplate(t: string): PathTemplate {
  return t.replace(/^\/+/, '').split('/');
}

function looksSecretSegment(seg: string): boolean {
  JWT.lastIndex = 0;
  return JWT.test(seg);
}

/**
 * A path (no query string) cleaned of secrets: matrix parameters (";jsessionid=...") are
 * dropped, JWT segments and the :redact segments of the first matching template are replaced by
 * {redacted}.
 */
export function scrubPath(path: string, templates: readonly PathTemplate[]): string {
  const segs = path.split('/').map((seg) => {
    const semi = seg.indexOf(';');
    const s = semi >= 0 ? seg.slice(0, semi) : seg;
    return looksSecretSegment(s) ? REDACTED_SEGMENT : s;
  });
  // segs[0] is '' for an absolute path.
  const rel = segs[0] === '' ? 1 : 0;
  for (const t of templates) {
    if (t.length > segs.length - rel) continue;
    let ok = true;
    for (let i = 0; i < t.length && ok; i++) {
      const want = t[i]!;
      if (want !== '*' && want !== ':redact' && want !== segs[rel + i]) ok = false;
    }
    if (!ok) continue;
    t.forEach((want, i) => {
      if (want === ':redact') segs[rel + i] = REDACTED_SEGMENT;
    });
    break;
  }
  return segs.join('/');
}
