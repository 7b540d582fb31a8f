// Serialized log -> AuditEntry. Pure apart from the id and the fallback clock, which are
// injected, so it is deterministic in tests. Never throws: whatever is missing is recorded as
// null and noted in capture_problems.
import type { AuditEntry, AuditEntityRef } from './audit-entry.js';
import type { KongSerializedLog } from './kong-log.js';
import { header, int, isRecord, str, MAX_PATH_LENGTH } from './safe-read.js';
import { parseTraceparent } from './traceparent.js';

export interface CaptureContext {
  /** A fresh audit id (UUIDv7). */
  id: string;
  /** Now, ms since epoch: used when Kong's started_at is missing. */
  now: number;
  nodeId: string | null;
  hostname: string | null;
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
  const m = /^([a-z][a-z0-9+.-]*):\/\/([^/?#:]*)/i.exec(url);
  return m ? { scheme: str(m[1]!.toLowerCase()), host: str(m[2]) } : { scheme: null, host: null };
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

export function buildAuditEntry(log: KongSerializedLog | null, ctx: CaptureContext, problems: string[] = []): AuditEntry {
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
  const clientIp = str(l.client_ip, 64);
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

  return {
    schema_version: 1,
    id: ctx.id,
    time: new Date(startedAt).toISOString(),
    time_source: timeSource,
    request_id: str(req.id, 128),
    trace_id: traceId,
    parent_span_id: parentSpanId,
    span_id: null,
    trace_source: traceSource,
    who: {
      consumer: consumer
        ? { id: str(consumer.id), username: str(consumer.username), custom_id: str(consumer.custom_id) }
        : null,
      credential_id: authEntity ? str(authEntity.id) : null,
      authenticated: Boolean(consumer || (authEntity && str(authEntity.id))),
      client_ip: clientIp,
    },
    what: {
      method: str(req.method, 32),
      scheme,
      host,
      path: pathOf(str(req.uri, MAX_PATH_LENGTH * 2) ?? url),
      route: entityRef(l.route),
      service: entityRef(l.service),
      upstream_status: int(typeof l.upstream_status === 'string' ? l.upstream_status.split(/[,:\s]+/).pop() : l.upstream_status),
    },
    outcome: {
      status,
      source,
      result: status === null ? 'unknown' : status < 400 ? 'success' : 'failure',
    },
    latencies: { kong: int(lat.kong), proxy: int(lat.proxy), request: int(lat.request), receive: int(lat.receive) },
    sizes: { request: int(req.size), response: int(res.size) },
    where: { client_ip: clientIp, node_id: ctx.nodeId, hostname: ctx.hostname, workspace },
    capture_problems: problems,
  };
}
