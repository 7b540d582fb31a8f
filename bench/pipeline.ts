// Benchmark 2: pipeline throughput. Entries captured, spooled, written and verified in immudb
// end to end through the real plugin server (log events in, verified transactions out), against
// (a) the raw ceiling: batched Set calls of the same payloads through the same gRPC client, no
// preconditions, no proofs, one call in flight like the plugin's writer; and (b) the naive
// design: one VerifiableSet per entry, each proof checked. Also the pipeline's drain rate: a
// backlog captured while immudb was paused (SIGSTOP), then written and verified with nothing
// else running, which isolates spool -> write -> verify from capture.
import { join } from 'node:path';
import { auditRecords, fixturePool, serializedPool } from './lib/payloads.js';
import { profileThreadsWhile } from './lib/profile.js';
import { CpuMeter } from './lib/proc.js';
import type { BenchContext, BenchResult, Table } from './lib/report.js';
import { auditConfig, drive, startBenchImmudb, startBenchServer, startWorkers, WriteCounter, type BenchServer } from './lib/stack.js';
import { checkTarget, median, perSecond, ratio } from './lib/stats.js';
import { naiveVerifiedSets, writeBatches } from './lib/writes.js';
import type { ProfileSummary } from './lib/cpuprofile.js';

const BATCH = 256;
const WORKERS = 2;
const CONCURRENCY = 64;

export function profileTables(label: string, s: ProfileSummary): Table[] {
  return [
    { title: `${label}: CPU by category (share of busy time; ${s.busyMs.toFixed(0)} ms busy of ${s.totalMs.toFixed(0)} ms)`, rows: s.categories.map((c) => ({ category: c.category, ms: c.ms, share: c.share })) },
    { title: `${label}: top frames by self time`, rows: s.topSelf.slice(0, 15).map((f) => ({ frame: f.frame, category: f.category, ms: f.ms, share: f.share })) },
    { title: `${label}: inclusive time of hot-path functions`, rows: s.inclusive.filter((f) => f.ms > 0).map((f) => ({ function: f.function, ms: f.ms, share: f.share })) },
  ];
}

export async function run(ctx: BenchContext): Promise<BenchResult> {
  const nRaw = ctx.quick ? 10_000 : 30_000;
  const nE2e = ctx.quick ? 10_000 : 30_000;
  const nDrain = ctx.quick ? 8_000 : 20_000;
  const naiveMs = ctx.quick ? 2_000 : 4_000;
  const pool = fixturePool(700);
  const serialized = serializedPool(700);

  const immudb = await startBenchImmudb();
  let server: BenchServer | undefined;
  try {
    // (a) raw ceiling and (b) naive design, through our client from this process.
    const client = await immudb.connect('bench_direct');
    await writeBatches(client, auditRecords(2_000, 'warm', pool), BATCH, 'set', 5_000);
    const raw = await writeBatches(client, auditRecords(nRaw, 'raw', pool), BATCH, 'set', 30_000);
    const naive = await naiveVerifiedSets(client, auditRecords(5_000, 'naive', pool), naiveMs);
    ctx.log(`pipeline: raw ${perSecond(raw.entries, raw.ms).toFixed(0)}/s, naive ${perSecond(naive.entries, naive.ms).toFixed(0)}/s`);

    // The protocol's own ceiling: the no-op plugin answering the same events the same way (one
    // kong.log.serialize() each, no audit work), so the end-to-end figure can be read against
    // what Kong's RPC and the load generator leave on this machine.
    const noop = await startBenchServer('noop');
    let protocolRate: number;
    try {
      const noopWorkers = await startWorkers(noop, WORKERS, {});
      await drive(noopWorkers, serialized, { concurrency: CONCURRENCY, count: 2_000 });
      const d = await drive(noopWorkers, serialized, { concurrency: CONCURRENCY, count: nE2e });
      if (d.errors) throw new Error(`${d.errors} no-op events failed: ${d.firstError}`);
      protocolRate = perSecond(d.events, d.ms);
    } finally {
      await noop.dispose();
    }

    // End to end through the plugin server.
    server = await startBenchServer('audit');
    const db = 'bench_pipeline';
    const config = auditConfig(immudb, db, {}, { max_batch_size: BATCH, max_coalescing_delay: 0.05 });
    const workers = await startWorkers(server, WORKERS, config);
    let sent = (await drive(workers, serialized, { concurrency: CONCURRENCY, count: 2_000 })).events;
    const counter = await WriteCounter.open(immudb, db, server.dataDir);
    await counter.waitVerified(sent, 30_000);

    const meter = new CpuMeter({ server: server.pid, serverMain: { mainThread: server.pid }, immudb: immudb.pid, driver: process.pid });
    const e2eRun = async () => {
      const t0 = performance.now();
      const d = await drive(workers, serialized, { concurrency: CONCURRENCY, count: nE2e });
      if (d.errors) throw new Error(`${d.errors} events failed: ${d.firstError}`);
      sent += d.events;
      const p = await counter.waitVerified(sent, 120_000);
      if (p.verifiedEntries < sent) throw new Error(`only ${p.verifiedEntries} of ${sent} entries verified after 120 s`);
      return { d, ms: p.at - t0, captureMs: d.ms };
    };
    let profile: ProfileSummary | undefined;
    let threadProfile: ProfileSummary | undefined;
    let e2e: Awaited<ReturnType<typeof e2eRun>>;
    if (ctx.profile) {
      const r = await profileThreadsWhile(server.probeSock, join(ctx.outDir, 'pipeline-e2e'), e2eRun);
      e2e = r.result;
      profile = r.main;
      threadProfile = r.thread;
    } else {
      e2e = await e2eRun();
    }
    const e2eCpu = meter.lap();

    // Drain: capture a backlog while immudb is paused, then let the pipeline catch up alone.
    const before = await counter.poll();
    process.kill(immudb.pid!, 'SIGSTOP');
    let backlog;
    try {
      backlog = await drive(workers, serialized, { concurrency: CONCURRENCY, count: nDrain });
    } finally {
      process.kill(immudb.pid!, 'SIGCONT');
    }
    sent += backlog.events;
    meter.lap();
    const t0 = performance.now();
    const after = await counter.waitVerified(sent, 120_000);
    const drainCpu = meter.lap();
    const drained = after.verifiedEntries - before.verifiedEntries;
    const drainRate = perSecond(drained, after.at - t0);

    const rawRate = perSecond(raw.entries, raw.ms);
    const naiveRate = perSecond(naive.entries, naive.ms);
    const e2eRate = perSecond(nE2e, e2e.ms);
    const captureRate = perSecond(nE2e, e2e.captureMs);
    const per = (cpu: Record<string, number>, n: number, k: string) => (cpu[k]! * 1000) / n;
    const rows = [
      { path: '(a) raw ceiling: Set of 256, no proofs, 1 in flight', 'entries/s': rawRate, 'vs raw': 1, 'client CPU µs/entry': raw.cpuUsPerEntry, 'batch call p50 ms': median(raw.batchMs) },
      { path: '(b) naive: VerifiableSet + proof per entry', 'entries/s': naiveRate, 'vs raw': ratio(naiveRate, rawRate), 'client CPU µs/entry': naive.cpuUsPerEntry, 'batch call p50 ms': median(naive.batchMs) },
      { path: '(c) protocol ceiling: no-op plugin, same events, nothing audited', 'entries/s': protocolRate, 'vs raw': ratio(protocolRate, rawRate) },
      { path: 'plugin end to end: capture+spool+write+verify', 'entries/s': e2eRate, 'vs raw': ratio(e2eRate, rawRate), 'server CPU µs/entry': per(e2eCpu, nE2e, 'server'), 'of which main thread': per(e2eCpu, nE2e, 'serverMain'), 'immudb CPU µs/entry': per(e2eCpu, nE2e, 'immudb'), 'driver CPU µs/entry': per(e2eCpu, nE2e, 'driver') },
      { path: '  of which capture alone (events answered)', 'entries/s': captureRate, 'vs raw': ratio(captureRate, rawRate) },
      { path: 'plugin drain: spooled backlog -> written+verified', 'entries/s': drainRate, 'vs raw': ratio(drainRate, rawRate), 'server CPU µs/entry': per(drainCpu, drained, 'server'), 'immudb CPU µs/entry': per(drainCpu, drained, 'immudb') },
    ];
    const tables: Table[] = [{ title: `Throughput, batch ${BATCH}, realistic entries (${(raw.entries ? auditRecords(50, 'x', pool).reduce((a, r) => a + r.value.length, 0) / 50 : 0).toFixed(0)} B canonical JSON); ${CONCURRENCY} events in flight`, rows }];
    if (profile) tables.push(...profileTables(threadProfile ? 'Plugin server main thread (answers Kong) during the end-to-end run' : 'Plugin server during the end-to-end run', profile));
    if (threadProfile) tables.push(...profileTables('Plugin server audit thread during the end-to-end run', threadProfile));
    return {
      name: 'pipeline',
      title: '2. Pipeline throughput: captured, spooled, written and verified',
      tables,
      figures: {
        rawEntriesPerSec: rawRate,
        naiveEntriesPerSec: naiveRate,
        e2eEntriesPerSec: e2eRate,
        captureEventsPerSec: captureRate,
        noopEventsPerSec: protocolRate,
        noopVsRaw: ratio(protocolRate, rawRate),
        e2eVsNoop: ratio(e2eRate, protocolRate),
        drainEntriesPerSec: drainRate,
        e2eVsRaw: ratio(e2eRate, rawRate),
        drainVsRaw: ratio(drainRate, rawRate),
        e2eVsNaive: ratio(e2eRate, naiveRate),
        e2eCpuMs: e2eCpu,
        drainCpuMs: drainCpu,
        spoolActive: true,
        ...(profile ? { profileCategories: profile.categories } : {}),
        ...(threadProfile ? { auditThreadProfileCategories: threadProfile.categories } : {}),
      },
      targets: [
        checkTarget('end-to-end / raw ceiling', ratio(e2eRate, rawRate), '>=', 0.8),
        checkTarget('end-to-end / naive', ratio(e2eRate, naiveRate), '>=', 20),
        checkTarget('drain (spool->verified) / raw ceiling', ratio(drainRate, rawRate), '>=', 0.8),
      ],
      notes: [
        'end to end = from the first log event sent until the plugin\'s trusted state covers the last entry (its own proof check passed); the spool (group-committed fsync before the handler returns) is on the path',
        '(c) bounds any plugin here: with no audit work at all, events answered through the plugin server reach this share of the raw write rate',
        'the raw ceiling and the naive design run in this process; the plugin runs in the plugin server, which shares the 2 cores with the driver (playing Kong) and immudb',
      ],
    };
  } finally {
    await server?.dispose();
    await immudb.dispose();
  }
}
