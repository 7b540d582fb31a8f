// Benchmark 6: the auditor's workbench.
//  - Search: 1,000,000 entries (100,000 with --quick) filled into the index directly (not through
//    immudb: rows of realistic entries, times spread over 30 days), then filtered searches as
//    `search` runs them (first 1000 rows by time, and the count of all matches). Goal < 1 s each.
//  - Index update against `verify --all` on the same transactions through a real immudb
//    (100,000 entries, 25,600 with --quick, in 1024-entry transactions): the update is the same
//    verified walk plus the index inserts; a fresh auditor each time, so the update measured is
//    a first run (an empty index, filled in bulk). Goal: update rate >= 0.8 x verify --all rate.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { v7 as uuidv7 } from 'uuid';
import { AuditReader } from '../plugin/verify/verified-read.js';
import { AuditIndex } from '../plugin/workbench/audit-index.js';
import { filterCondition, parseStatus, type FilterOptions } from '../plugin/workbench/filters.js';
import { indexRow } from '../plugin/workbench/index-row.js';
import { updateIndex } from '../plugin/workbench/update-index.js';
import { auditRecords, fixturePool } from './lib/payloads.js';
import type { BenchContext, BenchResult } from './lib/report.js';
import { startBenchImmudb } from './lib/stack.js';
import { checkTarget, perSecond, ratio } from './lib/stats.js';

const PREFIX = 'audit';
const DB = 'bench_search';
const TX_SIZE = 1024;
const DAY = 86_400_000;

function fillIndex(index: AuditIndex, count: number, now: number): number {
  const pool = auditRecords(1000, PREFIX, fixturePool(1000)).map((r) => {
    return { row: indexRow(r.key.toString(), r.value.toString(), 0), json: r.value };
  });
  const t0 = performance.now();
  const perTx = 512;
  for (let n = 0; n < count; ) {
    index.begin();
    // Commit every 100,000 rows, as an update of that many would.
    const start = n;
    const end = Math.min(count, n + 100_000);
    for (; n < end; n++) {
      const p = pool[n % pool.length]!;
      const time = now - 30 * DAY + Math.floor((n / count) * 30 * DAY);
      index.add({ ...p.row, audit_id: uuidv7(), tx_id: 1 + Math.floor(n / perTx), time }, time + 500, p.json);
    }
    index.commit(1 + Math.floor((n - 1) / perTx), new Date().toISOString(), end - start);
  }
  return performance.now() - t0;
}

export async function run(ctx: BenchContext): Promise<BenchResult> {
  const dir = mkdtempSync(join(tmpdir(), 'kia-bench-search-'));
  const immudb = await startBenchImmudb();
  try {
    // 1. Searches over a large index.
    const rows = ctx.quick ? 100_000 : 1_000_000;
    const now = Date.now();
    const index = AuditIndex.open(join(dir, 'filled.index.sqlite'), { serverUuid: 'bench', database: DB, prefix: PREFIX });
    ctx.log(`search: filling the index with ${rows} rows`);
    const fillMs = fillIndex(index, rows, now);
    // The questions (the goal applies to these), then broader searches over everything.
    const searches: Array<[string, FilterOptions, boolean]> = [
      ['--consumer alice --since 24h', { consumer: 'alice', since: now - DAY }, true],
      ['--path /api/payments --since 7d --until 6d', { path: '/api/payments', since: now - 7 * DAY, until: now - 6 * DAY }, true],
      ['--status 401,403', { status: parseStatus('401,403') }, true],
      ['--method DELETE --result failure --since 3d', { method: 'DELETE', result: 'failure', since: now - 3 * DAY }, true],
      ['--client-ip 203.0.113.10', { clientIp: '203.0.113.10' }, true],
      ['--status 5xx --route orders-route (all history)', { status: parseStatus('5xx'), route: 'orders-route' }, false],
      ['(no filter)', {}, false],
    ];
    const searchRows = searches.map(([title, f, goal]) => {
      const cond = filterCondition(f);
      const t0 = performance.now();
      const shown = [...index.query(cond, 1001)].length;
      const matched = shown > 1000 ? index.count(cond) : shown;
      return { search: title, goal: goal ? '< 1 s' : '', matched, shown: Math.min(shown, 1000), ms: performance.now() - t0 };
    });
    index.close();
    const slowest = Math.max(...searchRows.filter((r) => r.goal).map((r) => r.ms));

    // 2. Index update against verify --all, same transactions, through immudb.
    const total = ctx.quick ? 25_600 : 100_000;
    const client = await immudb.connect(DB);
    const pool = fixturePool(1000);
    let lastId = '';
    for (let n = 0; n < total; ) {
      const recs = auditRecords(Math.min(TX_SIZE, total - n), PREFIX, pool);
      await client.set(recs.map((r) => ({ key: r.key, value: r.value })));
      lastId = recs.at(-1)!.id;
      n += recs.length;
    }
    await client.get(Buffer.from(`${PREFIX}:entry:${lastId}`));
    const conn = { host: immudb.host, port: immudb.port, username: immudb.username, password: immudb.password, database: DB };
    const walk = async (update: boolean, round: number) => {
      const stateDir = mkdtempSync(join(dir, 'auditor-'));
      const reader = await AuditReader.open(conn, PREFIX, stateDir);
      try {
        const t0 = performance.now();
        const cpu0 = process.cpuUsage();
        let entries: number;
        if (update) {
          entries = (await updateIndex(reader, { file: join(stateDir, 'update.index.sqlite'), ident: { serverUuid: reader.serverUuid, database: DB, prefix: PREFIX } })).entries;
        } else {
          entries = (await reader.verifyAll({ fromTx: 1 })).entries;
        }
        const ms = performance.now() - t0;
        const cpu = process.cpuUsage(cpu0);
        ctx.log(`search: ${update ? 'index update' : 'verify --all'} round ${round}: ${perSecond(entries, ms).toFixed(0)} entries/s`);
        // CPU of the whole process: the walk, and the index writer thread for an update.
        return { mode: update ? 'index update (verified walk + inserts)' : 'verify --all', round, entries, ms, 'entries/s': perSecond(entries, ms), 'process CPU µs/entry': (cpu.user + cpu.system) / entries };
      } finally {
        await reader.close();
      }
    };
    // Alternated, two rounds each: the machine's load drifts.
    const walks: Array<Awaited<ReturnType<typeof walk>>> = [];
    for (const round of [1, 2]) {
      walks.push(await walk(false, round));
      walks.push(await walk(true, round));
    }
    const best = (update: boolean) => Math.max(...walks.filter((w) => w.mode.startsWith('index') === update).map((w) => w['entries/s']));
    const updateVsVerify = ratio(best(true), best(false));

    return {
      name: 'search',
      title: `6. Auditor's workbench: searches over ${rows.toLocaleString('en-US')} indexed entries; index update vs verify --all over ${total.toLocaleString('en-US')} entries`,
      tables: [
        { title: `Searches (first 1000 by time and the count of all matches), index of ${rows.toLocaleString('en-US')} rows, ${(statSync(join(dir, 'filled.index.sqlite')).size / 2 ** 20).toFixed(0)} MiB`, rows: searchRows },
        { title: 'Index update vs verify --all (same transactions, real immudb, fresh auditor each)', rows: walks },
      ],
      figures: {
        indexedRows: rows,
        fillRowsPerSec: perSecond(rows, fillMs),
        slowestSearchMs: slowest,
        updateEntriesPerSec: best(true),
        verifyAllEntriesPerSec: best(false),
        updateVsVerifyAll: updateVsVerify,
      },
      targets: [checkTarget("slowest of the issue's searches (ms)", slowest, '<=', 1000), checkTarget('index update rate / verify --all rate', updateVsVerify, '>=', 0.8)],
      notes: [`update vs verify --all measured in this run: ${updateVsVerify.toFixed(2)} (best of two alternated rounds each, ${total.toLocaleString('en-US')} entries through immudb)`],
    };
  } finally {
    await immudb.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}
