// An audit entry as an OCSF 1.8.0 API Activity event (class_uid 6003, category Application
// Activity 6). Mapping and the schema files it follows: decisions #20 (ocsf/ocsf-schema tag
// 1.8.0: events/application/api_activity.json, events/base_event.json, objects/*.json,
// dictionary.json).
import { parseIp } from '../capture/ip-address.js';
import type { StoredRow } from './audit-index.js';

export const OCSF_VERSION = '1.8.0';
export const API_ACTIVITY_CLASS_UID = 6003;
export const APPLICATION_CATEGORY_UID = 6;

const ACTIVITY: Record<number, string> = { 1: 'Create', 2: 'Read', 3: 'Update', 4: 'Delete', 99: 'Other' };
const SEVERITY: Record<number, string> = { 0: 'Unknown', 1: 'Informational', 2: 'Low', 3: 'Medium' };
const STATUS: Record<number, string> = { 0: 'Unknown', 1: 'Success', 2: 'Failure' };

/** Create for POST, Read for GET/HEAD, Update for PUT/PATCH, Delete for DELETE, else Other. */
export function activityOf(method: string | null): number {
  switch (method) {
    case 'POST': return 1;
    case 'GET': case 'HEAD': return 2;
    case 'PUT': case 'PATCH': return 3;
    case 'DELETE': return 4;
    default: return 99;
  }
}

/**
 * Informational for a success; a refused request (401, 403, 407: authentication or
 * authorisation denied, what an auditor looks for) is Medium; any other failure Low; Unknown
 * when the entry has no status.
 */
export function severityOf(result: string | null, status: number | null): number {
  if (result === 'success') return 1;
  if (result === 'failure') return status === 401 || status === 403 || status === 407 ? 3 : 2;
  return 0;
}

export interface OcsfContext {
  serverUuid: string;
  database: string;
  prefix: string;
  productVersion: string;
}

type Json = Record<string, unknown>;
const obj = (v: unknown): Json => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : {});
const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/** Drops undefined members, and objects left empty, so that absent data is absent (not null). */
function compact<T extends Json>(o: T): T {
  for (const [k, v] of Object.entries(o)) {
    if (v === undefined) delete o[k];
    else if (v !== null && typeof v === 'object' && !Array.isArray(v) && Object.keys(compact(v as Json)).length === 0) delete o[k];
  }
  return o;
}

/** The OCSF event of an indexed entry. */
export function toOcsf(row: StoredRow, ctx: OcsfContext): Json {
  const e = obj(JSON.parse(row.json));
  const who = obj(e.who);
  const consumer = obj(who.consumer);
  const subject = str(obj(who.subject).value);
  const what = obj(e.what);
  const outcome = obj(e.outcome);
  const where = obj(e.where);
  const activity = activityOf(row.method);
  const severity = severityOf(row.result, row.status);
  const status = row.result === 'success' ? 1 : row.result === 'failure' ? 2 : 0;
  const time = row.time ?? row.tx_time;

  const name = str(consumer.username) ?? subject ?? str(consumer.custom_id);
  const uid = str(consumer.id) ?? subject;
  // OCSF requires an actor; an unauthenticated caller is recorded as the user "anonymous".
  const user = name || uid ? { uid, name, uid_alt: str(consumer.custom_id), credential_uid: row.credential_id ?? undefined } : { name: 'anonymous', type_id: 0, type: 'Unknown' };

  // src_endpoint.ip must be an address: a pseudonym or a truncated network goes to uid.
  const ip = row.client_ip;
  const src = ip === null ? { name: 'unknown' } : parseIp(ip) ? { ip } : { uid: ip };

  const traceId = str(e.trace_id);
  const spanId = str(e.span_id) ?? str(e.parent_span_id);
  const requestMs = num(obj(e.latencies).request);
  const trace = traceId
    ? {
      uid: traceId,
      span: spanId ? { uid: spanId, parent_uid: str(e.span_id) ? str(e.parent_span_id) : undefined, start_time: time, end_time: time + (requestMs ?? 0), duration: requestMs } : undefined,
    }
    : undefined;

  return compact({
    activity_id: activity,
    activity_name: ACTIVITY[activity],
    category_uid: APPLICATION_CATEGORY_UID,
    category_name: 'Application Activity',
    class_uid: API_ACTIVITY_CLASS_UID,
    class_name: 'API Activity',
    type_uid: API_ACTIVITY_CLASS_UID * 100 + activity,
    type_name: `API Activity: ${ACTIVITY[activity]}`,
    time,
    severity_id: severity,
    severity: SEVERITY[severity],
    status_id: status,
    status: STATUS[status],
    status_code: row.status !== null ? String(row.status) : undefined,
    status_detail: str(outcome.source) ? `response from ${String(outcome.source)}` : undefined,
    actor: { user },
    api: {
      operation: row.method ?? 'UNKNOWN',
      request: str(e.request_id) ? { uid: str(e.request_id) } : undefined,
      service: row.service_name || row.service_id ? { name: row.service_name ?? undefined, uid: row.service_id ?? undefined } : undefined,
    },
    src_endpoint: src,
    dst_endpoint: { hostname: str(where.hostname), uid: row.node_id ?? undefined },
    http_request: {
      http_method: row.method ?? undefined,
      uid: str(e.request_id),
      url: row.path !== null ? { path: row.path, hostname: str(what.host), scheme: str(what.scheme) } : undefined,
    },
    http_response: row.status !== null ? { code: row.status } : undefined,
    trace,
    metadata: {
      version: OCSF_VERSION,
      product: { name: 'kong-immudb-audit', vendor_name: 'kong-immudb-audit', version: ctx.productVersion },
      uid: row.audit_id,
      profiles: trace ? ['trace'] : undefined,
      correlation_uid: str(e.request_id),
      log_provider: 'immudb',
      log_name: ctx.database,
      logged_time: row.tx_time,
      original_time: str(e.time),
    },
    // Where the entry is proven: the immudb transaction, server and key (no OCSF attribute holds these).
    unmapped: { immudb: { tx_id: row.tx_id, server_uuid: ctx.serverUuid, database: ctx.database, key: `${ctx.prefix}:entry:${row.audit_id}` } },
  });
}
