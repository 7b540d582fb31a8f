// The audit entry: what is stored in immudb for one request. Version 1 of the format; its JSON
// Schema is schemas/audit-entry.v1.json. Changing a field means a new schema version (once
// released). Minimal by default: headers, query parameters, forwarded addresses and the subject
// appear only when the configuration asks for them (privacy.*), and never carry secrets.

export const AUDIT_SCHEMA_VERSION = 1;

export interface AuditEntityRef {
  id: string | null;
  name: string | null;
}

/** Allow-listed headers: name (lower case) -> value; repeated headers joined with ", ". */
export type StoredHeaders = Record<string, string>;
/** Allow-listed query parameters as Kong decoded them: a value, true for a bare flag, or a list. */
export type StoredQuery = Record<string, string | boolean | Array<string | boolean>>;

/** Entry fields that can hold a pseudonym ("hmac:<key id>:<hex>"). */
export type PseudonymizedField =
  | 'who.consumer.username'
  | 'who.consumer.custom_id'
  | 'who.client_ip'
  | 'where.client_ip'
  | 'who.forwarded_for'
  | 'who.subject.value';

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
    /**
     * The client address as Kong resolved it (its trusted_ips / real_ip settings), never a raw
     * X-Forwarded-For; truncated ("203.0.113.0/24") or a pseudonym when configured.
     */
    client_ip: string | null;
    /** Addresses of X-Forwarded-For / Forwarded as received (unverified); only when configured. */
    forwarded_for: string[] | null;
    /** The authenticated subject, from a header the auth plugin set, only when Kong authenticated the request. */
    subject: { value: string; source: string } | null;
  };
  what: {
    method: string | null;
    scheme: string | null;
    host: string | null;
    /** Path only (query strings are never part of it), without matrix parameters; secret segments {redacted}. */
    path: string | null;
    route: AuditEntityRef | null;
    service: AuditEntityRef | null;
    upstream_status: number | null;
    /** Allow-listed query parameters; null when none are allow-listed. */
    query: StoredQuery | null;
    /** Allow-listed request headers; null when none are allow-listed. */
    request_headers: StoredHeaders | null;
  };
  outcome: {
    status: number | null;
    /** Who produced the response: Kong itself (auth failure, rate limit...) or the upstream. */
    source: 'kong' | 'upstream' | 'unknown';
    result: 'success' | 'failure' | 'unknown';
    /** Allow-listed response headers; null when none are allow-listed. */
    response_headers: StoredHeaders | null;
  };
  latencies: { kong: number | null; proxy: number | null; request: number | null; receive: number | null };
  sizes: { request: number | null; response: number | null };
  where: {
    client_ip: string | null;
    node_id: string | null;
    hostname: string | null;
    workspace: AuditEntityRef | null;
  };
  /** How personal data was minimised in this entry, so that a reader can interpret it. */
  privacy: {
    /** Id of the key of the pseudonyms in this entry (null when nothing is pseudonymised). */
    pseudonym_key_id: string | null;
    /** Fields that hold pseudonyms ("hmac:<key id>:<hex>") rather than the identifiers. */
    pseudonymized: PseudonymizedField[];
    /** Network prefixes addresses were truncated to; null when addresses are kept whole. */
    ip_prefix: { v4: number; v6: number } | null;
  };
  /**
   * The entry's place in its node's sequence for this key prefix and destination: `stream` (a
   * UUID per node, destination and prefix, kept across restarts) and `number` (1, 2, 3, ...; never
   * reused). Auditors prove from it that no entry is missing (docs/decisions.md #30). Absent in
   * entries written before it existed (read as null); null when the node could not save its
   * sequence state.
   */
  sequence: { number: number; stream: string } | null;
  /** Problems met while capturing (malformed input); empty when all was well. At most 32. */
  capture_problems: string[];
}
