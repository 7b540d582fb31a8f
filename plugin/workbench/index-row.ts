// One row of the auditor's index: the searchable fields of a verified audit entry, read from
// its canonical JSON (the bytes immudb proved), which the row keeps whole.

/** The searchable fields of an entry, as the index stores them (snake_case, as in --json). */
export interface IndexRow {
  audit_id: string;
  tx_id: number;
  /** Request start (the entry's `time`), ms since the epoch; null when unreadable. */
  time: number | null;
  consumer_id: string | null;
  consumer_username: string | null;
  consumer_custom_id: string | null;
  subject: string | null;
  credential_id: string | null;
  route_id: string | null;
  route_name: string | null;
  service_id: string | null;
  service_name: string | null;
  method: string | null;
  path: string | null;
  status: number | null;
  result: string | null;
  client_ip: string | null;
  node_id: string | null;
  trace_id: string | null;
  /** outcome.source ("kong" when Kong answered itself): stored for the console's timeline, not shown. */
  outcome_source: string | null;
}

/** The columns shown (--json, CSV), in order; the entry's JSON follows them. */
export const ROW_COLUMNS = [
  'audit_id', 'tx_id', 'time', 'consumer_id', 'consumer_username', 'consumer_custom_id', 'subject', 'credential_id',
  'route_id', 'route_name', 'service_id', 'service_name', 'method', 'path', 'status', 'result', 'client_ip', 'node_id', 'trace_id',
] as const satisfies ReadonlyArray<keyof IndexRow>;

type Json = Record<string, unknown>;
const obj = (v: unknown): Json | undefined => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : undefined);
const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
const int = (v: unknown): number | null => (typeof v === 'number' && Number.isSafeInteger(v) ? v : null);

function timeOf(v: unknown): number | null {
  if (typeof v !== 'string') return null;
  const ms = Date.parse(v);
  return Number.isFinite(ms) ? ms : null;
}

/**
 * The row of an entry. `key` is its immudb key (`<prefix>:entry:<audit id>`): the audit id
 * comes from the key, which the transaction proved, and not from the JSON; a value that is not
 * an entry still gets a row (all fields null) so that the index holds every verified key.
 */
export function indexRow(key: string, json: string, txId: number): IndexRow {
  return parseEntry(key, json, txId).row;
}

/**
 * The integer a trace id is indexed by: its first 13 hex digits (52 bits, an exact double), for a
 * W3C trace id as `--trace` takes it (32 lowercase hex); null for anything else, which no
 * `--trace` can match. An integer key is a third of the text's size in the index, where trace ids
 * land at random places (unlike times, paths or statuses, which mostly append).
 */
export function traceKey(traceId: string | null): number | null {
  return traceId !== null && /^[0-9a-f]{32}$/.test(traceId) ? parseInt(traceId.slice(0, 13), 16) : null;
}

/** An entry's sequence number (decisions #30), as the coverage table counts it. */
export interface EntrySequence {
  stream: string;
  number: number;
  time: number | null;
}

/** The row of an entry and its sequence number (null when it has none), from one JSON.parse. */
export function parseEntry(key: string, json: string, txId: number): { row: IndexRow; sequence: EntrySequence | null } {
  let e: Json | undefined;
  try {
    e = obj(JSON.parse(json));
  } catch {
    e = undefined;
  }
  const row = rowOf(key, e, txId);
  const seq = obj(e?.sequence);
  const sequence = typeof seq?.stream === 'string' && Number.isSafeInteger(seq.number) ? { stream: seq.stream, number: seq.number as number, time: row.time } : null;
  return { row, sequence };
}

function rowOf(key: string, e: Json | undefined, txId: number): IndexRow {
  const who = obj(e?.who);
  const consumer = obj(who?.consumer);
  const what = obj(e?.what);
  const route = obj(what?.route);
  const service = obj(what?.service);
  const outcome = obj(e?.outcome);
  const where = obj(e?.where);
  return {
    audit_id: key.slice(key.lastIndexOf(':') + 1),
    tx_id: txId,
    time: timeOf(e?.time),
    consumer_id: str(consumer?.id),
    consumer_username: str(consumer?.username),
    consumer_custom_id: str(consumer?.custom_id),
    subject: str(obj(who?.subject)?.value),
    credential_id: str(who?.credential_id),
    route_id: str(route?.id),
    route_name: str(route?.name),
    service_id: str(service?.id),
    service_name: str(service?.name),
    method: str(what?.method),
    path: str(what?.path),
    status: int(outcome?.status),
    result: str(outcome?.result),
    client_ip: str(who?.client_ip) ?? str(where?.client_ip),
    node_id: str(where?.node_id),
    trace_id: str(e?.trace_id),
    outcome_source: str(outcome?.source),
  };
}
