// The trace index against the real plugin server and immudb: an entry is filed under its own
// trace only (a response header named trace_id cannot move it), and `find --trace` keeps only
// entries whose own trace_id is the trace asked for, reporting (and failing on) the others:
// here a forged index key written with a plain Set.
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { simulateWorkers, type KongInstance } from '../helpers/kong-driver.js';
import { anonymousLog, type LogFixture } from '../fixtures/serialized-logs.js';
import { PLUGIN_NAME, startAuditStack, waitForEntries, type AuditStack } from '../helpers/audit-stack.js';
import { cliTarget, runCli } from '../helpers/cli.js';
import type { AuditEntry } from '../../plugin/capture/audit-entry.js';

const DB = 'traceindex';
const PREFIX = 'ti';
let stack: AuditStack;
let worker: KongInstance;
let sent = 0;
const auditor = mkdtempSync(join(tmpdir(), 'kia-auditor-'));

test.before(async () => {
  // No trace backend: entries keep the trace id of their traceparent header.
  stack = await startAuditStack({ env: { OTEL_SDK_DISABLED: 'true' } });
  [worker] = (await simulateWorkers(stack.rpc, 1, PLUGIN_NAME, stack.config({
    immudb_database: DB, create_database: true, key_prefix: PREFIX,
    privacy: { response_headers: ['trace_id'] },
    queue: { max_batch_size: 64, max_coalescing_delay: 0.05 },
  }))) as [KongInstance];
});
test.after.always(async () => {
  await stack?.dispose();
  rmSync(auditor, { recursive: true, force: true });
});

/** Sends `f` with a traceparent of `traceId` (and response headers `headers`); returns its stored entry. */
async function send(f: LogFixture, traceId: string, headers: Record<string, string> = {}): Promise<AuditEntry> {
  const log = structuredClone(f.log);
  log.request.headers.traceparent = `00-${traceId}-${'1'.repeat(16)}-01`;
  delete log.trace_id;
  Object.assign(log.response.headers, headers);
  await worker.runLogEvent({ 'kong.log.serialize': JSON.stringify(log) });
  sent++;
  const stored = await waitForEntries(await stack.client(DB), `${PREFIX}:entry:`, sent);
  const entry = stored.map((s) => JSON.parse(s.value.toString()) as AuditEntry).find((e) => e.request_id === f.expected.requestId);
  if (!entry) throw new Error(`entry of ${f.expected.requestId} not stored`);
  return entry;
}

const find = (...args: string[]) => runCli([...cliTarget(stack.immudb, DB, PREFIX, auditor), ...args], { IMMUDB_PASSWORD: stack.immudb.password });

test.serial('a response header named trace_id does not file the entry under the trace it names', async (t) => {
  const own = 'a1'.repeat(16);
  const chosen = 'c7'.repeat(16);
  const entry = await send(anonymousLog(900), own, { trace_id: chosen });
  t.is(entry.trace_id, own);
  t.is(entry.outcome.response_headers?.trace_id, chosen);
  const mine = await find('--json', 'find', '--trace', own, '--verify');
  t.is(mine.code, 0, mine.stderr);
  t.deepEqual(mine.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { id: string }).id), [entry.id]);
  const theirs = await find('find', '--trace', chosen, '--verify');
  t.is(theirs.code, 1, theirs.stdout);
  t.is(theirs.stderr, `immudb-audit: no audit entries for trace ${chosen} in immudb database ${DB}\n`);
});

test.serial('find --trace reports entries the index lists under a trace they are not in, and fails', async (t) => {
  const trace = 'b2'.repeat(16);
  const other = 'd4'.repeat(16);
  const real = await send(anonymousLog(901), trace);
  const unrelated = await send(anonymousLog(902), other);
  // A forged index key (plain Set, as anyone with write access to the database could do), and
  // one pointing at an entry that does not exist.
  const client = await stack.client(DB);
  const missing = '0190c8e2-7b1a-7c3d-9e4f-0123456789ab';
  await client.set([
    { key: Buffer.from(`${PREFIX}:trace:${trace}:${unrelated.id}`), value: Buffer.from(`${PREFIX}:entry:${unrelated.id}`) },
    { key: Buffer.from(`${PREFIX}:trace:${trace}:${missing}`), value: Buffer.from(`${PREFIX}:entry:${missing}`) },
  ]);

  const verified = await find('--json', 'find', '--trace', trace, '--verify');
  t.is(verified.code, 3, verified.stderr);
  const rows = verified.stdout.trim().split('\n').map((l) => JSON.parse(l) as { id: string; verified: boolean; entry?: AuditEntry; mismatch?: string; entry_trace_id?: string | null });
  const kept = rows.filter((r) => !r.mismatch);
  t.deepEqual(kept.map((r) => r.id), [real.id]);
  t.true(kept[0]!.verified);
  t.is(kept[0]!.entry!.trace_id, trace);
  const lied = rows.filter((r) => r.mismatch);
  t.deepEqual(lied.map((r) => r.id).sort(), [unrelated.id, missing].sort());
  t.is(lied.find((r) => r.id === unrelated.id)!.entry_trace_id, other);
  t.regex(verified.stderr, new RegExp(`VERIFICATION FAILED: .*${unrelated.id}.* trace_id is ${other}`));
  t.regex(verified.stderr, new RegExp(`${missing}.*not found`));

  const plain = await find('find', '--trace', trace);
  t.is(plain.code, 1, plain.stderr);
  t.regex(plain.stdout, new RegExp(`^${real.id} .*unverified$`, 'm'));
  t.notRegex(plain.stdout, new RegExp(unrelated.id));
  t.regex(plain.stderr, new RegExp(`${unrelated.id}.* trace_id is ${other} \\(unverified read\\)`));
});
