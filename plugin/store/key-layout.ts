// Every immudb key the product writes or reads, in one place, with its parser:
//   <prefix>:entry:<audit id>               the audit entry (value: its canonical JSON)
//   <prefix>:trace:<trace id>:<audit id>    trace index (value: the entry's key), written in the
//                                           entry's transaction so `find --trace` reads a prefix;
//                                           only for traces the request brought (decision #38)
//   <prefix>:loss:<id>                      a loss record (entries known lost)
//   <prefix>:lifecycle:<uuidv7>             what happened to the log itself (a trust reset)
// The prefix is [A-Za-z0-9_.-]+ (the key_prefix field): it holds no ':', so parsing is exact.
// The trace index is computed from the entry object's own top-level trace_id, never by matching
// text inside the JSON, where request data (an allow-listed header named trace_id) can appear.

export type KeyKind = 'entry' | 'trace' | 'loss' | 'lifecycle';

export type ParsedKey =
  | { kind: 'entry'; prefix: string; id: string }
  | { kind: 'trace'; prefix: string; traceId: string; id: string }
  | { kind: 'loss'; prefix: string; id: string }
  | { kind: 'lifecycle'; prefix: string; id: string };

/** A key and its value as immudb stores them. */
export interface KeyValue {
  key: Buffer;
  value: Buffer;
}

const PREFIX = /^[A-Za-z0-9_.-]+$/;
const AUDIT_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const TRACE_ID = /^[0-9a-f]{32}$/;
const KEY = /^([A-Za-z0-9_.-]+):(entry|loss|lifecycle):([^:]+)$|^([A-Za-z0-9_.-]+):trace:([0-9a-f]{32}):([^:]+)$/;

export function isKeyPrefix(prefix: string): boolean {
  return PREFIX.test(prefix);
}

/** Keys of one kind under a prefix start with this (e.g. `audit:entry:`). */
export function kindPrefix(prefix: string, kind: KeyKind): string {
  return `${prefix}:${kind}:`;
}

/**
 * Lifecycle entries and loss records under a prefix both start with this (`audit:l`): a verified
 * walk hands them over together for coverage reports (docs/decisions.md #41), and readers tell
 * them apart by parseKey. Other kinds (entry, trace) never start with it.
 */
export function coverageRecordsPrefix(prefix: string): string {
  return `${prefix}:l`;
}

export function entryKey(prefix: string, auditId: string): string {
  return `${prefix}:entry:${auditId}`;
}

export function lossKey(prefix: string, id: string): string {
  return `${prefix}:loss:${id}`;
}

/** A lifecycle entry: a JSON record of what happened to the log itself (`trust reset`). */
export function lifecycleKey(prefix: string, id: string): string {
  return `${prefix}:lifecycle:${id}`;
}

/** Every index key of trace `traceId` starts with this. */
export function traceIndexPrefix(prefix: string, traceId: string): string {
  return `${prefix}:trace:${traceId}:`;
}

export function traceIndexKey(prefix: string, traceId: string, auditId: string): string {
  return traceIndexPrefix(prefix, traceId) + auditId;
}

/** The key prefix of an entry key `<prefix>:entry:<anything>` (the id is not checked), else undefined. */
export function prefixOfEntryKey(key: Buffer | string): string | undefined {
  const k = typeof key === 'string' ? key : key.toString('latin1');
  const at = k.indexOf(':entry:');
  return at > 0 && PREFIX.test(k.slice(0, at)) ? k.slice(0, at) : undefined;
}

/** The parts of a key of ours; undefined for anything else (a malformed id included). */
export function parseKey(key: Buffer | string): ParsedKey | undefined {
  const m = KEY.exec(typeof key === 'string' ? key : key.toString('latin1'));
  if (!m) return undefined;
  if (m[1] !== undefined) {
    const kind = m[2] as 'entry' | 'loss' | 'lifecycle';
    if (kind === 'entry' && !AUDIT_ID.test(m[3]!)) return undefined;
    return { kind, prefix: m[1], id: m[3]! };
  }
  if (!AUDIT_ID.test(m[6]!)) return undefined;
  return { kind: 'trace', prefix: m[4]!, traceId: m[5]!, id: m[6]! };
}

/** What decides an entry's index key: its top-level trace id and where that trace came from. */
export interface TracedEntry {
  id: string;
  trace_id: string | null;
  trace_source: string;
}

/**
 * The trace id an entry is indexed under, or null. Only traces the request brought (a W3C
 * traceparent, or Kong's own trace id) are indexed: a trace the plugin started itself holds
 * nothing but the entry's audit span, which names the entry (audit.id, audit.key), and the
 * auditor's index (`search --trace`, and `find --trace` through it) finds such entries by their
 * trace_id. The key doubled the immudb entries, and the proof work, of every audit entry.
 */
export function indexedTraceId(entry: TracedEntry): string | null {
  if (entry.trace_source !== 'traceparent' && entry.trace_source !== 'kong') return null;
  return typeof entry.trace_id === 'string' && TRACE_ID.test(entry.trace_id) ? entry.trace_id : null;
}

/** The index key/value of an entry object (by its top-level trace_id); undefined when it has none. */
export function traceIndexFor(prefix: string, entry: TracedEntry): KeyValue | undefined {
  const traceId = indexedTraceId(entry);
  return traceId === null ? undefined : indexKeyValue(prefix, traceId, entry.id);
}

function indexKeyValue(prefix: string, traceId: string, auditId: string): KeyValue | undefined {
  if (!PREFIX.test(prefix) || !AUDIT_ID.test(auditId)) return undefined;
  return { key: Buffer.from(traceIndexKey(prefix, traceId, auditId)), value: Buffer.from(entryKey(prefix, auditId)) };
}

// The encoder knows the entry object: it leaves the entry's indexed trace id here, keyed by the
// value it encoded, so the writer does not parse the JSON again. A record read back from the spool
// (a replay) is a new buffer and is parsed instead: both give the same answer.
const fromEncoder = new WeakMap<Buffer, string | null>();

/** Called by the encoder with the entry object. */
export function rememberTraceIndex(value: Buffer, entry: TracedEntry): void {
  fromEncoder.set(value, indexedTraceId(entry));
}

/** The index key/value of an encoded entry (key + value), or undefined when it has none. */
export function traceIndexOf(key: Buffer, value: Buffer): KeyValue | undefined {
  const parsed = parseKey(key);
  if (parsed?.kind !== 'entry') return undefined;
  let traceId = fromEncoder.get(value);
  if (traceId === undefined) {
    let entry: unknown;
    try {
      entry = JSON.parse(value.toString('utf8'));
    } catch {
      return undefined;
    }
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) return undefined;
    const { trace_id: t, trace_source: source } = entry as { trace_id?: unknown; trace_source?: unknown };
    traceId = typeof t === 'string' && typeof source === 'string' ? indexedTraceId({ id: parsed.id, trace_id: t, trace_source: source }) : null;
  }
  return traceId === null ? undefined : indexKeyValue(parsed.prefix, traceId, parsed.id);
}
