// Loss records name the sequence numbers they count (docs/decisions.md #41), through the real
// plugin server and a real immudb: the spool reaches spool_max_bytes while immudb is down, the
// memory for held entries fills, entries are lost; once immudb is back the loss record names
// their numbers, and `verify --all` and `search` report those gaps as losses the plugin recorded,
// while a gap no loss record names (and one a loss record claims without holding together)
// stays unexplained. Both exit 5.
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PLUGIN_NAME, scanAll, startAuditStack, type AuditStack } from '../helpers/audit-stack.js';
import { simulateWorkers } from '../helpers/kong-driver.js';
import { fixture } from '../helpers/exactly-once.js';
import { cliTarget, runCli } from '../helpers/cli.js';
import { AuditWriter } from '../../plugin/store/audit-writer.js';
import { createLogger } from '../../plugin/log.js';
import { compilePrivacy } from '../../plugin/capture/privacy-policy.js';
import { buildAuditEntry } from '../../plugin/capture/build-entry.js';
import { encodeEntry } from '../../plugin/capture/encode.js';
import { auditId } from '../../plugin/capture/audit-id.js';
import { encodeLifecycle } from '../../plugin/pipeline/lifecycle.js';
import { lossKey } from '../../plugin/store/key-layout.js';
import { COVERAGE_GAP_EXIT } from '../../plugin/workbench/coverage.js';

const DB = 'losses';
const PREFIX = 'lost';

type Json = Record<string, unknown>;
interface LossJson { entries_lost: number; sequence: { stream: string; ranges: Array<[number, number]>; ranges_truncated: boolean; unlisted: number } | null }
interface Gap { node: string; stream: string; from: number; to: number; recorded_loss: { key: string } | null }

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function read(stack: AuditStack) {
  const client = await stack.client(DB);
  const all = (await scanAll(client, `${PREFIX}:`)).filter((e) => !e.key.toString().startsWith(`${PREFIX}:trace:`));
  const of = (kind: string) => all.filter((e) => e.key.toString().startsWith(`${PREFIX}:${kind}:`)).map((e) => ({ key: e.key.toString(), json: JSON.parse(e.value.toString()) as Json }));
  return { entries: of('entry'), lifecycle: of('lifecycle'), losses: of('loss') };
}

/** The numbers the ranges name, in order. */
const numbersOf = (ranges: ReadonlyArray<readonly [number, number]>) => ranges.flatMap(([a, b]) => Array.from({ length: b - a + 1 }, (_, i) => a + i));

test.serial('lost entries: the loss record names their numbers, and verify --all and search report them as recorded losses; an unnamed gap stays missing', async (t) => {
  const stack = await startAuditStack({ env: { IMMUDB_AUDIT_NODE_ID: 'kong-1' } });
  t.teardown(() => stack.dispose());
  const config = stack.config({
    immudb_database: DB, create_database: true, key_prefix: PREFIX, heartbeat_interval: 0, spool_max_bytes: 1024 * 1024,
    queue: { max_entries: 4, max_batch_size: 16, max_coalescing_delay: 0.01, initial_retry_delay: 0.05, max_retry_delay: 0.5 },
  });
  const [worker] = await simulateWorkers(stack.rpc, 1, PLUGIN_NAME, config);
  const send = (i: number) => worker!.runLogEvent({ 'kong.log.serialize': fixture(i).json }).then((r) => r.completed, () => false);
  for (let i = 0; i < 10; i++) t.true(await send(i));

  // immudb down: the spool fills to spool_max_bytes, four entries are held, the next are lost.
  await stack.immudb.stop();
  const inFlight: Array<Promise<boolean>> = [];
  let sent = 10;
  const deadline = Date.now() + 120_000;
  while (!/audit entries are being LOST/.test(stack.server.logs()) && Date.now() < deadline) {
    for (let k = 0; k < 20; k++) inFlight.push(send(sent++));
    await sleep(10);
  }
  t.regex(stack.server.logs(), /the spool cannot take entries \(spool: spool_max_bytes reached\)/);
  for (let k = 0; k < 30; k++) inFlight.push(send(sent++));
  await sleep(500);
  await stack.immudb.restart();
  await Promise.all(inFlight);
  t.log(`${sent} events sent`);

  // Everything written or counted lost, then a clean stop (its `stopping` entry is numbered after the losses).
  let r = await read(stack);
  const lost = () => r.losses.reduce((n, l) => n + (l.json.entries_lost as number), 0);
  let stableSince = Date.now();
  let lastCount = -1;
  const end = Date.now() + 120_000;
  while (Date.now() < end) {
    r = await read(stack);
    if (r.entries.length !== lastCount) {
      lastCount = r.entries.length;
      stableSince = Date.now();
    }
    if (r.losses.length && r.entries.length + lost() >= sent && Date.now() - stableSince > 2_000) break;
    await sleep(300);
  }
  await stack.server.stop();
  r = await read(stack);
  t.true(r.losses.length >= 1, 'a loss record');
  t.log(`${r.entries.length} entries stored, ${lost()} counted lost in ${r.losses.length} loss record(s): ${JSON.stringify(r.losses.map((l) => l.json.sequence))}`);

  // The loss records name numbers of the plugin's stream that are not in the log, as many as they count.
  const inLog = new Set([...r.entries, ...r.lifecycle].map((e) => (e.json.sequence as { number: number }).number));
  const stream = (r.entries[0]!.json.sequence as { stream: string }).stream;
  const named: number[] = [];
  for (const l of r.losses) {
    const j = l.json as unknown as LossJson;
    t.truthy(j.sequence, 'the loss record names numbers');
    t.is(j.sequence!.stream, stream);
    t.false(j.sequence!.ranges_truncated);
    t.is(numbersOf(j.sequence!.ranges).length + j.sequence!.unlisted, j.entries_lost);
    named.push(...numbersOf(j.sequence!.ranges));
  }
  t.true(named.length > 0);
  t.deepEqual(named.filter((n) => inLog.has(n)), [], 'no number named lost is in the log');
  const last = Math.max(...inLog);
  const missing = Array.from({ length: last }, (_, i) => i + 1).filter((n) => !inLog.has(n));
  t.deepEqual(missing, named.sort((a, b) => a - b), 'the numbers missing from the log are those the loss records name');

  // Another node wrote 1..2 and 5; 3..4 never reached the log, and a loss record naming them
  // does not hold together (it counts 5): that gap is not explained by it.
  const immudb = stack.immudb;
  const dir = mkdtempSync(join(tmpdir(), 'kia-recorded-loss-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const writer = new AuditWriter({ connection: { host: immudb.host, port: immudb.port, username: immudb.username, password: immudb.password, database: DB }, stateDir: join(dir, 'writer'), logger: createLogger('test') });
  t.teardown(() => writer.close());
  const other = '0b9f2d2e-6c1a-4a3e-9d55-2f7f3c1e8a01';
  const who = { nodeId: 'kong-2', hostname: 'h2' };
  const t0 = Date.now();
  const privacy = compilePrivacy(undefined);
  const entry = (number: number, at: number) => encodeEntry(PREFIX, buildAuditEntry({ started_at: at, request: { method: 'GET', uri: '/x' }, response: { status: 200 } } as never, { id: auditId(at), now: at, ...who, sequence: { number, stream: other } }, [], privacy));
  const forgedId = auditId(t0 + 3);
  const forged = { key: Buffer.from(lossKey(PREFIX, forgedId)), value: Buffer.from(JSON.stringify({ type: 'loss', node: 'kong-2', entries_lost: 5, reason: 'forged', sequence: { stream: other, ranges: [[3, 4]], ranges_truncated: false, unlisted: 0 } })) };
  for (const rec of [encodeLifecycle(PREFIX, 'started', { number: 1, stream: other }, who, { previous_run: null, heartbeat_seconds: 0, spool: { missing: 0 } }, t0), entry(2, t0 + 1), entry(5, t0 + 2), forged]) {
    await writer.write([{ key: rec.key, value: rec.value }]);
  }

  const target = cliTarget(immudb, DB, PREFIX, join(dir, 'auditor'));
  const env = { IMMUDB_PASSWORD: immudb.password };
  const json = await runCli([...target, '--json', 'verify', '--all', '--from-tx', '1'], env);
  t.is(json.code, COVERAGE_GAP_EXIT, json.stderr);
  const out = JSON.parse(json.stdout) as { verified: boolean; gaps: Gap[]; coverage: { losses: Array<{ key: string; problems: string[] }> } };
  t.true(out.verified);
  const mine = out.gaps.filter((g) => g.stream === stream);
  t.true(mine.length > 0 && mine.every((g) => g.node === 'kong-1' && g.recorded_loss !== null && r.losses.some((l) => l.key === g.recorded_loss!.key)), JSON.stringify(mine));
  t.deepEqual(mine.flatMap((g) => numbersOf([[g.from, g.to]])), named, 'the recorded-loss gaps are exactly the numbers named');
  t.deepEqual(out.gaps.filter((g) => g.stream === other).map((g) => [g.node, g.from, g.to, g.recorded_loss]), [['kong-2', 3, 4, null]]);
  const forgedReport = out.coverage.losses.find((l) => l.key === forged.key.toString());
  t.regex(forgedReport?.problems.join('; ') ?? '', /counts 5 entries lost, but names 2 number\(s\) and 0 unlisted/);

  const text = await runCli([...target, 'verify', '--all', '--from-tx', '1'], env);
  t.is(text.code, COVERAGE_GAP_EXIT, text.stderr);
  t.regex(text.stdout, /node kong-1: sequence \d+(\u2013\d+)? lost, recorded by the plugin \(spool: spool_max_bytes reached; immudb: [^)]*; loss record lost:loss:/);
  t.regex(text.stdout, /node kong-2: sequence 3\u20134 missing \(2 records; stream 0b9f2d2e-/);
  t.regex(text.stdout, /loss record lost:loss:\S+ \(node kong-2\) explains no gap: it counts 5 entries lost/);

  // search reads the same from the auditor's index.
  const search = await runCli([...target, '--json', 'search'], env);
  t.is(search.code, COVERAGE_GAP_EXIT, search.stderr);
  const summary = (JSON.parse(search.stdout.trim().split('\n').at(-1)!) as { summary: { gaps: Gap[] } }).summary;
  t.deepEqual(summary.gaps.filter((g) => g.stream === stream).flatMap((g) => (g.recorded_loss ? numbersOf([[g.from, g.to]]) : [-1])), named);
  t.deepEqual(summary.gaps.filter((g) => g.stream === other).map((g) => [g.from, g.to, g.recorded_loss]), [[3, 4, null]]);
});
