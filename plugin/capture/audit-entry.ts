// The audit entry: what is stored in immudb for one request. Version 1 of the format; its JSON
// Schema is schemas/audit-entry.v1.json. Changing a field means a new schema version.

export const AUDIT_SCHEMA_VERSION = 1;

export interface AuditEntityRef {
  id: string | null;
  name: string | null;
}

export interface AuditEntry {
  schema_version: 1;
  /** UUIDv7, also the immudb key suffix. */
  id: string;
  /** Request start, RFC 3339 UTC with milliseconds. */
  time: string;
  /** Where `time` came from: Kong's started_at, or the plugin's clock when Kong's was missing. */
  time_source: 'kong' | 'plugin';
  /** Kong's request id (X-Kong-Request-Id). */
  request_id: string | null;
  /** W3C trace id of the request (stored even when the trace is not sampled). */
  trace_id: string | null;
  /** The caller's span (from traceparent), if any. */
  parent_span_id: string | null;
  /** The audit span emitted for this entry, if tracing is on. */
  span_id: string | null;
  /** How the trace context was found: traceparent header, Kong's tracing, none, or invalid. */
  trace_source: 'traceparent' | 'kong' | 'none' | 'invalid';
  who: {
    consumer: { id: string | null; username: string | null; custom_id: string | null } | null;
    credential_id: string | null;
    authenticated: boolean;
    client_ip: string | null;
  };
  what: {
    method: string | null;
    scheme: string | null;
    host: string | null;
    /** Path only: query strings are never stored. */
    path: string | null;
    route: AuditEntityRef | null;
    service: AuditEntityRef | null;
    upstream_status: number | null;
  };
  outcome: {
    status: number | null;
    /** Who produced the response: Kong itself (auth failure, rate limit...) or the upstream. */
    source: 'kong' | 'upstream' | 'unknown';
    result: 'success' | 'failure' | 'unknown';
  };
  latencies: { kong: number | null; proxy: number | null; request: number | null; receive: number | null };
  sizes: { request: number | null; response: number | null };
  where: {
    client_ip: string | null;
    node_id: string | null;
    hostname: string | null;
    workspace: AuditEntityRef | null;
  };
  /** Problems met while capturing (malformed input); empty when all was well. */
  capture_problems: string[];
}
