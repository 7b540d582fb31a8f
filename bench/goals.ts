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
import { fsyncSync, mkdtempSync, openSync, closeSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MessageChannel } from 'node:worker_threads';
import { crc32 } from 'node:zlib';
import * as protoLoader from '@grpc/proto-loader';
import { v7 as uuidv7 } from 'uuid';
import { auditId } from '../plugin/capture/audit-id.js';
import { buildAuditEntry } from '../plugin/capture/build-entry.js';
import { encodeEntry, type AuditRecord } from '../plugin/capture/encode.js';
import type { KongSerializedLog } from '../plugin/capture/kong-log.js';
import type { ImmudbClient } from '../plugin/store/immudb-client.js';
import { verifyVerifiableSet, type TrustedState } from '../plugin/store/proofs/index.js';
import type { VerifiableTx } from '../plugin/store/immudb-types.js';
import { projectRoot } from '../test/helpers/kong-driver.js';
import { fixturePool, serializedPool, auditRecords, writerKvs } from './lib/payloads.js';
import { cpuMs, rss, ThreadMeter, type ThreadGroup } from './lib/proc.js';
import type { BenchContext, BenchResult, Table } from './lib/report.js';
import { auditConfig, drive, startBenchImmudb, startBenchServer, startWorkers, WriteCounter, type BenchImmudb, type BenchServer } from './lib/stack.js';
import { checkTarget, median, perSecond } from './lib/stats.js';
import { naiveVerifiedSets } from './lib/writes.js';

const WORKERS = 2;
const CONCURRENCY = 64;
const LINES_PER_SETALL = 200;
const GROUP_FSYNC = 64;

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

async function batchedWriter(client: ImmudbClient, lines: readonly string[], n: number, offset: number): Promise<{ cpuMs: number; ms: number }> {
  const u0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < n; i += LINES_PER_SETALL) {
    const kvs: Array<{ key: Buffer; value: Buffer }> = [];
    for (let j = i; j < Math.min(n, i + LINES_PER_SETALL); j++) kvs.push(...logAuditKvs(lines[j % lines.length]!, offset + j));
    await client.set(kvs);
  }
  const u = process.cpuUsage(u0);
  return { cpuMs: (u.user + u.system) / 1000, ms: performance.now() - t0 };
}

// ---------------------------------------------------------------------------------------------
// The floor: each step of the audit work alone, per entry
// ---------------------------------------------------------------------------------------------

/** CPU time of this thread, µs: the floor is CPU like the per-thread figures it is compared with. */
function threadCpuUs(): number {
  // process.threadCpuUsage is Node >= 23.9; on 22 the whole process's CPU is the nearest figure.
  const u = typeof process.threadCpuUsage === 'function' ? process.threadCpuUsage() : process.cpuUsage();
  return u.user + u.system;
}

/**
 * `fn`'s CPU time per call on this thread, µs (median of 3 timed batches after a warm-up). CPU
 * time, not wall time: on a shared machine waiting for a core must not count as work.
 */
function cpuMicro(fn: (i: number) => unknown, minMs: number): number {
  let sink: unknown;
  for (let i = 0; i < 200; i++) sink = fn(i);
  let n = 1;
  for (;;) {
    const t = threadCpuUs();
    for (let i = 0; i < n; i++) sink = fn(i);
    if (threadCpuUs() - t >= (minMs * 1000) / 4 || n > 1e7) break;
    n *= 2;
  }
  n *= 4;
  const per: number[] = [];
  for (let r = 0; r < 3; r++) {
    const t = threadCpuUs();
    for (let i = 0; i < n; i++) sink = fn(i);
    per.push((threadCpuUs() - t) / n);
  }
  if (sink === Symbol.for('never')) throw new Error('unreachable');
  return median(per);
}

function spoolFrame(seq: number, payload: Buffer): Buffer {
  // plugin/pipeline/spool.ts record v2: magic u16 | length u32 | crc32 u32 (seq..payload) | seq u64 | time u64 | payload
  const b = Buffer.allocUnsafe(26 + payload.length);
  b.writeUInt16BE(0xa0d2, 0);
  b.writeUInt32BE(payload.length, 2);
  b.writeBigUInt64BE(BigInt(seq), 10);
  b.writeBigUInt64BE(BigInt(Date.now()), 18);
  payload.copy(b, 26);
  b.writeUInt32BE(crc32(b.subarray(10)), 6);
  return b;
}

function fsyncCpuUsPerEntry(frames: Buffer[], groups: number): number {
  const dir = mkdtempSync(join(tmpdir(), 'kia-goals-fsync-'));
  const fd = openSync(join(dir, 'spool'), 'w');
  try {
    const u0 = threadCpuUs();
    for (let g = 0; g < groups; g++) {
      writeSync(fd, Buffer.concat(frames.slice((g * GROUP_FSYNC) % frames.length, ((g * GROUP_FSYNC) % frames.length) + GROUP_FSYNC)));
      fsyncSync(fd);
    }
    return (threadCpuUs() - u0) / (groups * GROUP_FSYNC);
  } finally {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
}

async function handOverUsPerEntry(records: AuditRecord[], n: number): Promise<number> {
  const { port1, port2 } = new MessageChannel();
  let got = 0;
  const done = new Promise<void>((resolve) => port2.on('message', () => ++got === n && resolve()));
  const u0 = threadCpuUs();
  for (let i = 0; i < n; i++) {
    const r = records[i % records.length]!;
    port1.postMessage({ id: r.id, key: r.key, value: r.value });
  }
  await done;
  const cpu = threadCpuUs() - u0;
  port1.close();
  port2.close();
  return cpu / n;
}

function otlpSpanJson(r: AuditRecord, traceId: string): string {
  const attr = (key: string, v: string | number) => ({ key, value: typeof v === 'number' ? { intValue: String(v) } : { stringValue: v } });
  return JSON.stringify({
    resourceSpans: [{
      resource: { attributes: [attr('service.name', 'kong-immudb-audit'), attr('host.name', 'bench')] },
      scopeSpans: [{
        scope: { name: 'kong-immudb-audit', version: '0.1.0' },
        spans: [{
          traceId, spanId: traceId.slice(0, 16), name: 'audit GET', kind: 1,
          startTimeUnixNano: String(Date.now() * 1e6), endTimeUnixNano: String(Date.now() * 1e6 + 1000),
          attributes: [attr('audit.id', r.id), attr('audit.key', r.key.toString()), attr('http.request.method', 'GET'), attr('http.response.status_code', 200), attr('http.route', '/v1/items'), attr('url.path', '/v1/items/42'), attr('server.address', 'api.example.com')],
          status: { code: 0 },
        }],
      }],
    }],
  });
}

interface FloorInput {
  client: ImmudbClient;
  records: AuditRecord[];
  serialized: string[];
}

async function floorStages(ctx: BenchContext, inp: FloorInput): Promise<{ rows: Array<{ step: string; 'µs/entry': number }>; floor: number }> {
  const minMs = ctx.quick ? 60 : 150;
  const m = (_name: string, fn: (i: number) => unknown) => cpuMicro(fn, minMs);
  const { records, serialized } = inp;
  const n = serialized.length;
  const logs = serialized.map((j) => JSON.parse(j) as KongSerializedLog);
  const entries = logs.map((l) => {
    const e = buildAuditEntry(l, { id: uuidv7(), now: Date.now(), nodeId: 'n', hostname: 'h' });
    e.trace_id ??= 'a'.repeat(32);
    return e;
  });
  const frames = records.map((r, i) => spoolFrame(i, r.value));
  // Two immudb entries per audit entry (the entry and its trace index), as the writer sends them.
  const kv0 = [{ key: Buffer.from('goals.anchor'), value: Buffer.from('{}') }];
  const trusted: TrustedState = verifyVerifiableSet(await inp.client.verifiableSet(kv0, 0), kv0);
  const twoKvs = writerKvs(records.slice(0, 1));
  const vtx: VerifiableTx = await inp.client.verifiableSet(twoKvs, trusted.txId);
  const def = protoLoader.loadSync(join(projectRoot(), 'proto', 'immudb.proto'), { keepCase: true, longs: String, enums: Number, bytes: Buffer, defaults: true, arrays: true, oneofs: true });
  const verifiableSet = (def['immudb.schema.ImmuService'] as Record<string, { requestSerialize(v: unknown): Buffer }>)['VerifiableSet']!;
  const batchKvs = writerKvs(records.slice(0, 256));
  const batchReq = { setRequest: { KVs: batchKvs, noWait: false, preconditions: records.slice(0, 256).map((r) => ({ keyMustNotExist: { key: r.key } })) }, proveSinceTx: '1' };
  const rows = [
    { step: 'JSON.parse of kong.log.serialize()', 'µs/entry': m('parse', (i) => JSON.parse(serialized[i % n]!)) },
    { step: 'entry build (buildAuditEntry)', 'µs/entry': m('build', (i) => buildAuditEntry(logs[i % n]!, { id: 'x', now: 1, nodeId: 'n', hostname: 'h' })) },
    { step: 'audit id (UUIDv7)', 'µs/entry': m('id', () => auditId()) },
    { step: 'canonical JSON + key/value buffer (encodeEntry)', 'µs/entry': m('encode', (i) => encodeEntry('bench', entries[i % n]!)) },
    { step: 'spool frame + CRC32', 'µs/entry': m('frame', (i) => spoolFrame(i, records[i % records.length]!.value)) },
    { step: `write + fsync, groups of ${GROUP_FSYNC} (CPU)`, 'µs/entry': fsyncCpuUsPerEntry(frames, ctx.quick ? 30 : 100) },
    { step: 'proof check of two entries (entry + trace index)', 'µs/entry': m('proof', () => verifyVerifiableSet(vtx, twoKvs, trusted)) },
    { step: 'protobuf encode (VerifiableSet of 256, per entry)', 'µs/entry': m('protobuf', () => verifiableSet.requestSerialize(batchReq)) / 256 },
    { step: 'span as one OTLP JSON string', 'µs/entry': m('span', (i) => otlpSpanJson(records[i % records.length]!, 'b'.repeat(32))) },
    { step: 'thread hand-over (postMessage of the record, both ends)', 'µs/entry': await handOverUsPerEntry(records, ctx.quick ? 20_000 : 50_000) },
  ];
  return { rows, floor: rows.reduce((a, r) => a + r['µs/entry'], 0) };
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
    const floor = await floorStages(ctx, { client: direct, records: auditRecords(2_000, 'floor', pool), serialized });
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
      figures.push({ noop: noopCpu, noopUpstream: noopUpCpu, ours: oursCpu, oursImmudb, oursRate, batchedClient: (b.cpuMs * 1000) / perRound, batchedImmudb });
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
          { arm: `unverified batched writer (${LINES_PER_SETALL} lines per Set, 5 kvs per line)`, 'writer process': med((x) => x.batchedClient), immudb: med((x) => x.batchedImmudb) },
          { arm: 'one VerifiableSet per entry (client, proof checked)', 'writer process': naive.cpuUsPerEntry, 'entries/s end to end': naiveRate },
        ],
      },
      { title: `The floor: each step of the audit work alone, CPU µs per entry on one thread (sum ${floor.floor.toFixed(1)} µs)`, rows: floor.rows },
      { title: 'Memory with a backlog (immudb paused); the linear figure is an upper bound only if growth stayed linear (the memory queue is bounded by queue.max_entries, the rest waits in the spool)', rows: [{ 'entries backlogged': backlog, 'RSS before MiB': mib(rssRest), 'RSS backlogged MiB': mib(rssBacklog), 'RSS at 400k MiB if linear': rss400k }] },
    ];
    return {
      name: 'goals',
      title: "6. Issue 17's goals: CPU per entry and per thread against the baselines and the floor",
      tables,
      figures: { rounds: figures, floor: floor.floor, floorRows: floor.rows, naiveRate, rssRest, rssBacklog, backlog, rss400kMiB: rss400k },
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
