// W3C Trace Context `traceparent` parsing (https://www.w3.org/TR/trace-context/#traceparent-header).

export interface ParentContext {
  traceId: string;
  spanId: string;
  sampled: boolean;
}

export type TraceparentResult =
  | { status: 'absent' }
  | { status: 'valid'; context: ParentContext }
  | { status: 'invalid'; reason: string };

const FORMAT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

export function parseTraceparent(value: string | null | undefined): TraceparentResult {
  if (value === null || value === undefined || value === '') return { status: 'absent' };
  const m = FORMAT.exec(value.trim());
  if (!m) return { status: 'invalid', reason: 'malformed traceparent' };
  const [, version, traceId, spanId, flags, rest] = m as unknown as [string, string, string, string, string, string | undefined];
  if (version === 'ff') return { status: 'invalid', reason: 'traceparent version ff is forbidden' };
  // Version 00 has exactly four fields; later versions may append more.
  if (version === '00' && rest !== undefined) return { status: 'invalid', reason: 'traceparent version 00 has extra fields' };
  if (/^0+$/.test(traceId)) return { status: 'invalid', reason: 'traceparent trace-id is all zeros' };
  if (/^0+$/.test(spanId)) return { status: 'invalid', reason: 'traceparent parent-id is all zeros' };
  return { status: 'valid', context: { traceId, spanId, sampled: (parseInt(flags, 16) & 1) === 1 } };
}
