// The auditor's workbench commands: `search` and `export` (the auditor's index, brought up to
// date by a verified walk before every answer) and `hash` (a value's pseudonym).
import { Command, InvalidArgumentError, Option } from 'commander';
import { once } from 'node:events';
import { createWriteStream, renameSync, rmSync } from 'node:fs';
import type { Writable } from 'node:stream';
import type { PseudonymKey } from '../capture/pseudonyms.js';
import type { PseudonymizableField } from '../config/fields/privacy.js';
import type { AuditReader } from '../reader/audit-reader.js';
import type { AuditIndex, IndexState, StoredRow } from './audit-index.js';
import {
  checkFilters, filterCondition, FilterError, parseClientIp, parseLimit, parseMethod, parseNonEmpty, parsePathPrefix, parseResult,
  parseStatus, parseTraceId, timeParser, type FilterOptions,
} from './filters.js';
import { csvHeader, csvRow, rowJson, stateJson, stateLine, table } from './formats.js';
import { COVERAGE_GAP_EXIT, coverageJson, coverageText } from './coverage.js';
import { toOcsf } from './ocsf.js';
import { PSEUDONYM_FIELDS, PseudonymKeyError, pseudonymOf, readPseudonymKey } from './pseudonym-search.js';
import { updateIndex, type UpdateResult } from './update-index.js';

export interface WorkbenchContext {
  /** The global options that matter here. */
  globals(): { database: string; prefix: string; stateDir: string; json?: boolean };
  withReader<T>(fn: (r: AuditReader) => Promise<T>): Promise<T>;
  productVersion: string;
}

/** Search answers at most this many entries unless --limit says otherwise (the total is still counted). */
export const DEFAULT_SEARCH_LIMIT = 1000;

export interface KeyOptions {
  pseudonymKeyFile?: string;
  pseudonymKeyId?: string;
}
interface SearchOptions extends FilterOptions, KeyOptions {
  limit?: number;
  csv?: boolean;
}
interface ExportOptions extends FilterOptions, KeyOptions {
  limit?: number;
  format: 'jsonl' | 'csv' | 'ocsf';
  output?: string;
}

/** A parser for commander: a FilterError becomes commander's usage error (exit 2). */
function usage<T>(parse: (v: string) => T): (v: string) => T {
  return (v) => {
    try {
      return parse(v);
    } catch (e) {
      if (e instanceof FilterError) throw new InvalidArgumentError(e.message);
      throw e;
    }
  };
}

export function addFilters(cmd: Command): Command {
  const now = Date.now();
  return cmd
    .option('--consumer <consumer>', 'consumer id, username or custom id (pseudonymised usernames/custom ids match with --pseudonym-key-file)', usage(parseNonEmpty))
    .option('--subject <subject>', 'authenticated subject (pseudonymised ones match with --pseudonym-key-file)', usage(parseNonEmpty))
    .option('--credential <id>', 'credential id', usage(parseNonEmpty))
    .option('--route <route>', 'route id or name', usage(parseNonEmpty))
    .option('--service <service>', 'service id or name', usage(parseNonEmpty))
    .option('--method <method>', 'HTTP method', usage(parseMethod))
    .option('--path <prefix>', 'path prefix (e.g. /api/payments: also /api/payments/42)', usage(parsePathPrefix))
    .option('--status <codes>', 'status codes or classes, comma-separated: 401, 4xx, 401,403', usage(parseStatus))
    .option('--result <result>', 'success or failure', usage(parseResult))
    .option('--client-ip <address>', 'client address (pseudonymised ones match with --pseudonym-key-file)', usage(parseClientIp))
    .option('--node <node-id>', 'Kong node id', usage(parseNonEmpty))
    .option('--trace <trace-id>', 'W3C trace id', usage(parseTraceId))
    .option('--since <time>', 'request time from (inclusive): RFC 3339 or back from now (30m, 24h, 7d)', usage(timeParser(now)))
    .option('--until <time>', 'request time up to (exclusive): RFC 3339 or back from now', usage(timeParser(now)))
    .option('--limit <n>', 'at most n entries', usage(parseLimit))
    .option('--pseudonym-key-file <file>', 'file holding the pseudonym key (privacy.pseudonym_key) to search pseudonymised fields by their clear value')
    .option('--pseudonym-key-id <id>', 'its key id (privacy.pseudonym_key_id)');
}

function keyOf(o: KeyOptions): PseudonymKey | undefined {
  if (!o.pseudonymKeyFile) {
    if (o.pseudonymKeyId) throw new InvalidArgumentError('--pseudonym-key-id needs --pseudonym-key-file');
    return undefined;
  }
  try {
    return readPseudonymKey(o.pseudonymKeyFile, o.pseudonymKeyId);
  } catch (e) {
    if (e instanceof PseudonymKeyError) throw new InvalidArgumentError(e.message);
    throw e;
  }
}

/** The checked filters as one condition; bad combinations are usage errors. */
export function conditionOf(o: FilterOptions & KeyOptions) {
  try {
    checkFilters(o);
  } catch (e) {
    if (e instanceof FilterError) throw new InvalidArgumentError(e.message);
    throw e;
  }
  return filterCondition(o, keyOf(o));
}

/**
 * The index module, loaded on first use: it needs node:sqlite (Node >= 22.13), which the rest of
 * the CLI (get, verify, trust, status) does not, so those keep working on any Node that runs it.
 */
async function indexModule(): Promise<typeof import('./audit-index.js')> {
  try {
    return await import('./audit-index.js');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ERR_UNKNOWN_BUILTIN_MODULE') {
      throw new Error(`search, export and serve need node:sqlite, in Node 22.13 or later (this is Node ${process.versions.node})`);
    }
    throw e;
  }
}

/** Opens the index of the reader's server, updates it by a verified walk, and hands it to `fn`. */
export async function withIndex<T>(ctx: WorkbenchContext, fn: (index: AuditIndex, state: IndexState, update: UpdateResult) => Promise<T>): Promise<T> {
  return ctx.withReader((reader) => withReaderIndex(reader, ctx.globals(), fn));
}

/** withIndex on a reader already open. */
async function withReaderIndex<T>(reader: AuditReader, g: { database: string; prefix: string; stateDir: string }, fn: (index: AuditIndex, state: IndexState, update: UpdateResult) => Promise<T>): Promise<T> {
  const { AuditIndex, indexFile } = await indexModule();
  const ident = { serverUuid: reader.serverUuid, database: g.database, prefix: g.prefix };
  const file = indexFile(g.stateDir, reader.serverUuid, g.database, g.prefix);
  // Nothing committed since the index's verified state: no walk (and no index thread) to start.
  // The answer stays complete up to that state, verified when it was (the console asks often).
  const current = await reader.currentTxId();
  const index = AuditIndex.open(file, ident);
  try {
    const known = index.state();
    if (known.txId > 0 && known.txId >= current) return await fn(index, known, { state: known, transactions: 0, entries: 0, walkMs: 0, commitMs: 0 });
    // The writer thread updates the file through its own connection; this one, idle meanwhile
    // (no statement open, so no lock held), reads the committed update afterwards.
    const update = await updateIndex(reader, { file, ident });
    return await fn(index, update.state, update);
  } finally {
    index.close();
  }
}

/**
 * The audit ids of a trace in the auditor's index (brought up to date first): `find --trace` asks
 * it for traces without index keys in immudb, those the plugin started itself (decision #38).
 */
export function traceIdsFromIndex(reader: AuditReader, g: { database: string; prefix: string; stateDir: string }, traceId: string): Promise<string[]> {
  return withReaderIndex(reader, g, async (index) => [...index.query(filterCondition({ trace: traceId }))].map((r) => r.audit_id));
}

function noMatch(state: IndexState) {
  process.stderr.write(`immudb-audit: no entries match; ${stateLine(state)}\n`);
  process.exitCode = 1;
}

async function write(out: Writable, chunk: string): Promise<void> {
  if (!out.write(chunk)) await once(out, 'drain');
}

export function registerWorkbench(program: Command, ctx: WorkbenchContext): void {
  addFilters(
    program
      .command('search')
      .description(`entries matching every filter given, from this auditor's index, brought up to date by a verified walk first (as verify --all); at most ${DEFAULT_SEARCH_LIMIT} unless --limit; exit 1 when nothing matches`),
  )
    .option('--csv', 'CSV (RFC 4180) instead of a table; the verified state goes to stderr')
    .action(async (o: SearchOptions) => {
      const g = ctx.globals();
      if (g.json && o.csv) throw new InvalidArgumentError('give --json or --csv, not both');
      const cond = conditionOf(o);
      const limit = o.limit ?? DEFAULT_SEARCH_LIMIT;
      await withIndex(ctx, async (index, state, update) => {
        const rows = [...index.query(cond, limit + 1)];
        const more = rows.length > limit;
        if (more) rows.pop();
        const matched = more ? index.count(cond) : rows.length;
        const shown = more ? `first ${rows.length} of ${matched} matching entries (raise --limit for more)` : `${rows.length} matching ${rows.length === 1 ? 'entry' : 'entries'}`;
        // Coverage of the answered time window, per node (coverage-table.ts): gaps exit 5.
        const cov = index.coverage.report(o.since, o.until);
        if (g.json) {
          for (const r of rows) process.stdout.write(JSON.stringify(rowJson(r)) + '\n');
          const indexed = { transactions: update.transactions, entries: update.entries };
          process.stdout.write(JSON.stringify({ summary: { ...stateJson(state), indexed_now: indexed, matched, shown: rows.length, ...coverageJson(cov) } }) + '\n');
        } else if (o.csv) {
          process.stdout.write(csvHeader() + rows.map(csvRow).join(''));
          if (rows.length) process.stderr.write(`${shown}; ${stateLine(state)}\n`);
          if (cov.gaps.length || cov.silences.length) process.stderr.write(coverageText(cov).slice(1) + '\n');
        } else if (rows.length) {
          process.stdout.write(`${stateLine(state)}\n${table(rows)}\n${shown}${coverageText(cov)}\n`);
        }
        if (!rows.length) noMatch(state);
        if (!rows.length && !g.json && !o.csv && (cov.gaps.length || cov.silences.length)) process.stderr.write(coverageText(cov).slice(1) + '\n');
        if (cov.gaps.length) process.exitCode = COVERAGE_GAP_EXIT;
      });
    });

  addFilters(
    program
      .command('export')
      .description("every entry matching the filters, from this auditor's index (brought up to date by a verified walk first), streamed to stdout or a file; the verified state goes to stderr"),
  )
    .addOption(new Option('--format <format>', 'jsonl (as search --json), csv (RFC 4180) or ocsf (OCSF 1.8.0 API Activity, JSON Lines)').choices(['jsonl', 'csv', 'ocsf']).makeOptionMandatory())
    .option('-o, --output <file>', 'write to this file (complete or not at all) instead of stdout')
    .action(async (o: ExportOptions) => {
      const g = ctx.globals();
      const cond = conditionOf(o);
      await withIndex(ctx, async (index, state) => {
        const tmp = o.output ? `${o.output}.partial` : undefined;
        const out: Writable = tmp ? createWriteStream(tmp, { mode: 0o600 }) : process.stdout;
        const line = o.format === 'csv' ? csvRow
          : o.format === 'jsonl' ? (r: StoredRow) => JSON.stringify(rowJson(r)) + '\n'
          : (r: StoredRow) => JSON.stringify(toOcsf(r, { serverUuid: state.serverUuid, database: g.database, prefix: g.prefix, productVersion: ctx.productVersion })) + '\n';
        let n = 0;
        try {
          if (o.format === 'csv') await write(out, csvHeader());
          for (const r of index.query(cond, o.limit)) {
            await write(out, line(r));
            n++;
          }
          if (tmp) {
            out.end();
            await once(out, 'finish');
            renameSync(tmp, o.output!);
          }
        } catch (e) {
          if (tmp) {
            out.destroy();
            rmSync(tmp, { force: true });
          }
          throw e;
        }
        if (n) process.stderr.write(`exported ${n} ${n === 1 ? 'entry' : 'entries'} (${o.format})${o.output ? ` to ${o.output}` : ''}; ${stateLine(state)}\n`);
        else noMatch(state);
      });
    });

  program
    .command('hash')
    .description("a value's pseudonym as the plugin stores it (HMAC-SHA256 under the pseudonym key), for each field that can be pseudonymised or the one given")
    .argument('<value>', 'the clear value (username, custom id, subject, IP address)')
    .requiredOption('--pseudonym-key-file <file>', 'file holding the pseudonym key (privacy.pseudonym_key)')
    .requiredOption('--pseudonym-key-id <id>', 'its key id (privacy.pseudonym_key_id)')
    .addOption(new Option('--field <field>', 'only this field').choices([...PSEUDONYM_FIELDS]))
    .action((value: string, o: KeyOptions & { field?: PseudonymizableField }) => {
      const key = keyOf(o)!;
      const fields = o.field ? [o.field] : PSEUDONYM_FIELDS;
      const pseudonyms: Record<string, string> = {};
      for (const f of fields) {
        const p = pseudonymOf(key, f, value);
        if (p !== null) pseudonyms[f] = p;
      }
      if (!Object.keys(pseudonyms).length) throw new InvalidArgumentError(`${JSON.stringify(value)} is not an IP address, so it cannot be a ${o.field} pseudonym`);
      if (ctx.globals().json) process.stdout.write(JSON.stringify({ key_id: key.id, pseudonyms }) + '\n');
      else process.stdout.write(Object.entries(pseudonyms).map(([f, p]) => `${f.padEnd(18)} ${p}`).join('\n') + `\n(key id ${key.id})\n`);
    });
}
