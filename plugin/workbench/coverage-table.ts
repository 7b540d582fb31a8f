// The auditor's index keeps, beside its entries, the coverage of everything it holds
// (docs/decisions.md #31, #48): a CoverageCollector fed by the update with every verified
// record's sequence number and every lifecycle entry and loss record, in walk order as
// `verify --all` feeds its own, and saved in the update's transaction. Its state grows with the
// gaps, silences, runs and loss records of the history, not with its entries, so `search`
// answers coverage for any time window without reading a row per entry: the numbers missing
// between two records whose times span part of the window (they were numbered between those
// two, their own times unknown), the silences that overlap it, and the loss records of the
// streams concerned, whatever their time (#41: one recorded after the window still explains a
// gap in it).
import type { DatabaseSync } from 'node:sqlite';
import { CoverageCollector, type CoverageReport, type CoverageState } from './coverage.js';

/** Created with the index's tables; dropped with them when the index is rebuilt. */
export const COVERAGE_TABLES = `
-- one row: the collector's state (coverage.ts, CoverageState) as JSON
CREATE TABLE IF NOT EXISTS coverage_state (id INTEGER PRIMARY KEY CHECK (id = 1), json TEXT NOT NULL);
`;
/** Also the tables of index layouts before 6 (one row per number: coverage, coverage_loss). */
export const COVERAGE_DROP = 'DROP TABLE IF EXISTS coverage; DROP TABLE IF EXISTS coverage_loss; DROP TABLE IF EXISTS coverage_state;';

export class CoverageTable {
  /** The state being extended by the update in progress. */
  private collector: CoverageCollector | undefined;

  /** `unnumbered`: the index's entries without a number in [since, until) (or of unknown time). */
  constructor(
    private readonly db: DatabaseSync,
    private readonly unnumbered: (since: number | undefined, until: number | undefined) => number,
  ) {}

  /** The state as last committed. */
  private load(): CoverageCollector {
    const r = this.db.prepare('SELECT json FROM coverage_state WHERE id = 1').get() as { json: string } | undefined;
    if (!r) return new CoverageCollector();
    try {
      return CoverageCollector.restore(JSON.parse(r.json) as CoverageState);
    } catch (e) {
      throw new Error(`the index's coverage state cannot be read (${(e as Error).message}): delete the index to rebuild it`);
    }
  }

  /** Starts an update (inside its transaction): it goes on from the committed state. */
  begin(): void {
    this.collector = this.load();
  }

  private updating(): CoverageCollector {
    if (!this.collector) throw new Error('coverage: not inside an update');
    return this.collector;
  }

  /** An audit entry's number, read from the parsed entry (parseEntry); `node`: its where.node_id. */
  addNumber(s: { stream: string; number: number; time: number | null }, node: string | null): void {
    this.updating().addNumber(s.stream, s.number, s.time, node);
  }

  /** A lifecycle entry or a loss record (the walk hands both over: key-layout.ts, coverageRecordsPrefix). */
  addLifecycle(key: string, json: string): void {
    this.updating().add(key, json);
  }

  /** Saves the update's state, inside its transaction (before the commit). */
  save(): void {
    this.db.prepare('INSERT INTO coverage_state (id, json) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET json = excluded.json').run(JSON.stringify(this.updating().state()));
  }

  /** Ends the update (committed or rolled back): what it added is dropped from memory. */
  end(): void {
    this.collector = undefined;
  }

  /**
   * Coverage of everything indexed, or of what may concern records in [since, until), with the
   * entries of that time that carry no number (the rows know their times; the state does not).
   */
  report(since: number | undefined, until: number | undefined): CoverageReport {
    const report = this.load().report(true, since === undefined && until === undefined ? undefined : { since, until });
    return { ...report, unnumbered: this.unnumbered(since, until) };
  }
}
