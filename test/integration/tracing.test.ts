// Audit entries and OpenTelemetry spans, linked both ways, with the real SDK and OTLP/HTTP
// exporter sending to a receiver on loopback.
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { simulateWorkers, type KongInstance } from '../helpers/kong-driver.js';
import { anonymousLog, keyAuthConsumerLog, w3cTraceLog, type LogFixture } from '../fixtures/serialized-logs.js';
import { PLUGIN_NAME, scanAll, startAuditStack, waitForEntries, type AuditStack } from '../helpers/audit-stack.js';
import { cliTarget, runCli } from '../helpers/cli.js';
import { OtlpReceiver, type ReceivedSpan } from '../helpers/otlp-receiver.js';
import type { AuditEntry } from '../../plugin/capture/audit-entry.js';

let stack: AuditStack;
let receiver: OtlpReceiver;
let worker: KongInstance;
/** Entries sent so far (all tests share the database). */
let sent = 0;
const auditor = mkdtempSync(join(tmpdir(), 'kia-auditor-'));

test.before(async () => {
  receiver = await new OtlpReceiver().start();
  stack = await startAuditStack({ env: { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, OTEL_BSP_SCHEDULE_DELAY: '100', OTEL_SERVICE_NAME: 'kia-test' } });
  [worker] = (await simulateWorkers(stack.rpc, 1, PLUGIN_NAME, stack.config({ immudb_database: 'traces', create_database: true, key_prefix: 'tr', queue: { max_batch_size: 64, max_coalescing_delay: 0.05 } }))) as [KongInstance];
});
test.after.always(async () => {
  await stack?.dispose();
  await receiver?.stop();
  rmSync(auditor, { recursive: true, force: true });
});

function withTraceparent(f: LogFixture, traceparent: string): string {
  const log = structuredClone(f.log);
  log.request.headers.traceparent = traceparent;
  delete log.trace_id;
  return JSON.stringify(log);
}

async function entriesByRequest(n: number): Promise<Map<string, { entry: AuditEntry; tx: number }>> {
  const stored = await waitForEntries(await stack.client('traces'), 'tr:entry:', n);
  return new Map(stored.map((s) => {
    const entry = JSON.parse(s.value.toString()) as AuditEntry;
    return [entry.request_id!, { entry, tx: Number(s.tx) }];
  }));
}

test.serial('spans and entries point at each other; parents, names, times, attributes and batch links are right', async (t) => {
  const sampled = Array.from({ length: 6 }, (_, i) => w3cTraceLog(10 + i, { tracingPlugin: false })).filter((f) => f.expected.trace!.flags === '01');
  const unsampled = w3cTraceLog(1, { tracingPlugin: false });
  const unsampledJson = withTraceparent(unsampled, `00-${'ab'.repeat(16)}-${'cd'.repeat(8)}-00`);
  const noContext = [anonymousLog(2), keyAuthConsumerLog(3)];
  const kongOnly = keyAuthConsumerLog(4);
  const kongTraceId = 'fe'.repeat(16);
  const kongJson = JSON.stringify({ ...kongOnly.log, trace_id: { w3c: kongTraceId } });
  const malformed = anonymousLog(5);
  const malformedJson = withTraceparent(malformed, '00-00000000000000000000000000000000-00f067aa0ba902b7-01');

  for (const f of sampled) await worker.runLogEvent({ 'kong.log.serialize': f.json });
  await worker.runLogEvent({ 'kong.log.serialize': unsampledJson });
  for (const f of noContext) await worker.runLogEvent({ 'kong.log.serialize': f.json });
  await worker.runLogEvent({ 'kong.log.serialize': kongJson });
  await worker.runLogEvent({ 'kong.log.serialize': malformedJson });
  const total = sampled.length + 1 + noContext.length + 2;
  sent += total;
  const entries = await entriesByRequest(sent);
  t.is(entries.size, total);

  // The entries can be written in several batches whose spans are exported at different times
  // (slowly on a loaded machine): wait until every audit span is linked from a batch span
  // received, not merely for the first batch span.
  const spans = await receiver.waitFor((s) => {
    const audits = s.filter((x) => x.name.startsWith('audit ') && x.name !== 'audit.write');
    const links = new Set(s.filter((x) => x.name === 'audit.write').flatMap((x) => x.links.map((l) => l.spanId)));
    return audits.length >= total - 1 && audits.every((x) => links.has(x.spanId));
  }, 60_000).catch(() => receiver.spans); // the checks below then say what is missing
  const bySpanId = new Map(spans.map((s) => [s.spanId, s]));
  const auditSpans = spans.filter((s) => s.name !== 'audit.write');

  // W3C parent: child of the caller's span, same trace; backdated to the request.
  for (const f of sampled) {
    const { entry } = entries.get(f.expected.requestId)!;
    const span = bySpanId.get(entry.span_id!);
    if (!span) return t.fail(`no span ${entry.span_id} for ${f.expected.requestId}`);
    t.is(entry.trace_id, f.expected.trace!.traceId);
    t.is(entry.parent_span_id, f.expected.trace!.parentSpanId);
    t.is(span.traceId, f.expected.trace!.traceId);
    t.is(span.parentSpanId, f.expected.trace!.parentSpanId);
    t.is(span.name, `audit ${f.expected.method} ${f.expected.routeName}`);
    t.is(span.startMs, f.expected.startedAt);
    t.is(span.endMs, f.expected.startedAt + f.log.latencies.request);
    t.is(span.attributes['audit.id'], entry.id);
    t.is(span.attributes['audit.key'], `tr:entry:${entry.id}`);
    t.is(span.attributes['http.request.method'], f.expected.method);
    t.is(span.attributes['url.path'], f.expected.path);
    t.is(span.attributes['http.response.status_code'], f.expected.status);
    t.is(span.attributes['http.route'], f.log.route!.paths[0]);
    t.false('client.address' in span.attributes, 'no client address by default');
    t.is(span.resource['service.name'], 'kia-test');
  }
  // Not sampled by the caller: no span exported, but the entry keeps the trace and its span id.
  const u = entries.get(unsampled.expected.requestId)!.entry;
  t.is(u.trace_id, 'ab'.repeat(16));
  t.regex(u.span_id ?? '', /^[0-9a-f]{16}$/);
  t.false(spans.some((s) => s.traceId === 'ab'.repeat(16)));
  // No context: a new root trace per request.
  for (const f of noContext) {
    const { entry } = entries.get(f.expected.requestId)!;
    const span = bySpanId.get(entry.span_id!)!;
    t.truthy(span);
    t.is(span.parentSpanId, undefined);
    t.is(span.traceId, entry.trace_id as string);
    t.is(entry.trace_source, 'none');
  }
  // Kong's trace id only: a span in Kong's trace.
  const k = entries.get(kongOnly.expected.requestId)!.entry;
  t.is(k.trace_source, 'kong');
  t.is(k.trace_id, kongTraceId);
  t.is(bySpanId.get(k.span_id!)?.traceId, kongTraceId);
  // Malformed traceparent: recorded as such, new root trace.
  const m = entries.get(malformed.expected.requestId)!.entry;
  t.is(m.trace_source, 'invalid');
  t.regex(m.capture_problems.join(), /invalid traceparent: traceparent trace-id is all zeros/);
  t.is(bySpanId.get(m.span_id!)?.parentSpanId, undefined);
  t.not(m.trace_id, '0'.repeat(32));

  // Batch spans: tx id, entry count, links to every sampled audit span, verified.
  const batches = spans.filter((s) => s.name === 'audit.write');
  const linked = new Map<string, ReceivedSpan>();
  for (const b of batches) for (const l of b.links) linked.set(l.spanId, b);
  for (const s of auditSpans) {
    const b = linked.get(s.spanId);
    if (!b) return t.fail(`audit span ${s.spanId} is not linked from a batch span`);
    const e = [...entries.values()].find((x) => x.entry.id === s.attributes['audit.id'])!;
    t.is(b.attributes['immudb.tx_id'], e.tx, 'the batch span names the transaction that holds the entry');
    t.is(b.attributes['audit.write.verified'], true);
    t.is(b.attributes['db.system.name'], 'immudb');
    t.is(b.attributes['db.namespace'], 'traces');
    t.is(b.links.find((l) => l.spanId === s.spanId)!.attributes['audit.id'], s.attributes['audit.id']);
  }

  // Every span's audit.id is an entry that verifies.
  const ids = auditSpans.map((s) => String(s.attributes['audit.id']));
  const v = await runCli([...cliTarget(stack.immudb, 'traces', 'tr', auditor), '--json', 'verify', ...ids], { IMMUDB_PASSWORD: stack.immudb.password });
  t.is(v.code, 0, v.stderr);
  t.is(v.stdout.trim().split('\n').length, ids.length);
});

test.serial('find --trace lists (and verifies) the entries of a trace from the index', async (t) => {
  const traceId = '0123456789abcdef0123456789abcdef';
  const fs = [anonymousLog(70), keyAuthConsumerLog(71), anonymousLog(72)];
  for (const [i, f] of fs.entries()) await worker.runLogEvent({ 'kong.log.serialize': withTraceparent(f, `00-${traceId}-${String(i + 1).padStart(16, '0')}-01`) });
  sent += fs.length;
  await entriesByRequest(sent);
  const env = { IMMUDB_PASSWORD: stack.immudb.password };
  const found = await runCli([...cliTarget(stack.immudb, 'traces', 'tr', auditor), '--json', 'find', '--trace', traceId.toUpperCase(), '--verify'], env);
  t.is(found.code, 0, found.stderr);
  const rows = found.stdout.trim().split('\n').map((l) => JSON.parse(l) as { verified: boolean; entry: AuditEntry });
  t.deepEqual(rows.map((r) => r.entry.request_id ?? '').sort(), fs.map((f) => f.expected.requestId).sort());
  t.true(rows.every((r) => r.verified && r.entry.trace_id === traceId));
  t.is(rows.length, fs.length);
  const none = await runCli([...cliTarget(stack.immudb, 'traces', 'tr', auditor), 'find', '--trace', 'f'.repeat(32)], env);
  t.is(none.code, 1);
  t.is(none.stderr, `immudb-audit: no audit entries for trace ${'f'.repeat(32)} in immudb database traces\n`);
  const bad = await runCli([...cliTarget(stack.immudb, 'traces', 'tr', auditor), 'find', '--trace', 'xyz'], env);
  t.is(bad.code, 2);
});

test.serial('a trace the plugin started itself has no index key in immudb, and find --trace still finds its entry', async (t) => {
  // Decision #38: the index key only for traces the request brought; the auditor's index answers the rest.
  const f = anonymousLog(80);
  await worker.runLogEvent({ 'kong.log.serialize': f.json });
  sent += 1;
  const entry = (await entriesByRequest(sent)).get(f.expected.requestId)!.entry;
  t.is(entry.trace_source, 'none');
  t.regex(entry.trace_id ?? '', /^[0-9a-f]{32}$/, 'the entry carries its audit span\'s trace id');
  const client = await stack.client('traces');
  t.deepEqual(await scanAll(client, `tr:trace:${entry.trace_id}:`), [], 'no index key for a trace the plugin started');
  const env = { IMMUDB_PASSWORD: stack.immudb.password };
  const found = await runCli([...cliTarget(stack.immudb, 'traces', 'tr', auditor), '--json', 'find', '--trace', entry.trace_id!, '--verify'], env);
  t.is(found.code, 0, found.stderr);
  const rows = found.stdout.trim().split('\n').map((l) => JSON.parse(l) as { id: string; verified: boolean; entry: AuditEntry });
  t.deepEqual(rows.map((r) => [r.id, r.verified, r.entry.trace_id]), [[entry.id, true, entry.trace_id]]);
});

test.serial('a trace receiver that is down neither blocks nor loses entries; the failure is reported once', async (t) => {
  await receiver.stop();
  const fs = Array.from({ length: 30 }, (_, i) => anonymousLog(300 + i));
  for (const f of fs) {
    const r = await worker.runLogEvent({ 'kong.log.serialize': f.json });
    t.true(r.completed);
  }
  sent += fs.length;
  const entries = await entriesByRequest(sent);
  for (const f of fs) t.truthy(entries.get(f.expected.requestId));
  const deadline = Date.now() + 60_000;
  while (!/tracing: .*audit entries are not affected/.test(stack.server.logs()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  const lines = stack.server.logs().split('\n').filter((l) => /\[immudb-audit\].*tracing: .*audit entries are not affected/.test(l));
  t.is(lines.length, 1, stack.server.logs().slice(-2000));
});
