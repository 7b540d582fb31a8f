// What a benchmark returns and how it is printed: tables for people, one JSON line for tools.
import { formatTable, roundDeep, type Column, type TargetCheck } from './stats.js';

export interface Table {
  title: string;
  rows: Array<Record<string, unknown>>;
  columns?: Array<Column | string>;
}

export interface BenchResult {
  name: string;
  title: string;
  tables: Table[];
  /** Headline figures (also in the JSON). */
  figures: Record<string, unknown>;
  targets: TargetCheck[];
  notes: string[];
  seconds?: number;
}

export interface BenchContext {
  quick: boolean;
  /** Where profiles and the JSON results go. */
  outDir: string;
  /** Profile the plugin server (CPU) where a benchmark supports it. */
  profile: boolean;
  log(msg: string): void;
}

export function printResult(r: BenchResult, write: (s: string) => void = (s) => process.stdout.write(s + '\n')): void {
  write('');
  write(`== ${r.title} ==${r.seconds !== undefined ? `  (${r.seconds.toFixed(0)} s)` : ''}`);
  for (const t of r.tables) {
    write('');
    write(t.title);
    write(formatTable(t.rows, t.columns));
  }
  if (r.targets.length) {
    write('');
    write(formatTable(r.targets.map((t) => ({ target: t.name, measured: t.value, goal: `${t.op} ${t.target}`, met: t.met }))));
  }
  for (const n of r.notes) write(`note: ${n}`);
  write(`JSON ${r.name}: ${JSON.stringify(roundDeep({ name: r.name, figures: r.figures, targets: r.targets, tables: r.tables.map((t) => ({ title: t.title, rows: t.rows })) }))}`);
}
