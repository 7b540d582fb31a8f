// Foundation, end to end on real servers: log events through the real plugin server (several
// worker instances of one configuration) land in immudb as distinct, correct entries, written
// in batches, readable with our client and with immudb's own immuclient.
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliTarget, runCli } from '../helpers/cli.js';
import { createRequire } from 'node:module';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { countCalls, simulateWorkers } from '../helpers/kong-driver.js';
import { generateFixtures, type LogFixture } from '../fixtures/serialized-logs.js';
import { PLUGIN_NAME, immuclient, mapLimit, parseImmuclient, startAuditStack, waitForEntries, type AuditStack } from '../helpers/audit-stack.js';
import type { AuditEntry } from '../../plugin/capture/audit-entry.js';

const require = createRequire(import.meta.url);
const validate = new Ajv2020({ allErrors: true }).compile(JSON.parse(readFileSync(require.resolve('../../../schemas/audit-entry.v1.json'), 'utf8')));

let stack: AuditStack;
let written1000: Array<{ id: string; tx: number }> = [];
test.before(async () => {
  stack = await startAuditStack();
});
test.after.always(async () => {
  await stack?.dispose();
});

function expectEntryMatches(t: import('ava').ExecutionContext, e: AuditEntry, f: LogFixture) {
  const x = f.expected;
  const where = `${f.kind}#${f.seed}`;
  t.true(validate(e), `${where}: ${JSON.stringify(validate.errors)}`);
  t.is(e.request_id, x.requestId, where);
  t.is(e.time, new Date(x.startedAt).toISOString(), where);
  t.is(e.time_source, 'kong', where);
  t.is(e.what.method, x.method, where);
  t.is(e.what.path, x.path, where);
  t.is(e.what.scheme, x.https ? 'https' : 'http', where);
  t.is(e.what.route?.name ?? undefined, x.routeName, where);
  t.is(e.what.service?.name ?? undefined, x.serviceName, where);
  t.is(e.what.upstream_status, x.upstreamStatus ?? null, where);
  t.is(e.outcome.status, x.status, where);
  t.is(e.outcome.source, x.source, where);
  t.is(e.outcome.result, x.status < 400 ? 'success' : 'failure', where);
  t.is(e.who.authenticated, x.authenticated, where);
  t.is(e.who.consumer?.id ?? undefined, x.consumer?.id, where);
  t.is(e.who.consumer?.username ?? undefined, x.consumer?.username, where);
  t.is(e.who.consumer?.custom_id ?? undefined, x.consumer?.custom_id, where);
  t.is(e.who.credential_id ?? undefined, x.credentialId, where);
  t.is(e.who.client_ip, x.clientIp, where);
  t.is(e.where.client_ip, x.clientIp, where);
  // Tracing is on by default: a request without trace context gets a new root trace.
  const incoming = x.trace?.traceId ?? x.serializedTraceId;
  if (incoming) t.is(e.trace_id, incoming, where);
  else {
    t.regex(e.trace_id ?? '', /^[0-9a-f]{32}$/, where);
    t.is(e.trace_source, 'none', where);
  }
  t.regex(e.span_id ?? '', /^[0-9a-f]{16}$/, where);
  t.is(e.parent_span_id ?? undefined, x.trace?.parentSpanId, where);
  t.deepEqual(e.capture_problems, [], where);
}

test.serial('1,000 log events from 4 workers land as 1,000 correct entries in far fewer transactions', async (t) => {
  const config = stack.config({ immudb_database: 'foundation', create_database: true, key_prefix: 'f1', queue: { max_batch_size: 256, max_coalescing_delay: 0.05 } });
  const workers = await simulateWorkers(stack.rpc, 4, PLUGIN_NAME, config);
  const fixtures = generateFixtures(1000, { seed: 1000 });

  const results = await mapLimit(fixtures, 32, (f, i) => workers[i % workers.length]!.runLogEvent({ 'kong.log.serialize': f.json }));
  for (const r of results) {
    t.true(r.completed);
    t.deepEqual(countCalls(r), { 'kong.log.serialize': 1 }, 'exactly one PDK call per request');
  }
  t.is(new Set(results.map((r) => r.instanceId)).size, 4, 'four worker instances were used');

  const client = await stack.client('foundation');
  const stored = await waitForEntries(client, 'f1:entry:', 1000, 60_000);
  t.is(stored.length, 1000);

  const byRequest = new Map(fixtures.map((f) => [f.expected.requestId, f]));
  const ids = new Set<string>();
  const txs = new Set<string>();
  for (const s of stored) {
    const e = JSON.parse(s.value.toString()) as AuditEntry;
    t.is(s.key.toString(), `f1:entry:${e.id}`);
    ids.add(e.id);
    txs.add(s.tx);
    const f = byRequest.get(e.request_id ?? '');
    if (!f) {
      t.fail(`entry ${e.id} has an unknown request id ${e.request_id}`);
      continue;
    }
    byRequest.delete(e.request_id!);
    expectEntryMatches(t, e, f);
    const text = s.value.toString();
    for (const secret of f.expected.secretsInClear) t.false(text.includes(secret.value), `${secret.header} value leaked`);
    if (f.expected.rawQuery) t.false(text.includes(f.expected.rawQuery), 'query string leaked');
  }
  t.is(ids.size, 1000, 'distinct audit ids');
  written1000 = stored.map((s) => ({ id: (JSON.parse(s.value.toString()) as AuditEntry).id, tx: Number(s.tx) }));
  t.is(byRequest.size, 0, 'every request has its entry');
  t.true(txs.size <= 100, `${txs.size} transactions for 1,000 entries`);
  t.log(`1,000 entries in ${txs.size} immudb transactions`);
  t.notRegex(stack.server.logs(), /error|unhandled exception/i);
});

test.serial('each of the 1,000 entries passes `immudb-audit verify` (a verified read against the auditor\'s own state)', async (t) => {
  t.is(written1000.length, 1000, 'needs the entries of the previous test');
  const auditor = mkdtempSync(join(tmpdir(), 'kia-auditor-'));
  try {
    const r = await runCli([...cliTarget(stack.immudb, 'foundation', 'f1', auditor), '--json', 'verify', ...written1000.map((w) => w.id)], { IMMUDB_PASSWORD: stack.immudb.password });
    if (r.code !== 0) t.log(r.stderr);
    t.is(r.code, 0);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { verified: boolean; key: string; tx: number });
    t.is(lines.length, 1000);
    lines.forEach((l, i) => {
      t.true(l.verified);
      t.is(l.key, `f1:entry:${written1000[i]!.id}`);
      t.is(l.tx, written1000[i]!.tx);
    });
  } finally {
    rmSync(auditor, { recursive: true, force: true });
  }
});

test.serial("immudb's own immuclient reads the same values (get, safeget, scan)", async (t) => {
  const config = stack.config({ immudb_database: 'interop', create_database: true, key_prefix: 'i1', queue: { max_batch_size: 16, max_coalescing_delay: 0.02 } });
  const [worker] = await simulateWorkers(stack.rpc, 1, PLUGIN_NAME, config);
  const fixtures = generateFixtures(40, { seed: 77 });
  for (const f of fixtures) await worker!.runLogEvent({ 'kong.log.serialize': f.json });
  const client = await stack.client('interop');
  const stored = await waitForEntries(client, 'i1:entry:', 40);

  const scanned = parseImmuclient(await immuclient(stack.immudb, 'interop', 'scan', 'i1:entry:'));
  t.is(scanned.length, 40);
  const ours = new Map(stored.map((s) => [s.key.toString(), s.value.toString()]));
  for (const s of scanned) t.is(s.value, ours.get(s.key) ?? '(missing)', s.key);

  for (const s of stored.slice(0, 5)) {
    const [got] = parseImmuclient(await immuclient(stack.immudb, 'interop', 'get', s.key.toString()));
    t.is(got?.value, s.value.toString());
    t.is(String(got?.tx), s.tx);
    const [safe] = parseImmuclient(await immuclient(stack.immudb, 'interop', 'safeget', s.key.toString()));
    t.is(safe?.value, s.value.toString());
    t.true(safe?.verified, 'immuclient safeget verified the entry');
  }
});
