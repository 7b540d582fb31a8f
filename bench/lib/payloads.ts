// Benchmark payloads: realistic serialized logs (test/fixtures/serialized-logs.ts) and the audit
// records the plugin makes of them (same capture and encoding code as the handler, a trace id on
// each as its tracing sets one, the writer's key list), plus padded
// variants for the payload-size scaling runs.
import { randomBytes, randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { v7 as uuidv7 } from 'uuid';
import { buildAuditEntry } from '../../plugin/capture/build-entry.js';
import { encodeEntry, type AuditRecord } from '../../plugin/capture/encode.js';
import { traceIndexOf } from '../../plugin/store/key-layout.js';
import type { KongSerializedLog } from '../../plugin/capture/kong-log.js';
import { generateFixtures, toKongJson, type LogFixture, type KongSerializedLog as FixtureLog } from '../../test/fixtures/serialized-logs.js';

/** `count` distinct fixtures cycling through every scenario (consumers, headers, traces...). */
export function fixturePool(count: number, seed = 7000): LogFixture[] {
  return generateFixtures(count, { seed });
}

/** The serialized-log JSON strings (what kong.log.serialize() returns) of a pool. */
export function serializedPool(count: number, seed = 7000): string[] {
  return fixturePool(count, seed).map((f) => f.json);
}

/**
 * `count` records exactly as the plugin with tracing on (its default) writes them: the handler
 * sets each entry's trace_id to its audit span's trace id before encoding (plugin/handler.ts), the
 * caller's trace when there is one, else a new root trace's. The writer's key list (writerKvs)
 * then carries a trace-index key for the entries whose trace came with the request (the ~14 % of
 * fixtures with a traceparent or Kong's trace id), as the plugin writes them (decision #38).
 */
export function auditRecords(count: number, prefix: string, pool: LogFixture[] = fixturePool(Math.min(count, 1000))): AuditRecord[] {
  const host = hostname();
  const out: AuditRecord[] = new Array(count);
  // Every entry carries its place in the node's sequence, as the pipeline numbers it (decision #30).
  const stream = randomUUID();
  for (let i = 0; i < count; i++) {
    const f = pool[i % pool.length]!;
    const entry = buildAuditEntry(JSON.parse(f.json) as KongSerializedLog, { id: uuidv7(), now: Date.now(), nodeId: 'bench-node', hostname: host, sequence: { number: i + 1, stream } });
    entry.trace_id ??= randomBytes(16).toString('hex');
    out[i] = encodeEntry(prefix, entry);
  }
  return out;
}

/** Records whose values are `valueBytes` long (a canonical audit entry padded with a field). */
export function paddedRecords(count: number, prefix: string, valueBytes: number): AuditRecord[] {
  const base = auditRecords(count, prefix);
  return base.map((r) => {
    const json = r.value.toString('utf8');
    if (json.length >= valueBytes - 12) return { ...r, value: Buffer.from(json.slice(0, Math.max(2, valueBytes))) };
    const pad = 'x'.repeat(valueBytes - json.length - 10);
    return { ...r, value: Buffer.from(`${json.slice(0, -1)},"~pad":"${pad}"}`) };
  });
}

/** A serialized log grown to about `bytes` by adding request headers (as a big client would send). */
export function grownSerialized(f: LogFixture, bytes: number): string {
  const log: FixtureLog = structuredClone(f.log);
  let json = toKongJson(log);
  for (let i = 0; json.length < bytes; i++) {
    const missing = bytes - json.length;
    log.request.headers[`x-bench-header-${i}`] = 'v'.repeat(Math.max(1, Math.min(200, missing - 30)));
    json = toKongJson(log);
  }
  return json;
}

/**
 * What the plugin's writer sends for these records: each entry, plus its trace-index key
 * (plugin/store/key-layout.ts), so that direct writes carry the same payload as the plugin's.
 */
export function writerKvs(records: readonly AuditRecord[]): Array<{ key: Buffer; value: Buffer }> {
  const out: Array<{ key: Buffer; value: Buffer }> = [];
  for (const r of records) {
    out.push({ key: r.key, value: r.value });
    const idx = traceIndexOf(r.key, r.value);
    if (idx) out.push(idx);
  }
  return out;
}

/** A serialized log without request headers and with only the ids of route and service (about 1 KB). */
export function shrunkSerialized(f: LogFixture): string {
  const log = structuredClone(f.log) as FixtureLog & Record<string, unknown>;
  log.request.headers = { host: 'api.example.com' };
  log.response.headers = {};
  if (log.route) log.route = { id: log.route.id, name: log.route.name } as FixtureLog['route'];
  if (log.service) log.service = { id: log.service.id, name: log.service.name } as FixtureLog['service'];
  delete log.tries;
  return toKongJson(log);
}

export function meanLength(xs: ReadonlyArray<{ length: number }>): number {
  return xs.reduce((a, x) => a + x.length, 0) / Math.max(1, xs.length);
}
