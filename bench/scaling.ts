// Benchmark 5: how the figures move with batch size and payload size, and where the time goes.
//  A. Write ladder by batch size, in this process through our client: Set, + preconditions,
//     VerifiableSet, + our proof check (one pass over the entries), + trusted state saved
//     (= the plugin's AuditWriter). Each rung's loss is one cost, measured.
//  B. The plugin end to end by batch size: drain rate of a spooled backlog (immudb paused while
//     the events arrive, then written and verified by the plugin server alone).
//  C. Payload size: handler rate and plugin-server CPU per event for serialized logs of 1-32 KB
//     (noop and our plugin); verified and raw write rates for values of 256 B to 16 KB.
//  D. Capture stages, in-process: parse, build, id, canonical JSON, record, proof check per
//     entry; the id and canonical JSON next to the library calls they replaced.
//  E. Single-entry verified reads by transaction size.
//  F. Several writers at once (several Kong nodes): one shared database or one database each.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import canonicalize from 'canonicalize';
import { v7 as uuidv7 } from 'uuid';
import { buildAuditEntry } from '../plugin/capture/build-entry.js';
import { encodeEntry, type AuditRecord } from '../plugin/capture/encode.js';
import type { KongSerializedLog } from '../plugin/capture/kong-log.js';
import { queueFields } from '../plugin/config/fields/queue.js';
import { parseTxHeader, verifyListedEntries, verifyVerifiableEntry, verifyVerifiableSet, type TrustedState } from '../plugin/store/proofs/index.js';
import { EntryTypeAction, type Tx, type VerifiableTx } from '../plugin/store/immudb-types.js';
import { canonicalJson } from '../plugin/capture/canonical-json.js';
import { reverseMembers } from '../test/helpers/reverse-members.js';
import { auditId } from '../plugin/capture/audit-id.js';
import { micro } from './lib/micro.js';
import { auditRecords, fixturePool, grownSerialized, meanLength, paddedRecords, shrunkSerialized, writerKvs } from './lib/payloads.js';
import { CpuMeter } from './lib/proc.js';
import type { BenchContext, BenchResult, Table } from './lib/report.js';
import {
  auditConfig, drive, startBenchImmudb, startBenchServer, startWorkers, WriteCounter,
  type BenchImmudb, type BenchServer,
} from './lib/stack.js';
import { median, perSecond, ratio } from './lib/stats.js';
import { TrustedStateStore } from '../plugin/store/trusted-state.js';
import type { ImmudbClient } from '../plugin/store/immudb-client.js';

/** The plugin's largest allowed queue.max_batch_size (from its schema). */
export function pluginMaxBatch(): number {
  const q = (queueFields[0] as unknown as { queue: { fields: Array<Record<string, { between?: [number, number] }>> } }).queue;
  for (const f of q.fields) if (f.max_batch_size?.between) return f.max_batch_size.between[1];
  return 256;
}

type Rung = 'set' | 'set+preconditions' | 'verifiableSet' | 'verify (as built)' | 'verify + state saved (AuditWriter)';

interface RungResult {
  entries: number;
  ms: number;
  cpuUs: number;
  callMs: number[];
  error?: string;
}

/** One rung: `records` written in batches (their trace-index keys included, as the plugin sends them). */
async function rung(client: ImmudbClient, records: AuditRecord[], batch: number, mode: Rung, maxMs: number, stateDir: string): Promise<RungResult> {
  const states = new TrustedStateStore(stateDir);
  let trusted: TrustedState | undefined;
  const verified = mode !== 'set' && mode !== 'set+preconditions';
  if (verified) {
    const kv = [{ key: Buffer.from(`anchor:${Math.random()}`), value: Buffer.from('{}') }];
    trusted = verifyVerifiableSet(await client.verifiableSet(kv, 0), kv);
  }
  const callMs: number[] = [];
  let done = 0;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  try {
    while (done < records.length && performance.now() - t0 < maxMs) {
      const slice = records.slice(done, done + batch);
      const kvs = await writerKvs(slice);
      const pre = mode === 'set' ? [] : slice.map((r) => ({ keyMustNotExist: { key: r.key } }));
      const tb = performance.now();
      if (!verified) await client.set(kvs, pre);
      else {
        const vtx: VerifiableTx = await client.verifiableSet(kvs, trusted!.txId, pre);
        if (mode === 'verifiableSet') trusted = { txId: Number(vtx.tx!.header!.id), alh: trusted!.alh };
        else trusted = verifyVerifiableSet(vtx, kvs, trusted);
        if (mode === 'verify + state saved (AuditWriter)') await states.save({ log: client.database, serverUuid: client.serverUuid, database: client.database, txId: trusted.txId, alh: trusted.alh });
      }
      callMs.push(performance.now() - tb);
      done += slice.length;
    }
  } catch (e) {
    return { entries: done, ms: performance.now() - t0, cpuUs: 0, callMs, error: (e as Error).message.slice(0, 120) };
  }
  const c = process.cpuUsage(c0);
  return { entries: done, ms: performance.now() - t0, cpuUs: (c.user + c.system) / Math.max(1, done), callMs };
}

async function ladder(immudb: BenchImmudb, sizes: number[], rungMs: number, ctx: BenchContext): Promise<Table> {
  const client = await immudb.connect('bench_ladder');
  const pool = fixturePool(500);
  const stateDir = mkdtempSync(join(tmpdir(), 'kia-bench-ladder-'));
  const rungs: Rung[] = ['set', 'set+preconditions', 'verifiableSet', 'verify (as built)', 'verify + state saved (AuditWriter)'];
  const rows: Array<Record<string, unknown>> = [];
  try {
    await rung(client, auditRecords(2000, 'warm', pool), 256, 'verify (as built)', 3000, stateDir);
    for (const b of sizes) {
      const row: Record<string, unknown> = { 'batch (audit entries)': b };
      let setRate = NaN;
      for (const m of rungs) {
        const n = Math.min(40_000, Math.max(b * 8, Math.round(b * 1.5 * (rungMs / 10))));
        const r = await rung(client, auditRecords(n, `l${b}${m.length}`, pool), b, m, rungMs, stateDir);
        const rate = r.error ? NaN : perSecond(r.entries, r.ms);
        if (m === 'set') setRate = rate;
        row[m] = r.error ? `fails: ${r.error}` : rate;
        if (m === 'verify + state saved (AuditWriter)') {
          row['AuditWriter / set'] = ratio(rate, setRate);
          row['call p50 ms'] = median(r.callMs);
          row['client CPU µs/entry'] = r.cpuUs;
        }
      }
      rows.push(row);
      ctx.log(`scaling: ladder batch ${b} done`);
    }
  } finally {
    rmSync(stateDir, { recursive: true, force: true });
  }
  return { title: 'A. Direct writes by batch size, entries/s (each audit entry with its trace-index key; one call in flight; this process through our gRPC client)', rows };
}

async function e2eByBatch(immudb: BenchImmudb, sizes: number[], ctx: BenchContext): Promise<Table> {
  const pool = fixturePool(700).map((f) => f.json);
  const rows: Array<Record<string, unknown>> = [];
  // One plugin server; one configuration (destination database, hence pipeline) per batch size.
  const server = await startBenchServer('audit');
  try {
    for (const b of sizes) {
      const db = `bench_e2e_b${b}`;
      const workers = await startWorkers(server, 2, auditConfig(immudb, db, {}, { max_batch_size: b, max_coalescing_delay: 0.05 }));
      let sent = (await drive(workers, pool, { concurrency: 32, count: Math.max(64, b * 2) })).events;
      const counter = await WriteCounter.open(immudb, db, server.dataDir);
      await counter.waitVerified(sent, 60_000);
      const n = Math.min(ctx.quick ? 6000 : 10_000, Math.max(300, b * 40));
      const before = await counter.poll();
      process.kill(immudb.pid!, 'SIGSTOP');
      try {
        sent += (await drive(workers, pool, { concurrency: 64, count: n })).events;
      } finally {
        process.kill(immudb.pid!, 'SIGCONT');
      }
      const meter = new CpuMeter({ server: server.pid, immudb: immudb.pid });
      const t0 = performance.now();
      const p = await counter.waitVerified(sent, ctx.quick ? 8_000 : 12_000);
      const cpu = meter.lap();
      const drained = p.verifiedEntries - before.verifiedEntries;
      // What is left is written before the next size is measured.
      await counter.waitVerified(sent, 120_000);
      rows.push({
        'max_batch_size': b,
        'entries drained': drained,
        'drain entries/s': perSecond(drained, p.at - t0),
        'txs/s': perSecond(p.verifiedTx - before.verifiedTx, p.at - t0),
        'server CPU µs/entry': (cpu.server! * 1000) / drained,
        'immudb CPU µs/entry': (cpu.immudb! * 1000) / drained,
      });
      ctx.log(`scaling: plugin batch ${b}: ${perSecond(drained, p.at - t0).toFixed(0)} entries/s`);
    }
  } finally {
    await server.dispose();
  }
  return { title: 'B. The plugin end to end by queue.max_batch_size: a spooled backlog (immudb paused) written and verified by the plugin server alone', rows };
}

async function payloadSizes(immudb: BenchImmudb, ctx: BenchContext): Promise<Table[]> {
  const fixtures = fixturePool(300);
  // Smallest: the fixtures without request headers, route and service details; then as recorded
  // (1-2 KB with consumer, headers, route, service); then grown with request headers.
  const sizes = ctx.quick ? [2048, 32768] : [0, 2048, 8192, 32768];
  const pools = sizes.map((s) => fixtures.map((f) => (s === 0 ? shrunkSerialized(f) : f.json.length >= s ? f.json : grownSerialized(f, s))));
  const servers: BenchServer[] = [];
  const rows: Array<Record<string, unknown>> = [];
  try {
    const noop = await startBenchServer('noop');
    servers.push(noop);
    const audit = await startBenchServer('audit');
    servers.push(audit);
    const db = 'bench_payload';
    const cfg = auditConfig(immudb, db);
    const w = { noop: await startWorkers(noop, 2, cfg), audit: await startWorkers(audit, 2, cfg) };
    let sent = (await drive(w.audit, pools[1]!, { concurrency: 32, count: 500 })).events;
    const counter = await WriteCounter.open(immudb, db, audit.dataDir);
    const ms = ctx.quick ? 800 : 1200;
    for (let i = 0; i < sizes.length; i++) {
      const row: Record<string, unknown> = { 'serialized log bytes (mean)': meanLength(pools[i]!) };
      for (const kind of ['noop', 'audit'] as const) {
        await counter.waitVerified(sent, 60_000);
        const srv = kind === 'noop' ? noop : audit;
        const meter = new CpuMeter({ server: srv.pid });
        await drive(w[kind], pools[i]!, { concurrency: 64, durationMs: 300 }).then((d) => {
          if (kind === 'audit') sent += d.events;
        });
        meter.lap();
        const d = await drive(w[kind], pools[i]!, { concurrency: 64, durationMs: ms });
        if (kind === 'audit') sent += d.events;
        const cpu = meter.lap();
        row[`${kind} events/s`] = perSecond(d.events, d.ms);
        row[`${kind} server CPU µs/event`] = (cpu.server! * 1000) / d.events;
      }
      row['b/a'] = ratio(row['audit events/s'] as number, row['noop events/s'] as number);
      rows.push(row);
    }
    await counter.waitVerified(sent, 60_000);
  } finally {
    for (const s of servers) await s.dispose();
  }
  // Value sizes, direct writes at batch 256.
  const client = await immudb.connect('bench_values');
  const vrows: Array<Record<string, unknown>> = [];
  const stateDir = mkdtempSync(join(tmpdir(), 'kia-bench-values-'));
  try {
    for (const bytes of ctx.quick ? [1024, 16384] : [256, 1024, 4096, 16384]) {
      const n = bytes >= 16384 ? 3000 : 8000;
      const set = await rung(client, paddedRecords(n, `vs${bytes}`, bytes), 256, 'set', ctx.quick ? 600 : 1000, stateDir);
      const ver = await rung(client, paddedRecords(n, `vv${bytes}`, bytes), 256, 'verify + state saved (AuditWriter)', ctx.quick ? 600 : 1000, stateDir);
      const sr = perSecond(set.entries, set.ms);
      const vr = perSecond(ver.entries, ver.ms);
      vrows.push({ 'value bytes': bytes, 'set entries/s': sr, 'verified entries/s': vr, 'verified MB/s': (vr * bytes) / 1e6, 'verified / set': ratio(vr, sr), 'verified client CPU µs/entry': ver.cpuUs });
    }
  } finally {
    rmSync(stateDir, { recursive: true, force: true });
  }
  return [
    { title: 'C1. Payload size: serialized log size vs handler rate and plugin-server CPU per event (64 in flight)', rows },
    { title: 'C2. Value size: direct writes at batch 256 (raw Set vs verified + state saved)', rows: vrows },
  ];
}

function captureStages(ctx: BenchContext, vtx: { vtx: VerifiableTx; kvs: Array<{ key: Buffer; value: Buffer }>; trusted: TrustedState; rawTx?: Tx } | undefined): Table {
  const minMs = ctx.quick ? 60 : 120;
  const fixtures = fixturePool(500);
  const jsons = fixtures.map((f) => f.json);
  const logs = jsons.map((j) => JSON.parse(j) as KongSerializedLog);
  const ctxOf = () => ({ id: uuidv7(), now: Date.now(), nodeId: 'n', hostname: 'h' });
  const entries = logs.map((l) => buildAuditEntry(l, ctxOf(), []));
  // The same entries with their members in reverse order: canonicalJson's sorted-copy path.
  const unordered = entries.map((e) => reverseMembers(e));
  const n = entries.length;
  const m = (name: string, fn: (i: number) => unknown) => micro(name, fn, { minMs });
  // 'µs' is the plugin's code; 'replaced µs' the library call it replaced (decisions #14).
  const rows: Array<{ stage: string; 'µs': number; 'replaced µs'?: number; note?: string }> = [
    { stage: 'JSON.parse of kong.log.serialize() (2 KB)', 'µs': m('parse', (i) => JSON.parse(jsons[i % n]!)).usPerOp },
    { stage: 'buildAuditEntry', 'µs': m('build', (i) => buildAuditEntry(logs[i % n]!, { id: 'x', now: 1, nodeId: 'n', hostname: 'h' }, [])).usPerOp },
    { stage: 'audit id (UUIDv7)', 'µs': m('auditId', () => auditId()).usPerOp, 'replaced µs': m('uuid v7', () => uuidv7()).usPerOp, note: "uuid's v7() with pooled random bytes, replacing v7() without options" },
    { stage: 'canonical JSON of the entry', 'µs': m('canonicalJson', (i) => canonicalJson(entries[i % n])).usPerOp, 'replaced µs': m('canonicalize', (i) => canonicalize(entries[i % n])).usPerOp, note: 'build-entry emits canonical member order: order check + one JSON.stringify, replacing canonicalize' },
    { stage: 'canonical JSON of an entry in another member order', 'µs': m('canonicalJson unordered', (i) => canonicalJson(unordered[i % n])).usPerOp, note: 'the sorted-copy path (what build-entry cost before it emitted canonical order)' },
    { stage: 'encodeEntry (canonical JSON + key/value in one Buffer)', 'µs': m('encode', (i) => encodeEntry('audit', entries[i % n]!)).usPerOp },
  ];
  if (vtx) {
    const per = vtx.kvs.length;
    rows.push({
      stage: `proof check of a ${per}-kv VerifiableSet answer, per kv`,
      'µs': m('verify', () => verifyVerifiableSet(vtx.vtx, vtx.kvs, vtx.trusted)).usPerOp / per,
    });
  }
  if (vtx?.rawTx) {
    const tx = vtx.rawTx;
    const h = parseTxHeader(tx.header);
    rows.push({
      stage: `listed-entries check of a ${h.nentries}-kv tx with values (verify --all, VerifiableGet), per kv`,
      'µs': m('listed', () => verifyListedEntries(tx, h)).usPerOp / h.nentries,
    });
  }
  return { title: 'D. Capture and check stages in-process, µs per call (median of 3 timed runs; same inputs in both columns)', rows };
}

async function singleEntryReads(immudb: BenchImmudb, ctx: BenchContext): Promise<Table> {
  const rows: Array<Record<string, unknown>> = [];
  const pool = fixturePool(300);
  for (const txSize of [16, 128, 1024]) {
    const client = await immudb.connect(`bench_reads_${txSize}`);
    const recs = auditRecords(Math.max(2048, txSize * 2), 'r', pool);
    for (let i = 0; i < recs.length; i += txSize) await client.set(recs.slice(i, i + txSize).map((r) => ({ key: r.key, value: r.value })));
    await client.get(recs[recs.length - 1]!.key);
    const ms = ctx.quick ? 500 : 1000;
    const timed = async (fn: (k: Buffer) => Promise<void>) => {
      const t0 = performance.now();
      let n = 0;
      while (performance.now() - t0 < ms) await fn(recs[(n++ * 7919) % recs.length]!.key);
      return perSecond(n, performance.now() - t0);
    };
    const plain = await timed(async (k) => {
      await client.get(k);
    });
    let trusted: TrustedState | undefined;
    const verified = await timed(async (k) => {
      trusted = verifyVerifiableEntry(await client.verifiableGet(k, trusted?.txId ?? 0), trusted, { key: k });
    });
    rows.push({ 'entries per tx': txSize, 'Get/s': plain, 'VerifiableGet + proofs/s': verified, 'verified / plain': ratio(verified, plain) });
  }
  return { title: 'E. Single-entry reads by transaction size (the proof lists every entry digest of the tx)', rows };
}

/** Several Kong nodes' writers at once: verified batches of 256 to one shared database or one each. */
async function concurrentWriters(immudb: BenchImmudb, ctx: BenchContext): Promise<Table> {
  const pool = fixturePool(300);
  const rows: Array<Record<string, unknown>> = [];
  const stateDir = mkdtempSync(join(tmpdir(), 'kia-bench-writers-'));
  const ms = ctx.quick ? 1000 : 1500;
  try {
    for (const writers of ctx.quick ? [1, 2] : [1, 2, 4]) {
      for (const shared of [true, false]) {
        if (writers === 1 && !shared) continue;
        const clients = await Promise.all(Array.from({ length: writers }, (_, i) => immudb.connect(shared ? 'bench_shared' : `bench_own_${writers}_${i}`)));
        const meter = new CpuMeter({ immudb: immudb.pid });
        const t0 = performance.now();
        const runs = await Promise.all(clients.map((c, i) =>
          rung(c, auditRecords(12_000, `w${writers}${shared ? 's' : 'o'}${i}`, pool), 256, 'verify + state saved (AuditWriter)', ms, join(stateDir, `${writers}-${shared}-${i}`))));
        const wall = performance.now() - t0;
        const cpu = meter.lap();
        const total = runs.reduce((a, r) => a + r.entries, 0);
        rows.push({
          writers,
          database: shared ? 'one shared' : 'one per writer',
          'entries/s, all writers': perSecond(total, wall),
          'entries/s per writer': perSecond(total, wall) / writers,
          'immudb CPU µs/entry': (cpu.immudb! * 1000) / total,
          'call p50 ms': median(runs.flatMap((r) => r.callMs)),
          errors: runs.filter((r) => r.error).map((r) => r.error).join('; ') || undefined,
        });
      }
    }
  } finally {
    rmSync(stateDir, { recursive: true, force: true });
  }
  return { title: 'F. Several writers at once (as several Kong nodes would): verified batches of 256, one in flight each, to one shared database or one database each, same immudb', rows };
}

export async function run(ctx: BenchContext): Promise<BenchResult> {
  const maxBatch = pluginMaxBatch();
  const ladderSizes = [...new Set(ctx.quick ? [1, 16, 256, maxBatch] : [1, 16, 128, 256, maxBatch])].sort((a, b) => a - b);
  const e2eSizes = [...new Set([1, 16, 128, maxBatch])].sort((a, b) => a - b);
  // BENCH_SCALING=F (or A,F...) runs only those sections: the sizing guide needs F alone.
  const only = (process.env.BENCH_SCALING ?? '').toUpperCase().split(',').filter(Boolean);
  const want = (section: string) => only.length === 0 || only.includes(section);
  const immudb = await startBenchImmudb();
  try {
    const tables: Table[] = [];
    if (want('A')) tables.push(await ladder(immudb, ladderSizes, ctx.quick ? 350 : 550, ctx));
    if (want('D')) {
      // One real answer of the default batch size for the in-process proof timing.
      const c = await immudb.connect('bench_stage');
      const kv0 = [{ key: Buffer.from('anchor'), value: Buffer.from('{}') }];
      const trusted = verifyVerifiableSet(await c.verifiableSet(kv0, 0), kv0);
      const kvs = await writerKvs(auditRecords(256, 'stage', fixturePool(256)));
      const vtx = await c.verifiableSet(kvs, trusted.txId);
      const rawTx = (await c.txScan(Number(vtx.tx!.header!.id), 1, EntryTypeAction.RAW_VALUE))[0];
      tables.push(captureStages(ctx, { vtx, kvs, trusted, ...(rawTx ? { rawTx } : {}) }));
    }
    if (want('B')) tables.push(await e2eByBatch(immudb, e2eSizes, ctx));
    if (want('C')) tables.push(...(await payloadSizes(immudb, ctx)));
    if (want('E')) tables.push(await singleEntryReads(immudb, ctx));
    if (want('F')) tables.push(await concurrentWriters(immudb, ctx));
    return {
      name: 'scaling',
      title: '5. Scaling with batch size and payload size; where the time goes',
      tables,
      figures: Object.fromEntries(tables.map((t) => [t.title.split('.')[0]!, t.rows])),
      targets: [],
      notes: [
        `the plugin allows queue.max_batch_size up to ${maxBatch} audit entries: each takes one or two immudb entries (entry, and a trace index when the request brought its trace) and immudb allows 1024 per transaction`,
        'CPU profiles of the plugin server are in benchmark 2 (end to end) and summarised in docs/performance.md',
      ],
    };
  } finally {
    await immudb.dispose();
  }
}
