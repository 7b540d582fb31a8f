// Coverage an auditor can prove (docs/decisions.md #30, #31), through the real plugin server and
// a real immudb: every entry and lifecycle entry is numbered in its node's stream, without an
// unexplained gap across a clean restart and a SIGKILL; lifecycle entries record start, stop,
// configuration changes, writer outages and heartbeats.
import test from 'ava';
import { PLUGIN_NAME, scanAll, startAuditStack, type AuditStack } from '../helpers/audit-stack.js';
import { simulateWorkers, type KongInstance } from '../helpers/kong-driver.js';
import { fixture } from '../helpers/exactly-once.js';
import { COVERAGE_GAP_EXIT, CoverageCollector } from '../../plugin/workbench/coverage.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startImmudb } from '../../scripts/lib/immudb-server.js';
import { AuditWriter } from '../../plugin/store/audit-writer.js';
import { createLogger } from '../../plugin/log.js';
import { compilePrivacy } from '../../plugin/capture/privacy-policy.js';
import { buildAuditEntry } from '../../plugin/capture/build-entry.js';
import { encodeEntry } from '../../plugin/capture/encode.js';
import { auditId } from '../../plugin/capture/audit-id.js';
import { encodeLifecycle } from '../../plugin/pipeline/lifecycle.js';
import { cliTarget, runCli } from '../helpers/cli.js';

const DB = 'coverage';
const PREFIX = 'cov';

type Json = Record<string, unknown>;

async function records(stack: AuditStack): Promise<Array<{ key: string; json: Json }>> {
  const client = await stack.client(DB);
  return (await scanAll(client, `${PREFIX}:`)).filter((e) => !e.key.toString().startsWith(`${PREFIX}:trace:`)).map((e) => ({ key: e.key.toString(), json: JSON.parse(e.value.toString()) as Json }));
}

const lifecycle = (rs: Array<{ key: string; json: Json }>, event?: string) =>
  rs.filter((r) => r.key.startsWith(`${PREFIX}:lifecycle:`) && (event === undefined || r.json.event === event));

async function run(workers: KongInstance[], from: number, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const r = await workers[i % workers.length]!.runLogEvent({ 'kong.log.serialize': fixture(from + i).json });
    if (!r.completed) throw new Error(`event ${from + i} did not complete`);
  }
}

test.serial('sequence numbers without an unexplained gap across a clean restart and a SIGKILL; lifecycle entries for each', async (t) => {
  const stack = await startAuditStack({ env: { IMMUDB_AUDIT_NODE_ID: 'kong-1' } });
  t.teardown(() => stack.dispose());
  const config = stack.config({ immudb_database: DB, create_database: true, key_prefix: PREFIX, heartbeat_interval: 1, queue: { max_batch_size: 64, max_coalescing_delay: 0.05 } });
  let workers = await simulateWorkers(stack.rpc, 2, PLUGIN_NAME, config);
  await run(workers, 0, 20);
  // A heartbeat (every second) lands while the server runs.
  const deadline = Date.now() + 30_000;
  while (lifecycle(await records(stack), 'heartbeat').length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));

  // A clean restart: a `stopping` entry, and the next run continues right after it.
  await stack.server.restart();
  workers = await simulateWorkers(stack.rpc, 2, PLUGIN_NAME, config);
  await run(workers, 100, 20);
  // A configuration change: a config_loaded entry with the new hash and the previous one.
  await workers[0]!.reconfigure({ ...config, tracing: { enabled: false } });
  await run(workers, 200, 4);

  // A SIGKILL under load: numbers reserved and not used are explained by the next start.
  let killed = false;
  let i = 300;
  const load = Promise.all(workers.map(async (w) => {
    while (!killed) await w.runLogEvent({ 'kong.log.serialize': fixture(i++).json }).catch(() => undefined);
  }));
  await new Promise((r) => setTimeout(r, 500));
  killed = true;
  await stack.server.kill();
  await load;
  await stack.server.restart();
  workers = await simulateWorkers(stack.rpc, 2, PLUGIN_NAME, config);
  await run(workers, 10_000, 10);
  // A last clean stop writes its `stopping` entry (the spool is flushed before exit).
  await stack.server.stop();

  const rs = await records(stack);
  const entries = rs.filter((r) => r.key.startsWith(`${PREFIX}:entry:`));
  t.true(entries.length >= 54, `${entries.length} entries`);
  for (const e of entries) {
    const seq = e.json.sequence as { stream: string; number: number } | undefined;
    t.truthy(seq && typeof seq.stream === 'string' && Number.isSafeInteger(seq.number), `${e.key} has a sequence number`);
  }
  const started = lifecycle(rs, 'started');
  t.is(started.length, 3, 'one started entry per run');
  t.deepEqual(started.map((s) => (s.json.previous_run as Json | null)?.ended ?? null).sort(), ['clean', 'unclean', null].sort() as Array<string | null>);
  for (const s of started) {
    t.is(s.json.node_id, 'kong-1');
    t.is(typeof s.json.pid, 'number');
    t.is(typeof s.json.plugin_version, 'string');
  }
  t.is(lifecycle(rs, 'stopping').length, 2, 'a stopping entry per clean stop');
  const configs = lifecycle(rs, 'config_loaded');
  t.true(configs.some((c) => c.json.previous_config_hash !== null), 'the changed configuration is recorded with the previous hash');
  t.true(configs.every((c) => /^sha256:[0-9a-f]{64}$/.test(String(c.json.config_hash))));
  t.false(JSON.stringify(configs).includes(stack.immudb.password), 'no secret in a config_loaded entry');
  t.true(lifecycle(rs, 'heartbeat').length >= 1, 'heartbeats');

  const cov = new CoverageCollector();
  for (const r of rs) cov.add(r.key, JSON.stringify(r.json));
  const report = cov.report(true);
  t.is(report.streams.length, 1, 'one stream: node kong-1, destination, prefix');
  t.deepEqual(report.gaps, [], 'no unexplained gap');
  t.is(report.duplicates, 0);
  t.is(report.unnumbered, 0);
  t.is(report.streams[0]!.node, 'kong-1');
  t.is(report.streams[0]!.first, 1);
  t.true(report.explained.length <= 1, JSON.stringify(report.explained));
  t.log(`${rs.length} records; stream ${report.streams[0]!.first}..${report.streams[0]!.last}; explained ${JSON.stringify(report.explained)}`);
});

test.serial('writer outage: writer_failing and writer_resumed lifecycle entries', async (t) => {
  const stack = await startAuditStack();
  t.teardown(() => stack.dispose());
  const config = stack.config({ immudb_database: DB, create_database: true, key_prefix: PREFIX, heartbeat_interval: 0, queue: { max_batch_size: 64, max_coalescing_delay: 0.05, initial_retry_delay: 0.05, max_retry_delay: 0.5 } });
  const workers = await simulateWorkers(stack.rpc, 1, PLUGIN_NAME, config);
  await run(workers, 0, 5);
  await stack.immudb.stop();
  await run(workers, 100, 5);
  await stack.server.waitForLog(/write to immudb failed \(attempt 1\)/);
  // The health is looked at once a second: the failure is seen before immudb returns.
  await new Promise((r) => setTimeout(r, 2_500));
  await stack.immudb.restart();
  const deadline = Date.now() + 60_000;
  let rs = await records(stack);
  while (lifecycle(rs, 'writer_resumed').length === 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 300));
    rs = await records(stack);
  }
  const failing = lifecycle(rs, 'writer_failing');
  t.is(failing.length, 1, 'writer_failing');
  t.truthy(failing[0]!.json.error);
  t.is(lifecycle(rs, 'writer_resumed').length, 1, 'writer_resumed');
  const cov = new CoverageCollector();
  for (const r of rs) cov.add(r.key, JSON.stringify(r.json));
  t.deepEqual(cov.report(true).gaps, []);
});

test.serial('verify --all and search report a node that skipped numbers and a silent period, and exit 5', async (t) => {
  const immudb = await startImmudb();
  const dir = mkdtempSync(join(tmpdir(), 'kia-coverage-'));
  t.teardown(async () => {
    await immudb.dispose();
    rmSync(dir, { recursive: true, force: true });
  });
  const writer = new AuditWriter({ connection: { host: immudb.host, port: immudb.port, username: immudb.username, password: immudb.password, database: 'gaps', createDatabase: true }, stateDir: join(dir, 'writer'), logger: createLogger('test') });
  t.teardown(() => writer.close());
  const privacy = compilePrivacy(undefined);
  const stream = '0b9f2d2e-6c1a-4a3e-9d55-2f7f3c1e8a01';
  const t0 = Date.parse('2026-12-01T10:00:00.000Z');
  const who = { nodeId: 'kong-2', hostname: 'h2' };
  const entry = (number: number, at: number) => encodeEntry('g', buildAuditEntry({ started_at: at, request: { method: 'GET', uri: '/x' }, response: { status: 200 } } as never, { id: auditId(at), now: at, ...who, sequence: { number, stream } }, [], privacy));
  // A node with a 60 s heartbeat: numbers 1..3, then 7..8 (4..6 never reached the log), and
  // nothing between 10:01 and 10:20.
  const records = [
    encodeLifecycle('g', 'started', { number: 1, stream }, who, { previous_run: null, heartbeat_seconds: 60, spool: { missing: 0 } }, t0),
    entry(2, t0 + 1000), entry(3, t0 + 60_000), entry(7, t0 + 20 * 60_000), entry(8, t0 + 20 * 60_000 + 1),
  ];
  for (const r of records) await writer.write([{ key: r.key, value: r.value }]);
  const target = cliTarget(immudb, 'gaps', 'g', join(dir, 'auditor'));
  const env = { IMMUDB_PASSWORD: immudb.password };
  const text = await runCli([...target, 'verify', '--all'], env);
  t.is(text.code, COVERAGE_GAP_EXIT, text.stderr + text.stdout);
  t.regex(text.stdout, /^verified: transactions 1\.\.\d+ of gaps/m);
  t.regex(text.stdout, /node kong-2: sequence 4\u20136 missing \(3 records; stream 0b9f2d2e-/);
  t.regex(text.stdout, /node kong-2: no entries and no heartbeat from 2026-12-01T10:01:00\.000Z to 2026-12-01T10:20:00\.000Z \(1140 s; heartbeat every 60 s\)/);
  const json = await runCli([...target, '--json', 'verify', '--all', '--from-tx', '1'], env);
  t.is(json.code, COVERAGE_GAP_EXIT, json.stderr);
  const out = JSON.parse(json.stdout) as { verified: boolean; gaps: Array<{ node: string; from: number; to: number; count: number }>; coverage: { silences: unknown[]; streams: unknown[] } };
  t.true(out.verified);
  t.deepEqual(out.gaps.map((g) => [g.node, g.from, g.to, g.count]), [['kong-2', 4, 6, 3]]);
  t.is(out.coverage.silences.length, 1);
  // Nothing new since: the incremental run has no gap to report; it verified no entry, exit 1.
  const again = await runCli([...target, 'verify', '--all'], env);
  t.is(again.code, 1, again.stderr);
  t.regex(again.stderr, /nothing new to verify/);
  t.notRegex(again.stdout, /missing/);

  // search: the gaps of the streams seen in the answered window, numbers checked first to last.
  const all = await runCli([...target, 'search'], env);
  t.is(all.code, COVERAGE_GAP_EXIT, all.stderr);
  t.regex(all.stdout, /node kong-2: sequence 4\u20136 missing/);
  t.regex(all.stdout, /node kong-2: no entries and no heartbeat from 2026-12-01T10:01:00\.000Z/);
  const window = await runCli([...target, '--json', 'search', '--since', '2026-12-01T10:00:30Z', '--until', '2026-12-01T10:30:00Z'], env);
  t.is(window.code, COVERAGE_GAP_EXIT, window.stderr);
  const summary = (JSON.parse(window.stdout.trim().split('\n').at(-1)!) as { summary: { gaps: Array<{ node: string; from: number; to: number }> } }).summary;
  t.deepEqual(summary.gaps.map((g) => [g.node, g.from, g.to]), [['kong-2', 4, 6]]);
  type Summary = { summary: { gaps: Array<{ node: string; from: number; to: number }>; coverage: { silences: Array<{ from: string; to: string }> } } };
  const summaryOf = (stdout: string) => (JSON.parse(stdout.trim().split('\n').at(-1)!) as Summary).summary;
  // A window that starts inside the gap: 4..6 were numbered between 3 (10:01) and 7 (10:20), the
  // first record in it, so they may be records of the window: reported, with the silence.
  const after = await runCli([...target, '--json', 'search', '--since', '2026-12-01T10:19:00Z'], env);
  t.is(after.code, COVERAGE_GAP_EXIT, after.stderr);
  t.deepEqual(summaryOf(after.stdout).gaps.map((g) => [g.node, g.from, g.to]), [['kong-2', 4, 6]]);
  t.deepEqual(summaryOf(after.stdout).coverage.silences.map((s) => [s.from, s.to]), [['2026-12-01T10:01:00.000Z', '2026-12-01T10:20:00.000Z']]);
  // A window that ends inside it (the gap follows 3, its last record), and one wholly inside it
  // (no record of the node at all: the records on both sides bracket the window).
  for (const [since, until] of [['2026-12-01T10:00:30Z', '2026-12-01T10:05:00Z'], ['2026-12-01T10:05:00Z', '2026-12-01T10:10:00Z']] as const) {
    const inside = await runCli([...target, '--json', 'search', '--since', since, '--until', until], env);
    t.is(inside.code, COVERAGE_GAP_EXIT, `${since}..${until}: ${inside.stderr}`);
    t.deepEqual(summaryOf(inside.stdout).gaps.map((g) => [g.node, g.from, g.to]), [['kong-2', 4, 6]], `${since}..${until}`);
    t.deepEqual(summaryOf(inside.stdout).coverage.silences.map((s) => [s.from, s.to]), [['2026-12-01T10:01:00.000Z', '2026-12-01T10:20:00.000Z']], `${since}..${until}`);
  }
  // A window before the gap, ending at 3: 1..3 are contiguous up to the record after it.
  const before = await runCli([...target, '--json', 'search', '--since', '2026-12-01T10:00:00Z', '--until', '2026-12-01T10:00:30Z'], env);
  t.is(before.code, 0, before.stderr);
  t.deepEqual(summaryOf(before.stdout).gaps, []);
  t.deepEqual(summaryOf(before.stdout).coverage.silences, []);
});
