// The auditor's index keeps, beside its entries, every verified record's sequence number and the
// lifecycle entries (docs/decisions.md #31), so that `search` can report gaps per node for the
// range it answers: the numbers of the streams seen in the answered time window are checked
// from the first to the last, whatever time the records in between carry (a long request's
// entry is numbered after shorter ones that started later). Loss records are kept by the stream
// whose numbers they name (#41), whatever their time: one recorded after the window still
// explains a gap in it.
import type { DatabaseSync, StatementSync } from 'node:sqlite';
import { parseKey } from '../store/key-layout.js';
import { CoverageCollector, type CoverageReport } from './coverage.js';

/** Created with the index's tables; dropped with them when the index is rebuilt. */
export const COVERAGE_TABLES = `
CREATE TABLE IF NOT EXISTS coverage (
  stream TEXT NOT NULL, number INTEGER NOT NULL, time INTEGER, tx_id INTEGER NOT NULL, node TEXT,
  -- lifecycle entries only: their JSON (entries' are in the index's side file)
  lifecycle BLOB
);
CREATE INDEX IF NOT EXISTS coverage_by_stream ON coverage (stream, number);
CREATE INDEX IF NOT EXISTS coverage_by_time ON coverage (time);
-- loss records (their JSON); stream: the one whose numbers they name, NULL when none
CREATE TABLE IF NOT EXISTS coverage_loss (key TEXT NOT NULL, tx_id INTEGER NOT NULL, stream TEXT, json TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS coverage_loss_by_stream ON coverage_loss (stream);
`;
export const COVERAGE_DROP = 'DROP TABLE IF EXISTS coverage; DROP TABLE IF EXISTS coverage_loss;';

type Json = Record<string, unknown>;

export class CoverageTable {
  private readonly insert: StatementSync;
  private readonly insertLoss: StatementSync;

  constructor(private readonly db: DatabaseSync) {
    this.insert = db.prepare('INSERT INTO coverage (stream, number, time, tx_id, node, lifecycle) VALUES (?, ?, ?, ?, ?, ?)');
    this.insertLoss = db.prepare('INSERT INTO coverage_loss (key, tx_id, stream, json) VALUES (?, ?, ?, ?)');
  }

  /** An audit entry's number, read from the parsed entry (parseEntry); `node`: its where.node_id. */
  addNumber(txId: number, s: { stream: string; number: number; time: number | null }, node: string | null): void {
    this.insert.run(s.stream, s.number, s.time, txId, node, null);
  }

  /**
   * A lifecycle entry (numbered ones only: `trust reset` writes some without a number), or a
   * loss record (the walk hands both over: key-layout.ts, coverageRecordsPrefix).
   */
  addLifecycle(txId: number, key: string, json: string): void {
    const kind = parseKey(key)?.kind;
    if (kind === 'loss') {
      // Checked when reported (coverage.ts); only its stream is read here.
      let stream: string | null = null;
      try {
        const seq = (JSON.parse(json) as Json | null)?.sequence as Json | null | undefined;
        if (seq && typeof seq.stream === 'string') stream = seq.stream;
      } catch {
        // Not JSON: kept, reported as such.
      }
      this.insertLoss.run(key, txId, stream, json);
      return;
    }
    if (kind !== 'lifecycle') return;
    try {
      const e = JSON.parse(json) as Json;
      const seq = e.sequence as Json | null | undefined;
      if (!seq || typeof seq.stream !== 'string' || !Number.isSafeInteger(seq.number)) return;
      const t = typeof e.time === 'string' ? Date.parse(e.time) : NaN;
      const node = [e.node_id, e.hostname].find((v): v is string => typeof v === 'string' && v.length > 0) ?? null;
      this.insert.run(seq.stream, seq.number as number, Number.isFinite(t) ? t : null, txId, node, json);
    } catch {
      // Not JSON: nothing to count.
    }
  }

  /**
   * Coverage of the records whose time is in [since, until): per stream seen there, every
   * number from its first to its last in the window is looked up (the whole stream from 1 when
   * the window has no start).
   */
  report(since: number | undefined, until: number | undefined): CoverageReport {
    const where = [since !== undefined ? 'time >= ?' : '', until !== undefined ? 'time < ?' : ''].filter(Boolean).join(' AND ') || 'TRUE';
    const params = [since, until].filter((v): v is number => v !== undefined);
    const streams = this.db.prepare(`SELECT stream, MIN(number) AS lo, MAX(number) AS hi FROM coverage WHERE ${where} GROUP BY stream`).all(...params) as Array<{ stream: string; lo: number; hi: number }>;
    const c = new CoverageCollector();
    const numbered = this.db.prepare('SELECT number, time, lifecycle FROM coverage WHERE stream = ? AND number BETWEEN ? AND ? ORDER BY number');
    const nodeOf = this.db.prepare('SELECT node FROM coverage WHERE stream = ? AND node IS NOT NULL LIMIT 1');
    const lossesOf = this.db.prepare('SELECT key, json FROM coverage_loss WHERE stream = ? ORDER BY tx_id');
    const startedBefore = this.db.prepare(`SELECT json_extract(CAST(lifecycle AS TEXT), '$.heartbeat_seconds') AS hb FROM coverage
      WHERE stream = ? AND number < ? AND lifecycle IS NOT NULL AND json_extract(CAST(lifecycle AS TEXT), '$.event') = 'started' ORDER BY number DESC LIMIT 1`);
    for (const s of streams) {
      const node = nodeOf.get(s.stream) as { node: string } | undefined;
      c.declare(s.stream, node?.node ?? null);
      for (const l of lossesOf.iterate(s.stream)) c.add((l as { key: string }).key, (l as { json: string }).json);
      const lastStart = startedBefore.get(s.stream, s.lo) as { hb: number | null } | undefined;
      if (typeof lastStart?.hb === 'number') c.heartbeat(s.stream, lastStart.hb);
      for (const r of numbered.iterate(s.stream, since === undefined ? 1 : s.lo, s.hi)) {
        const row = r as { number: number; time: number | null; lifecycle: Uint8Array | string | null };
        if (row.lifecycle !== null) {
          const text = typeof row.lifecycle === 'string' ? row.lifecycle : Buffer.from(row.lifecycle).toString('utf8');
          c.add('lifecycle', text);
        } else c.addNumber(s.stream, row.number, row.time);
      }
    }
    return c.report(since === undefined);
  }
}
