// The request's trace context as the audit span needs it: the caller's span (ids from the entry,
// sampled flag and tracestate from the headers), Kong's own trace id, and the route template.
import type { AuditEntry } from './audit-entry.js';
import type { KongSerializedLog } from './kong-log.js';
import { header, isRecord, str } from './safe-read.js';
import { parseTraceparent, type ParentContext } from './traceparent.js';

/** Where the request's trace context came from (see AuditEntry.trace_source). */
export interface RequestTrace {
  parent: (ParentContext & { traceState: string | null }) | null;
  /** Kong's own trace id (tracing plugin) when there is no traceparent. */
  kongTraceId: string | null;
  /** Route template for http.route (Kong route path), when known. */
  route: string | null;
}

export function requestTraceOf(log: KongSerializedLog | null, entry: AuditEntry): RequestTrace {
  const headers = isRecord(log?.request) ? log.request.headers : undefined;
  const paths = isRecord(log?.route) && Array.isArray(log.route.paths) ? log.route.paths : [];
  const route = str(paths[0], 256);
  if (entry.trace_source === 'traceparent' && entry.trace_id && entry.parent_span_id) {
    const tp = parseTraceparent(header(headers, 'traceparent'));
    return {
      parent: {
        traceId: entry.trace_id,
        spanId: entry.parent_span_id,
        sampled: tp.status === 'valid' ? tp.context.sampled : true,
        traceState: header(headers, 'tracestate'),
      },
      kongTraceId: null,
      route,
    };
  }
  return { parent: null, kongTraceId: entry.trace_source === 'kong' ? entry.trace_id : null, route };
}
