// Trust is never taken on somebody's word. Through a gRPC fault proxy and with damaged state
// files, on real servers: a forged "already exists" (with a forged read) does not acknowledge
// a batch, an honest replay is recognised by verified reads, and a trusted state or binding
// that cannot be read halts the writer and fails the auditor (exit 3) instead of resetting
// trust; `immudb-audit trust reset` is the one way to start again.
import test from 'ava';
import * as grpc from '@grpc/grpc-js';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dirSnapshot } from '../helpers/dir-snapshot.js';
import { simulateWorkers, type KongInstance } from '../helpers/kong-driver.js';
import { generateFixtures } from '../fixtures/serialized-logs.js';
import { PLUGIN_NAME, scanAll, startAuditStack, waitForEntries, type AuditStack } from '../helpers/audit-stack.js';
import { cliTarget, runCli } from '../helpers/cli.js';
import { startImmudbProxy, type ImmudbProxy } from '../helpers/immudb-proxy.js';
import { freePort } from '../../scripts/lib/immudb-server.js';
import { ImmudbClient, ImmudbError } from '../../plugin/store/immudb-client.js';
import { TrustedStateStore } from '../../plugin/store/trusted-state.js';
import { until } from '../helpers/until.js';
import { requestIdCounts, verifyAll } from '../helpers/exactly-once.js';

const QUEUE = { max_batch_size: 64, max_coalescing_delay: 0.05, initial_retry_delay: 0.05, max_retry_delay: 0.5 };

interface DestinationStatus {
  written: number;
  duplicates: number;
  spool_entries: number;
  halted: string | null;
}

async function status(port: number): Promise<DestinationStatus> {
  const res = await fetch(`http://127.0.0.1:${port}/status`);
  const body = (await res.json()) as { destinations: Record<string, DestinationStatus> };
  const all = Object.values(body.destinations);
  if (all.length !== 1) throw new Error(`expected one destination, got ${JSON.stringify(body)}`);
  return all[0]!;
}

/** The first log line after `from` characters that matches. */
function logLine(stack: AuditStack, from: number, re: RegExp): string | undefined {
  return stack.server.logs().slice(from).split('\n').find((l) => re.test(l));
}

async function send(worker: KongInstance, n: number, seed: number): Promise<string[]> {
  const ids: string[] = [];
  for (const f of generateFixtures(n, { seed })) {
    const r = await worker.runLogEvent({ 'kong.log.serialize': f.json });
    if (!r.completed) throw new Error('log event did not complete');
    ids.push(f.expected.requestId);
  }
  return ids;
}

/** request id -> how many times it is stored under the prefix. */
async function storedRequestIds(client: ImmudbClient, prefix: string): Promise<Map<string, number>> {
  return requestIdCounts(await scanAll(client, `${prefix}:entry:`));
}

interface ProxiedStack {
  stack: AuditStack;
  proxy: ImmudbProxy;
  metricsPort: number;
  worker: KongInstance;
}

async function proxiedStack(db: string, prefix: string): Promise<ProxiedStack> {
  const metricsPort = await freePort();
  const stack = await startAuditStack({ env: { IMMUDB_AUDIT_METRICS_PORT: String(metricsPort) } });
  const proxy = await startImmudbProxy(stack.immudb);
  const [worker] = await simulateWorkers(stack.rpc, 1, PLUGIN_NAME, stack.config({ immudb_host: proxy.host, immudb_port: proxy.port, immudb_database: db, create_database: true, key_prefix: prefix, queue: QUEUE }));
  return { stack, proxy, metricsPort, worker: worker! };
}

test.serial('forged "already exists" with a forged read: nothing is acknowledged; once the proxy is honest, written exactly once', async (t) => {
  const { stack, proxy, metricsPort, worker } = await proxiedStack('lie', 'l');
  t.teardown(async () => {
    await proxy.close();
    await stack.dispose();
  });
  const honest = await send(worker, 5, 1);
  const direct = await stack.client('lie');
  await waitForEntries(direct, 'l:entry:', 5);

  // immudb's own answer to a violated KeyMustNotExist, to forge it exactly.
  const existing = (await scanAll(direct, 'l:entry:'))[0]!.key;
  const real = await direct.verifiableSet([{ key: existing, value: Buffer.from('x') }], 0, [{ keyMustNotExist: { key: existing } }]).then(
    () => undefined,
    (e: unknown) => e as ImmudbError,
  );
  t.true(real instanceof ImmudbError && real.code !== undefined, 'immudb refused the existing key');
  const sent = new Map<string, Buffer>();
  let forgedSets = 0;
  proxy.hook('VerifiableSet', ({ request }) => {
    for (const kv of request.setRequest.KVs as Array<{ key: Buffer; value: Buffer }>) sent.set(kv.key.toString('hex'), kv.value);
    forgedSets++;
    return { error: { code: real!.code!, details: real!.details ?? real!.message } };
  });
  proxy.hook('Get', ({ request }) => {
    const value = sent.get((request.key as Buffer).toString('hex'));
    return value ? { response: { tx: '3', key: request.key, value, revision: '1' } } : undefined;
  });

  const lied = await send(worker, 10, 2);
  // The writer keeps retrying (or halts): several forged refusals, or it gave up on them.
  await until('the writer to meet the forged refusal 3 times, or to acknowledge', async () => {
    const s = await status(metricsPort);
    return forgedSets >= 3 || s.duplicates > 0 || s.spool_entries === 0 || s.halted !== null;
  });
  const during = await status(metricsPort);
  t.log(`while lying: ${forgedSets} forged refusals, status ${JSON.stringify(during)}`);
  t.is(during.duplicates, 0, 'nothing counted as already stored');
  t.is(during.written, 5);
  t.true(during.spool_entries >= 10, `the entries stay in the spool (${during.spool_entries})`);
  t.is((await scanAll(direct, 'l:entry:')).length, 5, 'immudb holds none of them');
  t.regex(stack.server.logs(), /retrying|writer halted/);

  proxy.clearHooks();
  const after = await until('the spool to drain', async () => {
    const s = await status(metricsPort);
    return s.spool_entries === 0 && s.written === 15 ? s : undefined;
  });
  t.is(after.duplicates, 0);
  const seen = await storedRequestIds(direct, 'l');
  t.deepEqual([...honest, ...lied].filter((r) => seen.get(r) !== 1), [], 'every entry exactly once');
  t.is(seen.size, 15);
  t.is((await verifyAll(t, stack, 'lie', 'l')).entries, 15);
});

test.serial('honest replay: a write whose answer was lost is recognised by verified reads, not written twice', async (t) => {
  const { stack, proxy, metricsPort, worker } = await proxiedStack('replay', 'r');
  t.teardown(async () => {
    await proxy.close();
    await stack.dispose();
  });
  await send(worker, 3, 1);
  const direct = await stack.client('replay');
  await waitForEntries(direct, 'r:entry:', 3);
  // The server commits the next batch, but its answer is lost on the way back.
  let lost = 0;
  proxy.hook('VerifiableSet', async ({ forward }) => {
    const up = await forward();
    if (up.error || lost) return up;
    lost++;
    return { error: { code: grpc.status.UNAVAILABLE, details: 'connection reset by the proxy' } };
  });
  const ids = await send(worker, 10, 2);
  const after = await until('the spool to drain', async () => {
    const s = await status(metricsPort);
    return s.spool_entries === 0 && s.written + s.duplicates === 13 ? s : undefined;
  });
  t.is(lost, 1);
  t.true(after.duplicates >= 1, `the lost batch was recognised (${after.duplicates} duplicates)`);
  t.true((proxy.calls.VerifiableGet ?? 0) >= after.duplicates, 'each existing key was read with its proof');
  const seen = await storedRequestIds(direct, 'r');
  t.deepEqual(ids.filter((r) => seen.get(r) !== 1), [], 'every entry exactly once');
  t.is((await verifyAll(t, stack, 'replay', 'r')).entries, 13);
});

test.serial('forged proof for an existing key: the writer halts, the entries stay spooled', async (t) => {
  const { stack, proxy, metricsPort, worker } = await proxiedStack('forgedget', 'f');
  t.teardown(async () => {
    await proxy.close();
    await stack.dispose();
  });
  await send(worker, 3, 1);
  const direct = await stack.client('forgedget');
  const [other] = await waitForEntries(direct, 'f:entry:', 3);
  const real = await direct.verifiableSet([{ key: other!.key, value: Buffer.from('x') }], 0, [{ keyMustNotExist: { key: other!.key } }]).then(() => undefined, (e: unknown) => e as ImmudbError);
  const sent = new Map<string, Buffer>();
  proxy.hook('VerifiableSet', ({ request }) => {
    for (const kv of request.setRequest.KVs as Array<{ key: Buffer; value: Buffer }>) sent.set(kv.key.toString('hex'), kv.value);
    return { error: { code: real!.code!, details: real!.details ?? real!.message } };
  });
  // A real proof of another key, presented as the proof of ours with our value.
  proxy.hook('VerifiableGet', async ({ request, forward }) => {
    const key = request.keyRequest.key as Buffer;
    const up = await forward({ ...request, keyRequest: { ...request.keyRequest, key: other!.key } });
    if (up.error) return up;
    return { response: { ...up.response, entry: { ...up.response.entry, key, value: sent.get(key.toString('hex')) ?? Buffer.alloc(0) } } };
  });
  await send(worker, 4, 2);
  const halted = await until('the writer to halt', async () => (await status(metricsPort)).halted ?? undefined);
  t.regex(halted, /entry inclusion proof|digest|does not/i);
  // The audit thread's log line reaches the server's stderr through the main thread: it can
  // follow /status by a moment on a loaded machine.
  await until('the halt to be logged', async () => /writer halted: /.test(stack.server.logs()) || undefined);
  t.regex(stack.server.logs(), /writer halted: /);
  const s = await status(metricsPort);
  t.is(s.duplicates, 0);
  t.true(s.spool_entries >= 4);
  t.is((await scanAll(direct, 'f:entry:')).length, 3);

  // The auditor through the same proxy: a forged proof is exit 3.
  const id = (JSON.parse((await scanAll(direct, 'f:entry:')).find((e) => !e.key.equals(other!.key))!.value.toString()) as { id: string }).id;
  const dir = mkdtempSync(join(tmpdir(), 'kia-auditor-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const target = ['--address', `${proxy.host}:${proxy.port}`, '--username', stack.immudb.username, '--database', 'forgedget', '--prefix', 'f', '--state-dir', dir];
  const bad = await runCli([...target, 'verify', id], { IMMUDB_PASSWORD: stack.immudb.password });
  t.is(bad.code, 3, bad.stderr);
  t.regex(bad.stderr, /^immudb-audit: VERIFICATION FAILED: /);
  proxy.clearHooks();
  const ok = await runCli([...target, 'verify', id], { IMMUDB_PASSWORD: stack.immudb.password });
  t.is(ok.code, 0, ok.stderr);
});

// ---- Finding 2: a trusted state (or, to migrate, a binding) that cannot be read ------------------------------

type Damage = (stateDir: string, db: string, port: number) => string;

/** The log's trusted state (decisions #23: per log, named after the database by default). */
function stateFile(stateDir: string, db: string): string {
  return join(stateDir, 'logs', `${db}.json`);
}

/** Each damage returns the file it damaged. */
const DAMAGES: Record<string, Damage> = {
  'invalid JSON': (dir, db) => {
    const f = stateFile(dir, db);
    writeFileSync(f, '{"server_uuid": oops');
    return f;
  },
  truncated: (dir, db) => {
    const f = stateFile(dir, db);
    writeFileSync(f, '');
    return f;
  },
  'wrong fields': (dir, db) => {
    const f = stateFile(dir, db);
    const s = new TrustedStateStore(dir).load(db, db)!;
    writeFileSync(f, JSON.stringify({ log: s.log, database: s.database, server_uuid: s.serverUuid, tx_id: 'seven' }));
    return f;
  },
  'unreadable (a directory)': (dir, db) => {
    const f = stateFile(dir, db);
    rmSync(f);
    mkdirSync(f);
    return f;
  },
  // A state kept per server by an earlier version, to be migrated, whose binding is broken.
  'broken binding of an earlier version': (dir, db, port) => {
    rmSync(stateFile(dir, db));
    mkdirSync(join(dir, 'bindings'), { recursive: true });
    const f = join(dir, 'bindings', `127.0.0.1_${port}_${db}.json`);
    writeFileSync(f, '{"server_uuid"');
    return f;
  },
};

test.serial('the writer halts on a trusted state it cannot read, even when immudb was rolled back; trust reset starts again', async (t) => {
  const stack = await startAuditStack();
  t.teardown(() => stack.dispose());
  const db = 'rolled';
  const [worker] = await simulateWorkers(stack.rpc, 1, PLUGIN_NAME, stack.config({ immudb_database: db, create_database: true, key_prefix: 's', queue: QUEUE }));
  const backup = mkdtempSync(join(tmpdir(), 'kia-immudb-backup-'));
  t.teardown(() => rmSync(backup, { recursive: true, force: true }));
  await send(worker!, 5, 1);
  const direct = await stack.client(db);
  await waitForEntries(direct, 's:entry:', 5);
  await direct.close();
  const immudbData = join(stack.immudb.dataDir!, 'data');
  await stack.immudb.stop();
  cpSync(immudbData, backup, { recursive: true });
  await stack.immudb.restart();
  await send(worker!, 5, 2);
  const c2 = await stack.client(db);
  await waitForEntries(c2, 's:entry:', 10);
  await c2.close();

  // The plugin server stops; its state file is corrupted and immudb rolled back meanwhile.
  const stateDir = join(stack.dataDir, 'trusted-state');
  await stack.server.stop();
  const damaged = DAMAGES['invalid JSON']!(stateDir, db, stack.immudb.port);
  const before = dirSnapshot(stateDir);
  await stack.immudb.stop();
  rmSync(immudbData, { recursive: true, force: true });
  cpSync(backup, immudbData, { recursive: true });
  await stack.immudb.restart();
  const from = stack.server.logs().length;
  await stack.server.start();
  await send(worker!, 3, 3);
  const line = await until('the writer to halt', () => logLine(stack, from, /writer halted/), 30_000);
  t.log(line);
  t.true(line.includes(damaged), line);
  t.regex(line, /trust reset --data-dir/);
  t.regex(line, /docs\/verification\.md, "When trust fails"/);
  // Retries would have come by now: nothing is written to the rolled-back server.
  await new Promise((r) => setTimeout(r, 1_500));
  const c3 = await stack.client(db);
  t.is((await scanAll(c3, 's:entry:')).length, 5, 'nothing written to the rolled-back server');
  t.deepEqual(dirSnapshot(stateDir), before, 'the trusted state was not overwritten');

  // The operator reviews the server and resets trust explicitly.
  await stack.server.stop();
  const reset = await runCli(['--address', `${stack.immudb.host}:${stack.immudb.port}`, '--username', stack.immudb.username, '--database', db, 'trust', 'reset', '--data-dir', stack.dataDir], { IMMUDB_PASSWORD: stack.immudb.password });
  t.is(reset.code, 0, reset.stderr);
  t.log(reset.stdout);
  t.regex(reset.stdout, new RegExp(`moved ${damaged.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} aside to \\S+\\.reset-`));
  t.true(readdirSync(join(stateDir, 'logs')).some((f) => /\.reset-/.test(f)), 'the state is kept, renamed');
  // The reset is recorded in the log itself, and the writer's trust starts there.
  t.regex(reset.stdout, /recorded in the log: audit:lifecycle:\S+ in tx \d+ \(the new trusted state starts there\)/);
  t.is((await scanAll(c3, 'audit:lifecycle:')).length, 1);
  await stack.server.start();
  await send(worker!, 2, 4);
  await waitForEntries(c3, 's:entry:', 10);
});

test.serial('the writer halts on each kind of damaged state or binding and never overwrites it', async (t) => {
  const stack = await startAuditStack();
  t.teardown(() => stack.dispose());
  const db = 'damaged';
  const [worker] = await simulateWorkers(stack.rpc, 1, PLUGIN_NAME, stack.config({ immudb_database: db, create_database: true, key_prefix: 'd', queue: QUEUE }));
  await send(worker!, 3, 1);
  const direct = await stack.client(db);
  await waitForEntries(direct, 'd:entry:', 3);
  const stateDir = join(stack.dataDir, 'trusted-state');
  let expected = 3;
  let seed = 10;
  for (const [name, damage] of Object.entries(DAMAGES).filter(([n]) => n !== 'invalid JSON')) {
    await stack.server.stop();
    const pristine = mkdtempSync(join(tmpdir(), 'kia-state-'));
    cpSync(stateDir, pristine, { recursive: true });
    const file = damage(stateDir, db, stack.immudb.port);
    const before = dirSnapshot(stateDir);
    const from = stack.server.logs().length;
    await stack.server.start();
    await send(worker!, 2, seed++);
    const line = await until(`the writer to halt (${name})`, () => logLine(stack, from, /writer halted/), 30_000);
    t.true(line.includes(file), `${name}: ${line}`);
    t.regex(line, /trust reset --data-dir/, name);
    await new Promise((r) => setTimeout(r, 1_000));
    t.is((await scanAll(direct, 'd:entry:')).length, expected, `${name}: nothing written`);
    t.deepEqual(dirSnapshot(stateDir), before, `${name}: state not overwritten`);
    // Repaired from the copy: the spooled entries land.
    await stack.server.stop();
    rmSync(stateDir, { recursive: true, force: true });
    cpSync(pristine, stateDir, { recursive: true });
    rmSync(pristine, { recursive: true, force: true });
    await stack.server.start();
    expected += 2;
    await send(worker!, 1, seed++);
    expected += 1;
    await waitForEntries(direct, 'd:entry:', expected);
  }
});

test.serial('the auditor exits 3 on a damaged state or binding (verify, verify --all); trust reset starts again', async (t) => {
  const stack = await startAuditStack();
  t.teardown(() => stack.dispose());
  const db = 'auditor';
  const [worker] = await simulateWorkers(stack.rpc, 1, PLUGIN_NAME, stack.config({ immudb_database: db, create_database: true, key_prefix: 'a', queue: QUEUE }));
  await send(worker!, 3, 1);
  const direct = await stack.client(db);
  const entries = await waitForEntries(direct, 'a:entry:', 3);
  const id = (JSON.parse(entries[0]!.value.toString()) as { id: string }).id;
  const env = { IMMUDB_PASSWORD: stack.immudb.password };
  const pristine = mkdtempSync(join(tmpdir(), 'kia-auditor-'));
  t.teardown(() => rmSync(pristine, { recursive: true, force: true }));
  t.is((await runCli([...cliTarget(stack.immudb, db, 'a', pristine), 'verify', '--all'], env)).code, 0);
  for (const [name, damage] of Object.entries(DAMAGES)) {
    const dir = mkdtempSync(join(tmpdir(), 'kia-auditor-'));
    try {
      cpSync(pristine, dir, { recursive: true });
      const file = damage(dir, db, stack.immudb.port);
      const before = dirSnapshot(dir);
      for (const args of [['verify', id], ['verify', '--all']]) {
        const r = await runCli([...cliTarget(stack.immudb, db, 'a', dir), ...args], env);
        t.is(r.code, 3, `${name}, ${args.join(' ')}: ${r.stderr}`);
        t.true(r.stderr.includes(file), `${name}: ${r.stderr}`);
        t.regex(r.stderr, /immudb-audit trust reset --state-dir/, name);
      }
      t.deepEqual(dirSnapshot(dir), before, `${name}: nothing overwritten`);
      const reset = await runCli(['--state-dir', dir, '--address', `${stack.immudb.host}:${stack.immudb.port}`, '--database', db, 'trust', 'reset', '--no-record']);
      t.is(reset.code, 0, reset.stderr);
      t.regex(reset.stdout, /moved .* aside/, name);
      const again = await runCli([...cliTarget(stack.immudb, db, 'a', dir), 'verify', id], env);
      t.is(again.code, 0, `${name}: ${again.stderr}`);
      t.regex(again.stdout, /first contact/, name);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
});
