// Output of `search` and `export`: an aligned table, JSON Lines (snake_case keys) or CSV
// (RFC 4180), and the statement every answer carries: what the index is complete up to.
import type { IndexState, StoredRow } from './audit-index.js';
import { ROW_COLUMNS } from './index-row.js';

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** "complete up to tx N of database D on server U, verified at T". */
export function stateLine(s: IndexState): string {
  return `complete up to tx ${s.txId} of database ${s.database} (prefix ${s.prefix}) on server ${s.serverUuid}, verified at ${s.verifiedAt ?? 'never'}`;
}

/** The state as the members of --json's final summary object. */
export function stateJson(s: IndexState): Record<string, unknown> {
  return { complete_up_to_tx: s.txId, verified_at: s.verifiedAt, server_uuid: s.serverUuid, database: s.database, prefix: s.prefix, entries_indexed: s.entries };
}

/** A row for --json and JSON Lines export: the index fields (times in RFC 3339), then the entry itself. */
export function rowJson(r: StoredRow): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const c of ROW_COLUMNS) out[c] = c === 'time' ? iso(r.time) : r[c];
  out.tx_time = iso(r.tx_time);
  out.entry = JSON.parse(r.json) as unknown;
  return out;
}

export const CSV_COLUMNS = [...ROW_COLUMNS, 'tx_time', 'entry'] as const;

/** One RFC 4180 field: quoted when it holds a comma, a quote, CR or LF (quotes doubled). */
export function csvField(v: unknown): string {
  const s = v === null || v === undefined ? '' : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** RFC 4180 records end in CRLF. */
export const csvRecord = (fields: readonly unknown[]) => fields.map(csvField).join(',') + '\r\n';
export const csvHeader = () => csvRecord(CSV_COLUMNS);

export function csvRow(r: StoredRow): string {
  return csvRecord([...ROW_COLUMNS.map((c) => (c === 'time' ? iso(r.time) : r[c])), iso(r.tx_time), r.json]);
}

const TABLE_COLUMNS: Array<[title: string, value: (r: StoredRow) => string]> = [
  ['TIME', (r) => iso(r.time) ?? '-'],
  ['TX', (r) => String(r.tx_id)],
  ['METHOD', (r) => r.method ?? '-'],
  ['PATH', (r) => r.path ?? '-'],
  ['STATUS', (r) => (r.status === null ? '-' : String(r.status))],
  ['RESULT', (r) => r.result ?? '-'],
  ['CONSUMER', (r) => r.consumer_username ?? r.consumer_custom_id ?? r.consumer_id ?? (r.subject !== null ? `subject ${r.subject}` : '-')],
  ['CLIENT IP', (r) => r.client_ip ?? '-'],
  ['ROUTE', (r) => r.route_name ?? r.route_id ?? '-'],
  ['AUDIT ID', (r) => r.audit_id],
];

/** The rows as a table whose columns are as wide as their widest cell. */
export function table(rows: readonly StoredRow[]): string {
  const cells = [TABLE_COLUMNS.map(([t]) => t), ...rows.map((r) => TABLE_COLUMNS.map(([, f]) => f(r).replace(/[\x00-\x1f\x7f]/g, '?')))];
  const widths = TABLE_COLUMNS.map((_, i) => Math.max(...cells.map((c) => c[i]!.length)));
  return cells.map((c) => c.map((v, i) => (i === c.length - 1 ? v : v.padEnd(widths[i]!))).join('  ')).join('\n');
}
