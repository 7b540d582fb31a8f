// Serialized log -> AuditEntry. Pure apart from the id and the fallback clock, which are
// injected, so it is deterministic in tests. Never throws: whatever is missing is recorded as
// null and noted in capture_problems. Minimal by default: what goes beyond who/what/when/where/
// outcome is decided by the privacy policy (allow-lists, pseudonyms, truncation), and the rules
// of redaction.ts keep secrets out whatever the policy says.
import type { AuditEntry, AuditEntityRef, PseudonymizedField, StoredHeaders, StoredQuery } from './audit-entry.js';
import type { KongSerializedLog } from './kong-log.js';
import { boundProblems, header, headerValues, int, isRecord, str, MAX_FIELD_LENGTH, MAX_PATH_LENGTH } from './safe-read.js';
import { parseTraceparent } from './traceparent.js';
import { formatIp, parseIp, truncatedIp, type IpAddress } from './ip-address.js';
import { pseudonym, type PseudonymDomain } from './pseudonyms.js';
import { DEFAULT_POLICY, type PrivacyPolicy } from './privacy-policy.js';
import { isSecretParam, REDACTED_VALUE, scrubPath, scrubValue } from './redaction.js';

/** Most addresses kept from X-Forwarded-For / Forwarded. */
export const MAX_FORWARDED = 16;
/** Most values kept of one repeated query parameter. */
export const MAX_QUERY_VALUES = 16;

export interface CaptureContext {
  /** A fresh audit id (UUIDv7). */
  id: string;
  /** Now, ms since epoch: used when Kong's started_at is missing. */
  now: number;
  nodeId: string | null;
  hostname: string | null;
  /** The entry's number in its node's sequence (docs/decisions.md #30); null when it has none. */
  sequence?: { number: number; stream: string } | null;
}

function entityRef(v: unknown): AuditEntityRef | null {
  if (!isRecord(v)) return null;
  const id = str(v.id);
  const name = str(v.name);
  return id || name ? { id, name } : null;
}

/** Path of a URI or URL, without query string or fragment. */
function pathOf(uri: string | null): string | null {
  if (!uri) return null;
  let p = uri;
  const scheme = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i.exec(p);
  if (scheme) p = p.slice(scheme[0].length) || '/';
  const cut = p.search(/[?#]/);
  if (cut >= 0) p = p.slice(0, cut);
  return str(p, MAX_PATH_LENGTH);
}

function urlParts(url: string | null): { scheme: string | null; host: string | null } {
  if (!url) return { scheme: null, host: null };
  // Userinfo (user:password@) is skipped: it never reaches the entry.
  const m = /^([a-z][a-z0-9+.-]*):\/\/(?:[^/?#@]*@)?(\[[^\]/?#@]*\]|[^/?#:@]*)/i.exec(url);
  return m ? { scheme: str(m[1]!.toLowerCase()), host: str(m[2]) } : { scheme: null, host: null };
}

/**
 * How much of a value is cleaned before it is bounded to its stored length: a secret whose
 * recognisable shape (scheme, '?', '@', JWT header) lies within the window is removed even when
 * truncation would have cut it in half; the window bounds the work on hostile input.
 */
export const SCRUB_WINDOW = 4096;

/** A stored string value: cleaned of known secret shapes, then bounded. */
function cleanValue(v: string, max = MAX_FIELD_LENGTH): string {
  return str(scrubValue(v.length > SCRUB_WINDOW ? v.slice(0, SCRUB_WINDOW) : v), max) ?? '';
}

/** Canonical member order (UTF-16 code units, as RFC 8785 sorts). */
const byName = (a: [string, unknown], b: [string, unknown]): number => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);

function allowedHeaders(headers: unknown, names: readonly string[]): StoredHeaders | null {
  if (names.length === 0) return null;
  const out: Array<[string, string]> = [];
  for (const name of names) {
    const values = headerValues(headers, name, 16, SCRUB_WINDOW);
    if (values.length) out.push([name, cleanValue(values.join(', '))]);
  }
  // fromEntries defines own properties: a name like __proto__ cannot touch a prototype.
  return Object.fromEntries(out.sort(byName));
}

function queryValue(v: unknown, secret: boolean): string | boolean | null {
  if (v === true) return true;
  if (typeof v !== 'string' && typeof v !== 'number') return null;
  if (secret) return REDACTED_VALUE;
  const s = str(v, SCRUB_WINDOW);
  return s === null ? '' : cleanValue(s);
}

function allowedQuery(qs: unknown, policy: PrivacyPolicy): StoredQuery | null {
  if (policy.queryParams.length === 0) return null;
  const out: Array<[string, StoredQuery[string]]> = [];
  if (!isRecord(qs)) return {};
  for (const name of policy.queryParams) {
    if (!Object.prototype.hasOwnProperty.call(qs, name)) continue;
    const secret = isSecretParam(name, policy.keyNames);
    const v = qs[name];
    if (Array.isArray(v)) {
      const list = v.slice(0, MAX_QUERY_VALUES).map((x) => queryValue(x, secret)).filter((x): x is string | boolean => x !== null);
      if (list.length) out.push([name, list]);
    } else {
      const one = queryValue(v, secret);
      if (one !== null) out.push([name, one]);
    }
  }
  return Object.fromEntries(out.sort(byName));
}

/** Addresses of X-Forwarded-For and Forwarded (for=...), parsed strictly; others dropped. */
function forwardedAddresses(headers: unknown): IpAddress[] {
  const out: IpAddress[] = [];
  const add = (token: string) => {
    if (out.length >= MAX_FORWARDED) return;
    let t = token.trim().replace(/^"|"$/g, '');
    const v4port = /^(\d{1,3}(?:\.\d{1,3}){3}):\d{1,5}$/.exec(t);
    if (v4port) t = v4port[1]!;
    const v6port = /^\[([^\]]+)\](?::\d{1,5})?$/.exec(t);
    if (v6port) t = v6port[1]!;
    const ip = parseIp(t);
    if (ip) out.push(ip);
  };
  for (const v of headerValues(headers, 'x-forwarded-for')) for (const t of v.split(',')) add(t);
  for (const v of headerValues(headers, 'forwarded')) {
    for (const part of v.split(/[,;]/)) {
      const m = /^\s*for\s*=\s*(.*)$/i.exec(part);
      if (m) add(m[1]!);
    }
  }
  return out;
}

function pseudonymizedFields(policy: PrivacyPolicy): PseudonymizedField[] {
  const out: PseudonymizedField[] = [];
  if (!policy.key) return out;
  const p = policy.pseudonymize;
  if (p.has('consumer_username')) out.push('who.consumer.username');
  if (p.has('consumer_custom_id')) out.push('who.consumer.custom_id');
  if (p.has('client_ip')) out.push('who.client_ip', 'where.client_ip');
  if (p.has('forwarded_for') && policy.recordForwardedFor) out.push('who.forwarded_for');
  if (p.has('subject') && policy.subjectHeaders.length) out.push('who.subject.value');
  return out;
}

function traceIdFromKong(v: unknown): string | null {
  // Kong's tracing plugins put {w3c: "...", b3: "...", ...} or a string here.
  const candidates = typeof v === 'string' ? [v] : isRecord(v) ? [v.w3c, v.otel, v.b3, v.datadog, v.jaeger, v.ot] : [];
  for (const c of candidates) {
    const s = typeof c === 'string' ? c.toLowerCase() : '';
    if (/^[0-9a-f]{32}$/.test(s) && !/^0+$/.test(s)) return s;
    if (/^[0-9a-f]{16}$/.test(s) && !/^0+$/.test(s)) return s.padStart(32, '0');
  }
  return null;
}

export function buildAuditEntry(log: KongSerializedLog | null, ctx: CaptureContext, problems: string[] = [], policy: PrivacyPolicy = DEFAULT_POLICY): AuditEntry {
  const key = policy.key;
  const pseudo = (field: Parameters<PrivacyPolicy['pseudonymize']['has']>[0], domain: PseudonymDomain, v: string | null): string | null =>
    v !== null && key && policy.pseudonymize.has(field) ? pseudonym(key, domain, v) : v;
  /** An address as stored: truncated when configured, then pseudonymised when configured. */
  const storedIp = (ip: IpAddress, field: 'client_ip' | 'forwarded_for', original: string | null): string => {
    const truncated = policy.ipv4Prefix < 32 || policy.ipv6Prefix < 128;
    // Kong's own text of the address is kept as it is when it is a plain address (no zone id,
    // brackets or port: nothing but the address reaches the entry).
    const plain = original !== null && /^[0-9A-Fa-f:.]+$/.test(original) ? original : formatIp(ip);
    const text = truncated ? truncatedIp(ip, policy.ipv4Prefix, policy.ipv6Prefix) : plain;
    // One address, one pseudonym, whatever its textual form.
    return key && policy.pseudonymize.has(field) ? pseudonym(key, 'ip', truncated ? text : formatIp(ip)) : text;
  };

  const l: KongSerializedLog = isRecord(log) ? log : {};
  const req = isRecord(l.request) ? l.request : {};
  const res = isRecord(l.response) ? l.response : {};
  const lat = isRecord(l.latencies) ? l.latencies : {};

  let startedAt = int(l.started_at);
  let timeSource: AuditEntry['time_source'] = 'kong';
  if (startedAt === null || startedAt > 8.64e15) {
    if (log) problems.push('started_at missing or invalid; using the plugin clock');
    startedAt = ctx.now;
    timeSource = 'plugin';
  }

  const consumer = isRecord(l.consumer) ? l.consumer : null;
  const authEntity = isRecord(l.authenticated_entity) ? l.authenticated_entity : null;
  const credentialId = authEntity ? str(authEntity.id) : null;

  // Kong's resolved client address (nginx $remote_addr after real_ip processing).
  const rawClientIp = str(l.client_ip, 64);
  const parsedClientIp = rawClientIp === null ? null : parseIp(rawClientIp);
  if (rawClientIp !== null && !parsedClientIp) problems.push('client_ip is not an IP address; not stored');
  const clientIp = parsedClientIp ? storedIp(parsedClientIp, 'client_ip', rawClientIp) : null;

  const forwardedFor = policy.recordForwardedFor ? forwardedAddresses(req.headers).map((ip) => storedIp(ip, 'forwarded_for', null)) : null;

  // The subject only from a header the auth plugin sets, and only when Kong verified a credential.
  let subject: AuditEntry['who']['subject'] = null;
  if (credentialId && policy.subjectHeaders.length) {
    for (const h of policy.subjectHeaders) {
      const v = headerValues(req.headers, h, 1, SCRUB_WINDOW)[0];
      if (v) {
        subject = { source: `header:${h}`, value: pseudo('subject', 'subject', cleanValue(v, 256))! };
        break;
      }
    }
  }

  const url = str(req.url, MAX_PATH_LENGTH);
  const { scheme, host } = urlParts(url);

  const status = int(res.status);
  const source = l.source === 'kong' || l.source === 'upstream' ? l.source : 'unknown';

  const tp = parseTraceparent(header(req.headers, 'traceparent'));
  let traceId: string | null = null;
  let parentSpanId: string | null = null;
  let traceSource: AuditEntry['trace_source'] = 'none';
  if (tp.status === 'valid') {
    traceId = tp.context.traceId;
    parentSpanId = tp.context.spanId;
    traceSource = 'traceparent';
  } else {
    if (tp.status === 'invalid') problems.push(`invalid traceparent: ${tp.reason}`);
    traceId = traceIdFromKong(l.trace_id);
    if (traceId) traceSource = 'kong';
    else if (tp.status === 'invalid') traceSource = 'invalid';
  }

  const workspace = str(l.workspace) || str(l.workspace_name)
    ? { id: str(l.workspace), name: str(l.workspace_name) }
    : null;

  const path = pathOf(str(req.uri, MAX_PATH_LENGTH * 2) ?? url);
  const pseudonymized = pseudonymizedFields(policy);
  const truncation = policy.ipv4Prefix < 32 || policy.ipv6Prefix < 128;
  boundProblems(problems);

  // Members in canonical (RFC 8785: UTF-16 code unit) order at every level, so canonicalJson
  // takes its one-call path (JSON.stringify, no sorted copy; decisions #14). The unit tests
  // check the order on every fixture kind and policy.
  return {
    capture_problems: problems,
    id: ctx.id,
    latencies: { kong: int(lat.kong), proxy: int(lat.proxy), receive: int(lat.receive), request: int(lat.request) },
    outcome: {
      response_headers: allowedHeaders(res.headers, policy.responseHeaders),
      result: status === null ? 'unknown' : status < 400 ? 'success' : 'failure',
      source,
      status,
    },
    parent_span_id: parentSpanId,
    privacy: {
      ip_prefix: truncation ? { v4: policy.ipv4Prefix, v6: policy.ipv6Prefix } : null,
      pseudonym_key_id: pseudonymized.length ? key!.id : null,
      pseudonymized,
    },
    request_id: str(req.id, 128),
    schema_version: 1,
    sequence: ctx.sequence ?? null,
    sizes: { request: int(req.size), response: int(res.size) },
    span_id: null,
    time: new Date(startedAt).toISOString(),
    time_source: timeSource,
    trace_id: traceId,
    trace_source: traceSource,
    what: {
      host,
      method: str(req.method, 32),
      path: path === null ? null : scrubPath(path, policy.pathTemplates),
      query: allowedQuery(req.querystring, policy),
      request_headers: allowedHeaders(req.headers, policy.requestHeaders),
      route: entityRef(l.route),
      scheme,
      service: entityRef(l.service),
      upstream_status: int(typeof l.upstream_status === 'string' ? l.upstream_status.split(/[,:\s]+/).pop() : l.upstream_status),
    },
    where: { client_ip: clientIp, hostname: ctx.hostname, node_id: ctx.nodeId, workspace },
    who: {
      authenticated: Boolean(consumer || credentialId),
      client_ip: clientIp,
      consumer: consumer
        ? {
            custom_id: pseudo('consumer_custom_id', 'custom_id', str(consumer.custom_id)),
            id: str(consumer.id),
            username: pseudo('consumer_username', 'username', str(consumer.username)),
          }
        : null,
      credential_id: credentialId,
      forwarded_for: forwardedFor,
      subject,
    },
  };
}
