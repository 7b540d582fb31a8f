// Benchmark 7: the floor. Each irreducible step of the audit work timed alone on this machine
// (CPU time of one thread, realistic payloads), so the goal "audit thread / floor" compares with
// a floor measured in the same run on the same machine, not with figures from another one. Also
// what the trace-index key costs, measured both ways in this run: the proof check per entry and
// immudb's CPU per entry for verified batches of 256 with an index key on every entry (as before
// decision #38) and with keys only where the request brought its trace (as the plugin writes now).
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
import { entryKey, parseKey, traceIndexKey, type KeyValue } from '../plugin/store/key-layout.js';
import { verifyVerifiableSet, type TrustedState } from '../plugin/store/proofs/index.js';
import type { VerifiableTx } from '../plugin/store/immudb-types.js';
import { projectRoot } from '../test/helpers/kong-driver.js';
import { auditRecords, fixturePool, serializedPool, writerKvs } from './lib/payloads.js';
import { cpuMs } from './lib/proc.js';
import type { BenchContext, BenchResult } from './lib/report.js';
import { startBenchImmudb } from './lib/stack.js';
import { median } from './lib/stats.js';

const GROUP_FSYNC = 64;
const BATCH = 256;

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
export function cpuMicro(fn: (i: number) => unknown, minMs: number): number {
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
  const dir = mkdtempSync(join(tmpdir(), 'kia-floor-fsync-'));
  const fd = openSync(join(dir, 'spool'), 'w');
  try {
    const u0 = threadCpuUs();
    for (let g = 0; g < groups; g++) {
      const at = (g * GROUP_FSYNC) % Math.max(1, frames.length - GROUP_FSYNC);
      writeSync(fd, Buffer.concat(frames.slice(at, at + GROUP_FSYNC)));
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

/** Every record with a trace-index key, whatever its trace's source: the layout before #38. */
function kvsAllIndexed(records: readonly AuditRecord[]): KeyValue[] {
  const out: KeyValue[] = [];
  for (const r of records) {
    out.push({ key: r.key, value: r.value });
    const p = parseKey(r.key);
    const t = (JSON.parse(r.value.toString('utf8')) as { trace_id: string }).trace_id;
    if (p?.kind === 'entry') out.push({ key: Buffer.from(traceIndexKey(p.prefix, t, p.id)), value: Buffer.from(entryKey(p.prefix, p.id)) });
  }
  return out;
}

export type FloorRow = {
  step: string;
  'µs/entry': number;
};

export interface Floor {
  rows: FloorRow[];
  /** Sum of the steps, µs per entry. */
  floor: number;
  /** Share of entries that carry a trace-index key as the plugin writes them (these payloads). */
  indexedShare: number;
  /** The trace index both ways, measured in this run. */
  traceIndex: Array<Record<string, number | string>>;
}

/** A verified write of `kvs` (no preconditions) proven against `trusted`: the new state. */
async function provenWrite(client: ImmudbClient, kvs: KeyValue[], trusted: TrustedState): Promise<{ state: TrustedState; vtx: VerifiableTx }> {
  const vtx = await client.verifiableSet(kvs, trusted.txId);
  return { state: verifyVerifiableSet(vtx, kvs, trusted), vtx };
}

/** The floor's steps on `client`'s database (an anchor and a few batches are written to it). */
export async function measureFloor(ctx: BenchContext, client: ImmudbClient, immudbPid: number): Promise<Floor> {
  const minMs = ctx.quick ? 60 : 150;
  const m = (fn: (i: number) => unknown) => cpuMicro(fn, minMs);
  const pool = fixturePool(700);
  const serialized = serializedPool(700);
  const records = auditRecords(2_000, 'floor', pool);
  const n = serialized.length;
  const logs = serialized.map((j) => JSON.parse(j) as KongSerializedLog);
  const entries = logs.map((l) => {
    const e = buildAuditEntry(l, { id: uuidv7(), now: Date.now(), nodeId: 'n', hostname: 'h' });
    e.trace_id ??= 'a'.repeat(32);
    return e;
  });
  const frames = records.map((r, i) => spoolFrame(i, r.value));
  const kv0 = [{ key: Buffer.from('floor.anchor'), value: Buffer.from('{}') }];
  let trusted: TrustedState = verifyVerifiableSet(await client.verifiableSet(kv0, 0), kv0);

  // Proof check per entry in a batch of 256, as the writer checks it (entries + their index keys).
  const batch = records.slice(0, BATCH);
  const asWritten = writerKvs(batch);
  const allIndexed = kvsAllIndexed(records.slice(BATCH, 2 * BATCH));
  const w1 = await provenWrite(client, asWritten, trusted);
  const proofAsWritten = m(() => verifyVerifiableSet(w1.vtx, asWritten, trusted)) / BATCH;
  const w2 = await provenWrite(client, allIndexed, w1.state);
  const proofAllIndexed = m(() => verifyVerifiableSet(w2.vtx, allIndexed, w1.state)) / BATCH;
  trusted = w2.state;

  const def = protoLoader.loadSync(join(projectRoot(), 'proto', 'immudb.proto'), { keepCase: true, longs: String, enums: Number, bytes: Buffer, defaults: true, arrays: true, oneofs: true });
  const verifiableSet = (def['immudb.schema.ImmuService'] as Record<string, { requestSerialize(v: unknown): Buffer }>)['VerifiableSet']!;
  const batchReq = { setRequest: { KVs: asWritten, noWait: false, preconditions: batch.map((r) => ({ keyMustNotExist: { key: r.key } })) }, proveSinceTx: '1' };
  const indexedShare = (asWritten.length - batch.length) / batch.length;
  const rows: FloorRow[] = [
    { step: 'JSON.parse of kong.log.serialize()', 'µs/entry': m((i) => JSON.parse(serialized[i % n]!)) },
    { step: 'entry build (buildAuditEntry)', 'µs/entry': m((i) => buildAuditEntry(logs[i % n]!, { id: 'x', now: 1, nodeId: 'n', hostname: 'h' })) },
    { step: 'audit id (UUIDv7)', 'µs/entry': m(() => auditId()) },
    { step: 'canonical JSON + key/value buffer (encodeEntry)', 'µs/entry': m((i) => encodeEntry('bench', entries[i % n]!)) },
    { step: 'spool frame + CRC32', 'µs/entry': m((i) => spoolFrame(i, records[i % records.length]!.value)) },
    { step: `write + fsync, groups of ${GROUP_FSYNC} (CPU)`, 'µs/entry': fsyncCpuUsPerEntry(frames, ctx.quick ? 30 : 100) },
    { step: `proof check, per entry of a batch of ${BATCH} (with index keys as written: ${(indexedShare * 100).toFixed(0)} %)`, 'µs/entry': proofAsWritten },
    { step: `protobuf encode (VerifiableSet of ${BATCH}, per entry)`, 'µs/entry': m(() => verifiableSet.requestSerialize(batchReq)) / BATCH },
    { step: 'span as one OTLP JSON string', 'µs/entry': m((i) => otlpSpanJson(records[i % records.length]!, 'b'.repeat(32))) },
    { step: 'thread hand-over (postMessage of the record, both ends)', 'µs/entry': await handOverUsPerEntry(records, ctx.quick ? 20_000 : 50_000) },
  ];

  // immudb's CPU per entry for verified batches of 256, both layouts alternating (fresh records).
  const batches = ctx.quick ? 80 : 160;
  const fresh = auditRecords(2 * batches * BATCH, 'floorab', pool);
  const cpu = { written: [] as number[], all: [] as number[], clientWritten: [] as number[], clientAll: [] as number[] };
  for (let b = 0; b < 2 * batches; b++) {
    const slice = fresh.slice(b * BATCH, (b + 1) * BATCH);
    const all = b % 2 === 1;
    const kvs = all ? kvsAllIndexed(slice) : writerKvs(slice);
    const i0 = cpuMs(immudbPid);
    const c0 = threadCpuUs();
    trusted = (await provenWrite(client, kvs, trusted)).state;
    (all ? cpu.clientAll : cpu.clientWritten).push((threadCpuUs() - c0) / BATCH);
    (all ? cpu.all : cpu.written).push(((cpuMs(immudbPid) - i0) * 1000) / BATCH);
  }
  const sum = (xs: number[]) => xs.reduce((a, x) => a + x, 0) / xs.length;
  const traceIndex = [
    { layout: 'index key on every entry (before #38)', 'immudb kvs/entry': 2, 'proof check µs/entry': proofAllIndexed, 'immudb CPU µs/entry': sum(cpu.all), 'client CPU µs/entry (gRPC + proof)': sum(cpu.clientAll) },
    { layout: 'index key where the request brought its trace (as written)', 'immudb kvs/entry': 1 + indexedShare, 'proof check µs/entry': proofAsWritten, 'immudb CPU µs/entry': sum(cpu.written), 'client CPU µs/entry (gRPC + proof)': sum(cpu.clientWritten) },
  ];
  return { rows, floor: rows.reduce((a, r) => a + r['µs/entry'], 0), indexedShare, traceIndex };
}

export async function run(ctx: BenchContext): Promise<BenchResult> {
  const immudb = await startBenchImmudb();
  try {
    const client = await immudb.connect('bench_floor');
    const f = await measureFloor(ctx, client, immudb.pid!);
    return {
      name: 'floor',
      title: '7. The floor: each step of the audit work alone, on this machine',
      tables: [
        { title: `CPU µs per entry on one thread, realistic payloads (sum ${f.floor.toFixed(1)} µs)`, rows: f.rows },
        { title: `The trace-index key both ways: verified batches of ${BATCH} alternating (immudb CPU from /proc, 10 ms ticks)`, rows: f.traceIndex },
      ],
      figures: { floor: f.floor, rows: f.rows, indexedShare: f.indexedShare, traceIndex: f.traceIndex },
      targets: [],
      notes: [
        'the floor is what the audit thread cannot avoid per entry; benchmark 6 (goals) divides the audit thread\'s measured CPU per event by it',
        'records as the plugin writes them: every entry carries its audit span\'s trace id, and an index key only when that trace came with the request (traceparent or Kong\'s own trace id)',
      ],
    };
  } finally {
    await immudb.dispose();
  }
}
