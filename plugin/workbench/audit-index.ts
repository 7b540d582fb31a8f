// The auditor's index: a SQLite file (node:sqlite) next to the auditor's trusted state, one per
// server, database and key prefix, fed only by verified transactions (decisions #20), and beside
// it an append-only side file of the entries' verified bytes (decisions #40). Rows of an update
// are written inside one SQLite transaction that commits only when the whole range verified,
// together with the state it is complete up to and the side file's committed length; otherwise
// it is rolled back and the side file truncated back to that length.
import { DatabaseSync, type SQLInputValue, type StatementSync } from 'node:sqlite';
import { closeSync, constants, fdatasync, fdatasyncSync, fstatSync, ftruncateSync, mkdirSync, openSync, readSync, writevSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ROW_COLUMNS, traceKey, type EntrySequence, type IndexRow } from './index-row.js';
import type { SqlCondition } from './filters.js';
import { COVERAGE_DROP, COVERAGE_TABLES, CoverageTable } from './coverage-table.js';

/** Bumped when the layout changes: an index of another layout is rebuilt from tx 1. */
// 3: the coverage table (sequence numbers, lifecycle entries; coverage-table.ts).
// 4: the entries' bytes in the side file (json_at, json_len), outcome_source as a column.
// 5: loss records and the numbers they name (coverage_loss, docs/decisions.md #41).
// 6: coverage kept as the collector's state instead of a row per number (decisions #48).
// 7: each row's sequence number (seq_number), to count the unnumbered in a window (decisions #50).
const LAYOUT = 7;

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

/** The side file of an index file: `<...>.index.entries` beside `<...>.index.sqlite`. */
export function entriesFile(indexFile: string): string {
  return indexFile.replace(/\.sqlite$/, '') + '.entries';
}

const TABLES = `
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS entries (
  rowid INTEGER PRIMARY KEY,
  audit_id TEXT NOT NULL, tx_id INTEGER NOT NULL, tx_time INTEGER NOT NULL, time INTEGER,
  consumer_id TEXT, consumer_username TEXT, consumer_custom_id TEXT, subject TEXT, credential_id TEXT,
  route_id TEXT, route_name TEXT, service_id TEXT, service_name TEXT,
  method TEXT, path TEXT, status INTEGER, result TEXT, client_ip TEXT, node_id TEXT, trace_id TEXT,
  outcome_source TEXT,
  -- The consumer (id, username, custom id) as a key of the consumers table: one index serves
  -- --consumer, whichever of the three it names.
  consumer_key INTEGER,
  -- The trace id's first 52 bits (index-row.ts traceKey): the trace index's key.
  trace_key INTEGER,
  -- The entry's canonical JSON (the verified bytes, UTF-8) in the side file: where and how long.
  json_at INTEGER NOT NULL, json_len INTEGER NOT NULL,
  -- Its number in its node's sequence (decisions #30); null: no gap report can show it missing.
  seq_number INTEGER
);
-- Each distinct consumer seen (few: scanned whole by a --consumer search).
CREATE TABLE IF NOT EXISTS consumers (key INTEGER PRIMARY KEY, id TEXT, username TEXT, custom_id TEXT);
`;

/**
 * The secondary indexes: the time, and each search key with the time (a time window is a range
 * within the key, and matches are put in time order from the index alone). Keys often absent
 * (anonymous requests) are indexed only where present: a search names a value, which the planner
 * knows is not null.
 */
const INDEXES: ReadonlyArray<[name: string, columns: string, where?: string]> = [
  ['by_time', 'time'],
  ['by_consumer', 'consumer_key, time', 'consumer_key IS NOT NULL'],
  ['by_subject', 'subject, time', 'subject IS NOT NULL'],
  ['by_path', 'path, time'],
  ['by_status', 'status, time'],
  ['by_client_ip', 'client_ip, time'],
  ['by_trace', 'trace_key', 'trace_key IS NOT NULL'],
  // Entries without a number, by time (coverage reports count them; usually none).
  ['unnumbered_by_time', 'time', 'seq_number IS NULL'],
];
const CREATE_INDEXES = INDEXES.map(([n, c, w]) => `CREATE INDEX IF NOT EXISTS ${n} ON entries (${c})${w ? ` WHERE ${w}` : ''};`).join('\n');

/** One text per (id, username, custom id), null told apart from any string. */
const consumerText = (...fields: Array<string | null>) => JSON.stringify(fields);

const INSERT_COLUMNS = ['rowid', ...ROW_COLUMNS.slice(0, 2), 'tx_time', ...ROW_COLUMNS.slice(2), 'outcome_source', 'consumer_key', 'trace_key', 'json_at', 'json_len', 'seq_number'];

/** Side-file writes are gathered up to this many bytes (or entries), then written in one call. */
const WRITE_BYTES = 1 << 20;
const WRITE_ENTRIES = 512;
/**
 * During an update the side file is fdatasync'd in the background every this many bytes, so that
 * its writeback overlaps the walk and the final fdatasync before the commit has little left.
 */
const SYNC_BYTES = 8 << 20;

/** The meta row holding the side file's length that committed rows may point into. */
const COMMITTED_BYTES = 'entries_bytes';

export class AuditIndex {
  private readonly db: DatabaseSync;
  private readonly insertRow: StatementSync;
  private readonly insertConsumer: StatementSync;
  /** The consumers table's keys, by consumer (read at begin: it only grows inside an update). */
  private consumerKeys = new Map<string, number>();
  private readonly fd: number;
  private nextRowid = 0;
  private inUpdate = false;
  /** Filling an empty index: its secondary indexes (dropped at begin) are built once at commit. */
  private bulkIndexes: Array<{ name: string; sql: string }> = [];
  /** The side file's length at the last commit (rows point below it), and where appends go. */
  private committedBytes = 0;
  private end = 0;
  /** Entries' bytes added but not yet written (at `end - pendingBytes`). */
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  /**
   * Background fdatasync, on a descriptor of its own: Linux reports a writeback error to every
   * descriptor open when it happened, so the commit's fdatasync on `fd` still sees an error that
   * a background sync already reported. How far the last one reached, whether one runs, its error.
   */
  private syncFd: number | undefined;
  private synced = 0;
  private syncing = false;
  private syncError: Error | undefined;
  private closed = false;

  private constructor(readonly file: string, private readonly ident: Pick<IndexState, 'serverUuid' | 'database' | 'prefix'>) {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    this.db = new DatabaseSync(file, { timeout: 60_000 });
    // A rollback journal rather than WAL: an update mostly appends pages, which it then writes
    // once instead of twice (WAL, then the checkpoint): 9 -> 4 µs per row at commit. Meta and
    // rows always commit together. An update touches a page of every index per row, and a search
    // reads index pages: a 256 MiB page cache and the file mapped (no system call per read).
    this.db.exec('PRAGMA journal_mode = DELETE; PRAGMA synchronous = NORMAL; PRAGMA cache_size = -262144; PRAGMA mmap_size = 4294967296;');
    this.fd = openSync(entriesFile(file), constants.O_RDWR | constants.O_CREAT, 0o600);
    // Written only when new, of another layout, or when the side file lost committed bytes (it
    // cannot answer for its rows: rebuilt from tx 1): opening to search takes no write lock.
    const layout = this.meta('layout');
    const short = layout === LAYOUT && fstatSync(this.fd).size < Number(this.meta(COMMITTED_BYTES) ?? 0);
    if (layout !== LAYOUT || short) {
      if (layout !== null) this.db.exec('DROP TABLE IF EXISTS entries; DROP TABLE IF EXISTS entry_json; DROP TABLE IF EXISTS consumers; DELETE FROM meta;' + COVERAGE_DROP);
      this.db.exec(TABLES + CREATE_INDEXES + COVERAGE_TABLES);
      this.setMeta('layout', LAYOUT);
      ftruncateSync(this.fd, 0);
    }
    this.insertRow = this.db.prepare(`INSERT INTO entries (${INSERT_COLUMNS.join(', ')}) VALUES (${INSERT_COLUMNS.map(() => '?').join(', ')})`);
    this.insertConsumer = this.db.prepare('INSERT INTO consumers (id, username, custom_id) VALUES (?, ?, ?)');
    this.coverage = new CoverageTable(this.db, (since, until) => this.countUnnumbered(since, until));
  }

  // --- coverage (docs/decisions.md #31; plugin/workbench/coverage-table.ts) ---
  /** Sequence numbers and lifecycle entries, for gap reports. */
  readonly coverage: CoverageTable;

  /** Adds a verified lifecycle entry or loss record (inside an update). */
  addLifecycle(key: string, json: string): void {
    this.coverage.addLifecycle(key, json);
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
    // Holding the write lock: bytes past the committed length are those of an update that did not
    // commit (a crash between the side file's writes and the commit); no row points at them. The
    // length is known before anything here can fail: a rollback truncates back to it (not to the
    // 0 of an index never begun, which would cost the next open a rebuild from tx 1).
    const committed = Number(this.meta(COMMITTED_BYTES) ?? 0);
    this.committedBytes = this.end = this.synced = committed;
    this.inUpdate = true;
    if (fstatSync(this.fd).size < committed) {
      // Cut since it was opened (opening rebuilds such an index): never extended with zeros here.
      this.inUpdate = false;
      this.db.exec('ROLLBACK');
      throw new Error(`the index's side file ${entriesFile(this.file)} is shorter than its committed length: reopen the index to rebuild it`);
    }
    ftruncateSync(this.fd, committed);
    this.coverage.begin();
    this.syncError = undefined;
    this.consumerKeys = new Map();
    for (const c of this.db.prepare('SELECT key, id, username, custom_id FROM consumers').iterate()) {
      const r = c as { key: number; id: string | null; username: string | null; custom_id: string | null };
      this.consumerKeys.set(consumerText(r.id, r.username, r.custom_id), r.key);
    }
    const r = this.db.prepare('SELECT COALESCE(MAX(rowid), 0) AS n FROM entries').get() as { n: number };
    this.nextRowid = r.n + 1;
    // An empty index (a first run over the whole history) is filled in bulk: rows first, then
    // each secondary index (the entries' and the coverage table's) built once from sorted keys,
    // instead of one insert per index and row. The drop is part of the update: a rollback brings
    // the indexes back.
    this.bulkIndexes = [];
    if (r.n === 0) {
      this.bulkIndexes = this.db.prepare("SELECT name, sql FROM sqlite_schema WHERE type = 'index' AND sql IS NOT NULL").all() as Array<{ name: string; sql: string }>;
      this.db.exec(this.bulkIndexes.map((i) => `DROP INDEX "${i.name}";`).join('\n'));
    }
  }

  /**
   * Adds the row of a verified entry (inside an update); `json`: the entry's bytes as verified
   * (kept by reference until written); `sequence`: its number, from the same parse as the row
   * (parseEntry), null when it carries none.
   */
  add(row: IndexRow, txTime: number, json: Uint8Array, sequence: EntrySequence | null): void {
    const id = this.nextRowid++;
    const at = this.end;
    this.pending.push(json);
    this.pendingBytes += json.byteLength;
    this.end += json.byteLength;
    this.insertRow.run(
      id, row.audit_id, row.tx_id, txTime, row.time, row.consumer_id, row.consumer_username, row.consumer_custom_id, row.subject,
      row.credential_id, row.route_id, row.route_name, row.service_id, row.service_name, row.method, row.path, row.status,
      row.result, row.client_ip, row.node_id, row.trace_id, row.outcome_source, this.consumerKey(row), traceKey(row.trace_id), at, json.byteLength,
      sequence?.number ?? null,
    );
    if (sequence) this.coverage.addNumber(sequence, row.node_id);
    if (this.pendingBytes >= WRITE_BYTES || this.pending.length >= WRITE_ENTRIES) this.flush();
  }

  /** The row's key in the consumers table (added when new); null without a consumer. */
  private consumerKey(row: IndexRow): number | null {
    if (row.consumer_id === null && row.consumer_username === null && row.consumer_custom_id === null) return null;
    const text = consumerText(row.consumer_id, row.consumer_username, row.consumer_custom_id);
    let key = this.consumerKeys.get(text);
    if (key === undefined) {
      key = Number(this.insertConsumer.run(row.consumer_id, row.consumer_username, row.consumer_custom_id).lastInsertRowid);
      this.consumerKeys.set(text, key);
    }
    return key;
  }

  /** Writes the gathered bytes at the end of the side file; starts a background fdatasync now and then. */
  flush(): void {
    if (this.pending.length) {
      // One call: add() flushes at WRITE_ENTRIES, below the 1,024 buffers writev takes.
      const n = writevSync(this.fd, this.pending, this.end - this.pendingBytes);
      // Not expected of a regular file (a full disk is an error): the update fails, rolled back.
      if (n !== this.pendingBytes) throw new Error(`short write to the index's side file ${entriesFile(this.file)} (${n} of ${this.pendingBytes} bytes)`);
      this.pending = [];
      this.pendingBytes = 0;
    }
    if (!this.syncing && this.end - this.synced >= SYNC_BYTES) {
      this.syncing = true;
      const upTo = this.end;
      this.syncFd ??= openSync(entriesFile(this.file), constants.O_RDONLY);
      fdatasync(this.syncFd, (err) => {
        this.syncing = false;
        if (this.closed) return;
        // An error here may mean pages were dropped: the update must not commit.
        if (err) this.syncError ??= err;
        else this.synced = Math.max(this.synced, upTo);
      });
    }
  }

  /** Ends an update: the rows, the side file's length and the state they are complete up to, together. */
  commit(txId: number, verifiedAt: string, added: number): void {
    this.flush();
    // The bytes the rows point at are on disk before the rows that point at them (and any
    // writeback error since `fd` was opened, a background sync's too, fails the update here).
    fdatasyncSync(this.fd);
    if (this.syncError) throw this.syncError;
    if (this.bulkIndexes.length) this.db.exec(this.bulkIndexes.map((i) => `${i.sql};`).join('\n'));
    this.setMeta(COMMITTED_BYTES, this.end);
    this.setMeta('complete_tx', txId);
    this.setMeta('verified_at', verifiedAt);
    this.setMeta('entries', this.state().entries + added);
    this.coverage.save();
    this.db.exec('COMMIT');
    this.coverage.end();
    this.committedBytes = this.end;
    this.inUpdate = false;
    // Statistics for the query planner (bounded work): it then knows, for instance, that a status
    // matches many rows and walks the time index instead.
    this.db.exec('PRAGMA analysis_limit = 1000; PRAGMA optimize;');
  }

  /** Drops every row of the update in progress, and its bytes in the side file. */
  rollback(): void {
    if (!this.inUpdate) return;
    this.inUpdate = false;
    this.pending = [];
    this.pendingBytes = 0;
    this.end = this.committedBytes;
    this.coverage.end();
    try {
      this.db.exec('ROLLBACK');
    } finally {
      ftruncateSync(this.fd, this.committedBytes);
    }
  }

  /** An entry's verified bytes, read back from the side file. */
  private entryText(at: number, length: number): string {
    const buf = Buffer.allocUnsafe(length);
    for (let got = 0; got < length; ) {
      const n = readSync(this.fd, buf, got, length - got, at + got);
      if (n === 0) throw new Error(`the index's side file ${entriesFile(this.file)} ends before a row's entry: delete the index to rebuild it`);
      got += n;
    }
    return buf.toString('utf8');
  }

  /** The rows matching `cond`, by request time then position in the history. */
  *query(cond: SqlCondition, limit?: number): Generator<StoredRow> {
    // The matches are ordered (and limited) by their narrow rows first (the index alone when it
    // can); only those shown are read whole, and their entries read from the side file.
    const order = 'ORDER BY time, rowid';
    const sql = `SELECT e.* FROM (SELECT rowid AS r FROM entries WHERE ${cond.where} ${order}${limit !== undefined ? ' LIMIT ?' : ''}) s
      JOIN entries e ON e.rowid = s.r ORDER BY e.time, e.rowid`;
    const stmt = this.db.prepare(sql);
    const params = limit !== undefined ? [...cond.params, limit] : cond.params;
    for (const r of stmt.iterate(...params)) {
      const { json_at, json_len, ...row } = r as unknown as Omit<StoredRow, 'json'> & { json_at: number; json_len: number };
      yield { ...row, json: this.entryText(json_at, json_len) };
    }
  }

  /** Rows without a sequence number whose time is in [since, until) or unknown (in every window). */
  private countUnnumbered(since: number | undefined, until: number | undefined): number {
    const range = [since !== undefined ? 'time >= ?' : '', until !== undefined ? 'time < ?' : ''].filter(Boolean).join(' AND ');
    const sql = `SELECT COUNT(*) AS n FROM entries WHERE seq_number IS NULL${range ? ` AND (time IS NULL OR (${range}))` : ''}`;
    const params = [since, until].filter((v): v is number => v !== undefined);
    return Number((this.db.prepare(sql).get(...params) as { n: number }).n);
  }

  count(cond: SqlCondition): number {
    if (cond.where === 'TRUE') return this.state().entries;
    return Number((this.db.prepare(`SELECT COUNT(*) AS n FROM entries WHERE ${cond.where}`).get(...cond.params) as { n: number }).n);
  }

  /**
   * The matches of `cond` in [from, until) counted per bucket of `size` ms from `origin` (one pass
   * over the range): all, 4xx, 5xx, and 401/403 whose entry says outcome.source "kong". Buckets
   * without matches are absent. For the console's timeline.
   */
  buckets(cond: SqlCondition, from: number, until: number, size: number, origin = from): Array<{ bucket: number; total: number; c4xx: number; c5xx: number; kong: number }> {
    const sql = `SELECT CAST((time - ?) / ? AS INTEGER) AS bucket, COUNT(*) AS total,
        SUM(status BETWEEN 400 AND 499) AS c4xx, SUM(status BETWEEN 500 AND 599) AS c5xx,
        SUM(status IN (401, 403) AND outcome_source = 'kong') AS kong
      FROM entries WHERE (${cond.where}) AND time >= ? AND time < ? GROUP BY bucket ORDER BY bucket`;
    const rows = this.db.prepare(sql).all(origin, size, ...cond.params, from, until) as Array<Record<string, number | null>>;
    return rows.map((r) => ({ bucket: Number(r.bucket), total: Number(r.total), c4xx: Number(r.c4xx ?? 0), c5xx: Number(r.c5xx ?? 0), kong: Number(r.kong ?? 0) }));
  }

  close(): void {
    if (this.closed) return;
    this.rollback();
    this.db.close();
    this.closed = true;
    closeSync(this.fd);
    // A background fdatasync still running keeps its own reference to the file (or, not started
    // yet, fails or syncs whatever the number now names: harmless); its answer is ignored.
    if (this.syncFd !== undefined) closeSync(this.syncFd);
  }
}
