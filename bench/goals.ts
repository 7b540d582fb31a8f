// Benchmark 6: issue 17's goal table. Every ratio is measured in this one run, rounds of the arms
// alternating on the same machine state:
//   no-op    the noop plugin (one kong.log.serialize() per event, nothing else), on our plugin
//            server command and, for comparison, on kong-pdk's kong-js-pluginserver
//   ours     the immudb-audit plugin, end to end (captured, spooled, written, verified), tracing on
//   batched  an unverified batched writer with immudb-log-audit's layout: each 200 lines sent as
//            one plain Set (payload, primary key, 3 field indexes per line), from this process
//   naive    one VerifiableSet per entry, proof checked (our client, this process)
// CPU is read per thread of the plugin server (/proc/<pid>/task): main, audit, V8 helpers, libuv.
// "The floor" is the sum of the audit work's irreducible steps, each timed alone on the same
// payloads (floorStages).
import type { KongSerializedLog } from '../plugin/capture/kong-log.js';
import type { ImmudbClient } from '../plugin/store/immudb-client.js';
import { measureFloor } from './floor.js';
import { auditRecords, fixturePool, serializedPool } from './lib/payloads.js';
import { cpuMs, rss, ThreadMeter, type ThreadGroup } from './lib/proc.js';
import type { BenchContext, BenchResult, Table } from './lib/report.js';
import { auditConfig, drive, startBenchImmudb, startBenchServer, startWorkers, WriteCounter, type BenchImmudb, type BenchServer } from './lib/stack.js';
import { checkTarget, median, perSecond } from './lib/stats.js';
import { naiveVerifiedSets } from './lib/writes.js';

const WORKERS = 2;
const CONCURRENCY = 64;
const LINES_PER_SETALL = 200;

type PerThread = Record<ThreadGroup, number>;
const per = (ms: PerThread, n: number): PerThread => Object.fromEntries(Object.entries(ms).map(([k, v]) => [k, (v * 1000) / n])) as PerThread;
const total = (t: PerThread) => t.main + t.audit + t.v8 + t.libuv + t.other;

// ---------------------------------------------------------------------------------------------
// The unverified batched writer (immudb-log-audit's layout, our gRPC client's plain Set)
// ---------------------------------------------------------------------------------------------

/** immudb-log-audit's kvs for one log line: payload, primary key, and three field indexes. */
function logAuditKvs(line: string, i: number): Array<{ key: Buffer; value: Buffer }> {
  const log = JSON.parse(line) as KongSerializedLog & { started_at?: number; client_ip?: string; request?: { method?: string }; response?: { status?: number } };
  const pk = `${log.started_at ?? 0}.${i}`;
  const payloadKey = Buffer.from(`kong.payload.${pk}`);
  const ref = Buffer.from(pk);
  return [
    { key: payloadKey, value: Buffer.from(line) },
    { key: Buffer.from(`kong.pk.${pk}`), value: ref },
    { key: Buffer.from(`kong.idx.client_ip.${String(log.client_ip)}.${pk}`), value: ref },
    { key: Buffer.from(`kong.idx.method.${String(log.request?.method)}.${pk}`), value: ref },
    { key: Buffer.from(`kong.idx.status.${String(log.response?.status)}.${pk}`), value: ref },
  ];
}

async function batchedWriter(client: ImmudbClient, lines: readonly string[], n: number, offset: number): Promise<{ cpuMs: number; ms: number; threads: PerThread }> {
  // This process runs nothing else meanwhile: its threads' CPU is the writer's.
  const meter = new ThreadMeter(process.pid);
  const u0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < n; i += LINES_PER_SETALL) {
    const kvs: Array<{ key: Buffer; value: Buffer }> = [];
    for (let j = i; j < Math.min(n, i + LINES_PER_SETALL); j++) kvs.push(...logAuditKvs(lines[j % lines.length]!, offset + j));
    await client.set(kvs);
  }
  const u = process.cpuUsage(u0);
  return { cpuMs: (u.user + u.system) / 1000, ms: performance.now() - t0, threads: per(meter.lap(), n) };
}

// ---------------------------------------------------------------------------------------------
// Rounds
// ---------------------------------------------------------------------------------------------

interface RoundFigures {
  noop: PerThread;
  noopUpstream: PerThread;
  ours: PerThread;
  oursImmudb: number;
  oursRate: number;
  batchedClient: number;
  batchedThreads: PerThread;
  batchedImmudb: number;
}

export async function run(ctx: BenchContext): Promise<BenchResult> {
  const rounds = ctx.quick ? 2 : 3;
  const perRound = ctx.quick ? 3_000 : 8_000;
  const backlog = ctx.quick ? 20_000 : 100_000;
  const pool = fixturePool(700);
  const serialized = serializedPool(700);
  const immudb: BenchImmudb = await startBenchImmudb();
  const servers: BenchServer[] = [];
  try {
    const direct = await immudb.connect('bench_goals_direct');
    const floor = await measureFloor(ctx, await immudb.connect('bench_goals_floor'), immudb.pid!);
    ctx.log(`goals: floor ${floor.floor.toFixed(1)} µs/entry`);

    const noop = await startBenchServer('noop');
    servers.push(noop);
    // The same no-op plugin on kong-pdk's own kong-js-pluginserver: what our listener saves.
    const noopUp = await startBenchServer('noop', { command: 'kong-pdk' });
    servers.push(noopUp);
    const noopUpWorkers = await startWorkers(noopUp, WORKERS, {});
    await drive(noopUpWorkers, serialized, { concurrency: CONCURRENCY, count: 2_000 });
    const ours = await startBenchServer('audit');
    servers.push(ours);
    const noopWorkers = await startWorkers(noop, WORKERS, {});
    const db = 'bench_goals';
    const oursWorkers = await startWorkers(ours, WORKERS, auditConfig(immudb, db));
    await drive(noopWorkers, serialized, { concurrency: CONCURRENCY, count: 2_000 });
    let sent = (await drive(oursWorkers, serialized, { concurrency: CONCURRENCY, count: 2_000 })).events;
    const counter = await WriteCounter.open(immudb, db, ours.dataDir);
    await counter.waitVerified(sent, 60_000);
    await batchedWriter(direct, serialized, 2_000, 0);

    const noopMeter = new ThreadMeter(noop.pid);
    const noopUpMeter = new ThreadMeter(noopUp.pid);
    const oursMeter = new ThreadMeter(ours.pid);
    const immudbCpu = () => cpuMs(immudb.pid!);
    const figures: RoundFigures[] = [];
    let lineNo = 10_000;
    for (let r = 0; r < rounds; r++) {
      noopMeter.lap();
      // No-op rounds are cheap: 3x the events, so /proc's 10 ms ticks resolve a few µs per event.
      const dn = await drive(noopWorkers, serialized, { concurrency: CONCURRENCY, count: 3 * perRound });
      if (dn.errors) throw new Error(`no-op: ${dn.errors} events failed: ${dn.firstError}`);
      const noopCpu = per(noopMeter.lap(), dn.events);
      noopUpMeter.lap();
      const du = await drive(noopUpWorkers, serialized, { concurrency: CONCURRENCY, count: 3 * perRound });
      if (du.errors) throw new Error(`no-op on kong-js-pluginserver: ${du.errors} events failed: ${du.firstError}`);
      const noopUpCpu = per(noopUpMeter.lap(), du.events);

      oursMeter.lap();
      let i0 = immudbCpu();
      const t0 = performance.now();
      const d = await drive(oursWorkers, serialized, { concurrency: CONCURRENCY, count: perRound });
      if (d.errors) throw new Error(`ours: ${d.errors} events failed: ${d.firstError}`);
      sent += d.events;
      const p = await counter.waitVerified(sent, 120_000);
      if (p.verifiedEntries < sent) throw new Error(`ours: only ${p.verifiedEntries} of ${sent} verified`);
      const oursCpu = per(oursMeter.lap(), d.events);
      const oursImmudb = ((immudbCpu() - i0) * 1000) / d.events;
      const oursRate = perSecond(d.events, p.at - t0);

      i0 = immudbCpu();
      const b = await batchedWriter(direct, serialized, perRound, lineNo);
      lineNo += perRound;
      const batchedImmudb = ((immudbCpu() - i0) * 1000) / perRound;
      figures.push({ noop: noopCpu, noopUpstream: noopUpCpu, ours: oursCpu, oursImmudb, oursRate, batchedClient: (b.cpuMs * 1000) / perRound, batchedThreads: b.threads, batchedImmudb });
      ctx.log(`goals: round ${r + 1}/${rounds}: ours ${total(oursCpu).toFixed(0)} + immudb ${oursImmudb.toFixed(0)} µs/entry, batched ${((b.cpuMs * 1000) / perRound).toFixed(0)} + ${batchedImmudb.toFixed(0)}, no-op ${total(noopCpu).toFixed(0)}`);
    }

    const naive = await naiveVerifiedSets(direct, auditRecords(3_000, 'naive', pool), ctx.quick ? 2_000 : 4_000);
    const naiveRate = perSecond(naive.entries, naive.ms);

    // Memory with a backlog: immudb paused, events keep coming; RSS of the whole plugin server.
    const rssRest = rss(ours.pid).rss;
    process.kill(immudb.pid!, 'SIGSTOP');
    let rssBacklog: number;
    try {
      const d = await drive(oursWorkers, serialized, { concurrency: CONCURRENCY, count: backlog });
      if (d.errors) throw new Error(`backlog: ${d.errors} events failed: ${d.firstError}`);
      sent += d.events;
      rssBacklog = rss(ours.pid).rss;
    } finally {
      process.kill(immudb.pid!, 'SIGCONT');
    }
    await counter.waitVerified(sent, 240_000);
    const mib = (b: number) => b / 2 ** 20;
    const rss400k = mib(rssRest) + ((mib(rssBacklog) - mib(rssRest)) * 400_000) / backlog;

    // Per-round ratios, then their median.
    const med = (f: (x: RoundFigures) => number) => median(figures.map(f));
    const cpuPerEntryRatio = med((x) => (total(x.ours) + x.oursImmudb) / (x.batchedClient + x.batchedImmudb));
    const serverRatio = med((x) => total(x.ours) / total(x.noop));
    const auditFloorRatio = med((x) => x.ours.audit / floor.floor);
    const mainRatio = med((x) => x.noop.main / x.ours.main);
    const naiveRatio = med((x) => x.oursRate / naiveRate);

    const threadRow = (label: string, t: PerThread, extra: Record<string, number> = {}) => ({ arm: label, main: t.main, audit: t.audit, 'V8 helpers': t.v8, libuv: t.libuv, other: t.other, 'plugin server': total(t), ...extra });
    const tables: Table[] = [
      {
        title: `CPU per event by thread, µs (median over ${rounds} rounds of ${perRound} events, ${3 * perRound} for the no-op arms, at saturation, ${CONCURRENCY} in flight; ours includes writing and verifying them)`,
        rows: [
          threadRow('no-op plugin', medianThreads(figures.map((x) => x.noop))),
          threadRow("no-op plugin on kong-pdk's kong-js-pluginserver", medianThreads(figures.map((x) => x.noopUpstream))),
          threadRow('ours (immudb-audit)', medianThreads(figures.map((x) => x.ours)), { immudb: med((x) => x.oursImmudb), 'entries/s end to end': med((x) => x.oursRate) }),
          { ...threadRow(`unverified batched writer (${LINES_PER_SETALL} lines per Set, 5 kvs per line; this process)`, medianThreads(figures.map((x) => x.batchedThreads))), 'writer process': med((x) => x.batchedClient), immudb: med((x) => x.batchedImmudb) },
          { arm: 'one VerifiableSet per entry (client, proof checked)', 'writer process': naive.cpuUsPerEntry, 'entries/s end to end': naiveRate },
        ],
      },
      { title: `The floor (benchmark 7, re-measured here): each step of the audit work alone, CPU µs per entry on one thread (sum ${floor.floor.toFixed(1)} µs)`, rows: floor.rows },
      { title: 'The trace-index key both ways (benchmark 7)', rows: floor.traceIndex },
      { title: 'Memory with a backlog (immudb paused); the linear figure is an upper bound only if growth stayed linear (the memory queue is bounded by queue.max_entries, the rest waits in the spool)', rows: [{ 'entries backlogged': backlog, 'RSS before MiB': mib(rssRest), 'RSS backlogged MiB': mib(rssBacklog), 'RSS at 400k MiB if linear': rss400k }] },
    ];
    return {
      name: 'goals',
      title: "6. Issue 17's goals: CPU per entry and per thread against the baselines and the floor",
      tables,
      figures: { rounds: figures, floor: floor.floor, floorRows: floor.rows, traceIndex: floor.traceIndex, naiveRate, rssRest, rssBacklog, backlog, rss400kMiB: rss400k },
      targets: [
        checkTarget('CPU per entry: ours / unverified batched writer', cpuPerEntryRatio, '<=', 1.25),
        checkTarget('plugin-server CPU per event: ours / no-op', serverRatio, '<=', 2.0),
        checkTarget('audit work off the main thread / floor', auditFloorRatio, '<=', 1.5),
        checkTarget('main-thread CPU per event: no-op / ours', mainRatio, '>=', 0.95),
        checkTarget(`RSS MiB with ${backlog / 1000}k backlogged (goal is at 400k)`, mib(rssBacklog), '<=', 200),
        checkTarget('entries/s: ours / one VerifiableSet per entry', naiveRatio, '>=', 20),
      ],
      notes: [
        'CPU per entry = plugin server (all threads) + immudb for ours; writer process + immudb for the batched writer; the load generator (playing Kong) is in neither',
        'the audit thread figure is the plugin\'s worker thread alone (thread name WorkerThread); V8 helper threads (GC, compilation) serve both threads',
        `the batched writer parses each log line and sends ${LINES_PER_SETALL} lines as one Set of 5 kvs each (payload, primary key, client_ip/method/status indexes), no proofs: immudb-log-audit's layout`,
        'verify --all / plain TxScan is measured by benchmark 3 (verify); the run summary prints it with these',
      ],
    };
  } finally {
    for (const s of servers) await s.dispose().catch(() => undefined);
    await immudb.dispose();
  }
}

function medianThreads(xs: PerThread[]): PerThread {
  const keys: ThreadGroup[] = ['main', 'audit', 'v8', 'libuv', 'other'];
  return Object.fromEntries(keys.map((k) => [k, median(xs.map((x) => x[k]))])) as PerThread;
}
