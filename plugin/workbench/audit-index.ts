// The auditor's index: a SQLite file (node:sqlite) next to the auditor's trusted state, one per
// server, database and key prefix, fed only by verified transactions (decisions #20). Rows of an
// update are written inside one SQLite transaction that commits only when the whole range
// verified, together with the state it is complete up to; otherwise it is rolled back.
import { DatabaseSync, type SQLInputValue, type StatementSync } from 'node:sqlite';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ROW_COLUMNS, type IndexRow } from './index-row.js';
import type { SqlCondition } from './filters.js';
import { COVERAGE_DROP, COVERAGE_TABLES, CoverageTable } from './coverage-table.js';

/** Bumped when the layout changes: an index of another layout is rebuilt from tx 1. */
// 3: the coverage table (sequence numbers, lifecycle entries; coverage-table.ts).
// 4: loss records and the numbers they name (coverage_loss, docs/decisions.md #41).
const LAYOUT = 4;

/** What an index is complete up to: every audit entry of transactions 1..txId, verified. */
export interface IndexState {
  serverUuid: string;
  database: string;
  prefix: string;
  /** Last transaction indexed (0: none yet). */
  txId: number;
  /** When the run that verified up to txId ended (ISO 8601); null before the first. */
  verifiedAt: string | null;
  /** Audit entries in the index. */
  entries: number;
}

/** A row as read back: the index fields, the tx's time and the entry's canonical JSON. */
export interface StoredRow extends IndexRow {
  tx_time: number;
  json: string;
}

/** `<state dir>/<server uuid>/<database>.<prefix>.index.sqlite`, next to the trusted state. */
export function indexFile(stateDir: string, serverUuid: string, database: string, prefix: string): string {
  const safe = (s: string) => s.replace(/[^A-Za-z0-9_.-]/g, '_');
  return join(stateDir, safe(serverUuid), `${safe(database)}.${safe(prefix)}.index.sqlite`);
}

const TABLES = `
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS entries (
  rowid INTEGER PRIMARY KEY,
  audit_id TEXT NOT NULL, tx_id INTEGER NOT NULL, tx_time INTEGER NOT NULL, time INTEGER,
  consumer_id TEXT, consumer_username TEXT, consumer_custom_id TEXT, subject TEXT, credential_id TEXT,
  route_id TEXT, route_name TEXT, service_id TEXT, service_name TEXT,
  method TEXT, path TEXT, status INTEGER, result TEXT, client_ip TEXT, node_id TEXT, trace_id TEXT
);
-- The entries' canonical JSON (the verified bytes, UTF-8) apart from the searched columns:
-- scans that filter read narrow rows.
CREATE TABLE IF NOT EXISTS entry_json (rowid INTEGER PRIMARY KEY, json BLOB NOT NULL);
`;

/**
 * The secondary indexes: the time, and each search key with the time (a time window is a range
 * within the key, and matches are put in time order from the index alone).
 */
const INDEXES: ReadonlyArray<[name: string, columns: string]> = [
  ['by_time', 'time'],
  ['by_consumer_id', 'consumer_id, time'],
  ['by_consumer_username', 'consumer_username, time'],
  ['by_consumer_custom_id', 'consumer_custom_id, time'],
  ['by_subject', 'subject, time'],
  ['by_path', 'path, time'],
  ['by_status', 'status, time'],
  ['by_client_ip', 'client_ip, time'],
  ['by_trace', 'trace_id, time'],
];
const CREATE_INDEXES = INDEXES.map(([n, c]) => `CREATE INDEX IF NOT EXISTS ${n} ON entries (${c});`).join('\n');
const DROP_INDEXES = INDEXES.map(([n]) => `DROP INDEX IF EXISTS ${n};`).join('\n');

const INSERT_COLUMNS = ['rowid', ...ROW_COLUMNS.slice(0, 2), 'tx_time', ...ROW_COLUMNS.slice(2)];

export class AuditIndex {
  private readonly db: DatabaseSync;
  private readonly insertRow: StatementSync;
  private readonly insertJson: StatementSync;
  private nextRowid = 0;
  private inUpdate = false;
  /** Filling an empty index: its secondary indexes are built once at commit. */
  private bulk = false;

  private constructor(readonly file: string, private readonly ident: Pick<IndexState, 'serverUuid' | 'database' | 'prefix'>) {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    this.db = new DatabaseSync(file, { timeout: 60_000 });
    // A rollback journal rather than WAL: an update mostly appends pages, which it then writes
    // once instead of twice (WAL, then the checkpoint): 9 -> 4 µs per row at commit. Meta and
    // rows always commit together. An update touches a page of every index per row, and a search
    // reads index pages: a 256 MiB page cache and the file mapped (no system call per read).
    this.db.exec('PRAGMA journal_mode = DELETE; PRAGMA synchronous = NORMAL; PRAGMA cache_size = -262144; PRAGMA mmap_size = 4294967296;');
    // Written only when new or of another layout: opening to search takes no write lock.
    const layout = this.meta('layout');
    if (layout !== LAYOUT) {
      if (layout !== null) this.db.exec('DROP TABLE IF EXISTS entries; DROP TABLE IF EXISTS entry_json; DELETE FROM meta;' + COVERAGE_DROP);
      this.db.exec(TABLES + CREATE_INDEXES + COVERAGE_TABLES);
      this.setMeta('layout', LAYOUT);
    }
    this.insertRow = this.db.prepare(`INSERT INTO entries (${INSERT_COLUMNS.join(', ')}) VALUES (${INSERT_COLUMNS.map(() => '?').join(', ')})`);
    this.insertJson = this.db.prepare('INSERT INTO entry_json (rowid, json) VALUES (?, ?)');
    this.coverage = new CoverageTable(this.db);
  }

  // --- coverage (docs/decisions.md #31; plugin/workbench/coverage-table.ts) ---
  /** Sequence numbers and lifecycle entries, for gap reports. */
  readonly coverage: CoverageTable;

  /** Adds a verified lifecycle entry (inside an update). */
  addLifecycle(txId: number, key: string, json: string): void {
    this.coverage.addLifecycle(txId, key, json);
  }
  // --- end coverage ---

  static open(file: string, ident: Pick<IndexState, 'serverUuid' | 'database' | 'prefix'>): AuditIndex {
    return new AuditIndex(file, ident);
  }

  private meta(name: string): SQLInputValue | null {
    try {
      const r = this.db.prepare('SELECT value FROM meta WHERE name = ?').get(name) as { value: SQLInputValue } | undefined;
      return r ? r.value : null;
    } catch {
      return null; // no meta table yet
    }
  }

  private setMeta(name: string, value: SQLInputValue): void {
    this.db.prepare('INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value').run(name, value);
  }

  state(): IndexState {
    const txId = Number(this.meta('complete_tx') ?? 0);
    const verifiedAt = this.meta('verified_at');
    return { ...this.ident, txId, verifiedAt: typeof verifiedAt === 'string' ? verifiedAt : null, entries: Number(this.meta('entries') ?? 0) };
  }

  /** Starts an update: rows added from here on are kept only if `commit` is reached. */
  begin(): void {
    this.db.exec('BEGIN IMMEDIATE');
    this.inUpdate = true;
    const r = this.db.prepare('SELECT COALESCE(MAX(rowid), 0) AS n FROM entries').get() as { n: number };
    this.nextRowid = r.n + 1;
    // An empty index (a first run over the whole history) is filled in bulk: rows first, then
    // each secondary index built once from sorted keys, instead of one insert per index and
    // row. The drop is part of the update: a rollback brings the indexes back.
    this.bulk = r.n === 0;
    if (this.bulk) this.db.exec(DROP_INDEXES);
  }

  /** Adds the row of a verified entry (inside an update); `json`: the entry's bytes as verified. */
  add(row: IndexRow, txTime: number, json: Uint8Array): void {
    const id = this.nextRowid++;
    this.insertRow.run(
      id, row.audit_id, row.tx_id, txTime, row.time, row.consumer_id, row.consumer_username, row.consumer_custom_id, row.subject,
      row.credential_id, row.route_id, row.route_name, row.service_id, row.service_name, row.method, row.path, row.status,
      row.result, row.client_ip, row.node_id, row.trace_id,
    );
    this.insertJson.run(id, json);
    this.coverage.addEntry(row.tx_id, json, row.node_id); // coverage
  }

  /** Ends an update: the rows and the state they are complete up to, together. */
  commit(txId: number, verifiedAt: string, added: number): void {
    if (this.bulk) this.db.exec(CREATE_INDEXES);
    this.setMeta('complete_tx', txId);
    this.setMeta('verified_at', verifiedAt);
    this.setMeta('entries', this.state().entries + added);
    this.db.exec('COMMIT');
    this.inUpdate = false;
    // Statistics for the query planner (bounded work): it then knows, for instance, that a status
    // matches many rows and walks the time index instead.
    this.db.exec('PRAGMA analysis_limit = 1000; PRAGMA optimize;');
  }

  /** Drops every row of the update in progress. */
  rollback(): void {
    if (!this.inUpdate) return;
    this.inUpdate = false;
    this.db.exec('ROLLBACK');
  }

  /** The rows matching `cond`, by request time then position in the history. */
  *query(cond: SqlCondition, limit?: number): Generator<StoredRow> {
    // The matches are ordered (and limited) by their narrow rows first; only those shown are
    // joined to their JSON.
    const order = 'ORDER BY time, rowid';
    const sql = `SELECT e.*, j.json FROM (SELECT rowid AS r FROM entries WHERE ${cond.where} ${order}${limit !== undefined ? ' LIMIT ?' : ''}) s
      JOIN entries e ON e.rowid = s.r JOIN entry_json j ON j.rowid = s.r ORDER BY e.time, e.rowid`;
    const stmt = this.db.prepare(sql);
    const params = limit !== undefined ? [...cond.params, limit] : cond.params;
    for (const r of stmt.iterate(...params)) {
      const row = r as unknown as Omit<StoredRow, 'json'> & { json: Uint8Array };
      yield { ...row, json: Buffer.from(row.json.buffer, row.json.byteOffset, row.json.byteLength).toString('utf8') };
    }
  }

  count(cond: SqlCondition): number {
    if (cond.where === 'TRUE') return this.state().entries;
    return Number((this.db.prepare(`SELECT COUNT(*) AS n FROM entries WHERE ${cond.where}`).get(...cond.params) as { n: number }).n);
  }

  /**
   * The matches of `cond` in [from, until) counted per bucket of `size` ms from `origin` (one pass
   * over the range): all, 4xx, 5xx, and 401/403 whose entry says outcome.source "kong" (its
   * JSON read for those rows only). Buckets without matches are absent. For the console's timeline.
   */
  buckets(cond: SqlCondition, from: number, until: number, size: number, origin = from): Array<{ bucket: number; total: number; c4xx: number; c5xx: number; kong: number }> {
    const sql = `SELECT CAST((time - ?) / ? AS INTEGER) AS bucket, COUNT(*) AS total,
        SUM(status BETWEEN 400 AND 499) AS c4xx, SUM(status BETWEEN 500 AND 599) AS c5xx,
        SUM(status IN (401, 403) AND EXISTS (SELECT 1 FROM entry_json j WHERE j.rowid = entries.rowid
          AND json_extract(CAST(j.json AS TEXT), '$.outcome.source') = 'kong')) AS kong
      FROM entries WHERE (${cond.where}) AND time >= ? AND time < ? GROUP BY bucket ORDER BY bucket`;
    const rows = this.db.prepare(sql).all(origin, size, ...cond.params, from, until) as Array<Record<string, number | null>>;
    return rows.map((r) => ({ bucket: Number(r.bucket), total: Number(r.total), c4xx: Number(r.c4xx ?? 0), c5xx: Number(r.c5xx ?? 0), kong: Number(r.kong ?? 0) }));
  }

  close(): void {
    this.rollback();
    this.db.close();
  }
}
