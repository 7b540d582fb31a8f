// Tamper evidence on real servers: another server behind the same address, or immudb's data
// directory rolled back to an older copy, make the plugin's writer and `immudb-audit verify`
// report tampering; neither the writer's nor the auditor's trusted state moves.
import test from 'ava';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dirSnapshot } from '../helpers/dir-snapshot.js';
import { simulateWorkers, type KongInstance } from '../helpers/kong-driver.js';
import { generateFixtures } from '../fixtures/serialized-logs.js';
import { PLUGIN_NAME, startAuditStack, waitForEntries, type AuditStack } from '../helpers/audit-stack.js';
import { cliTarget, runCli } from '../helpers/cli.js';
import { startImmudb } from '../../scripts/lib/immudb-server.js';
import { ImmudbClient } from '../../plugin/store/immudb-client.js';


async function waitForLog(stack: AuditStack, re: RegExp, timeoutMs = 30_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const line = stack.server.logs().split('\n').find((l) => re.test(l));
    if (line) return line;
    if (Date.now() > deadline) throw new Error(`no log line matching ${re} in:\n${stack.server.logs().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface Ctx {
  stack: AuditStack;
  worker: KongInstance;
  auditor: string;
  target: string[];
  env: NodeJS.ProcessEnv;
}

async function setUp(db: string): Promise<Ctx> {
  const stack = await startAuditStack();
  const [worker] = await simulateWorkers(stack.rpc, 1, PLUGIN_NAME, stack.config({ immudb_database: db, create_database: true, key_prefix: 't', queue: { max_batch_size: 8, max_coalescing_delay: 0.01, initial_retry_delay: 0.05, max_retry_delay: 0.5 } }));
  const auditor = mkdtempSync(join(tmpdir(), 'kia-auditor-'));
  return { stack, worker: worker!, auditor, target: cliTarget(stack.immudb, db, 't', auditor), env: { IMMUDB_PASSWORD: stack.immudb.password } };
}

async function send(c: Ctx, n: number, seed: number) {
  for (const f of generateFixtures(n, { seed })) await c.worker.runLogEvent({ 'kong.log.serialize': f.json });
}

async function ids(c: Ctx, db: string, count: number): Promise<string[]> {
  const client = await c.stack.client(db);
  const entries = await waitForEntries(client, 't:entry:', count);
  await client.close();
  return entries.map((e) => (JSON.parse(e.value.toString()) as { id: string }).id);
}

test.serial('another server behind the same address: writer halts, verify fails, trusted state unchanged', async (t) => {
  const c = await setUp('swap');
  try {
    await send(c, 20, 1);
    const written = await ids(c, 'swap', 20);
    const ok = await runCli([...c.target, 'verify', ...written], c.env);
    t.is(ok.code, 0, ok.stderr);

    const pluginState = dirSnapshot(join(c.stack.dataDir, 'trusted-state'));
    const auditorState = dirSnapshot(c.auditor);
    const port = c.stack.immudb.port;
    await c.stack.immudb.stop();
    const impostor = await startImmudb({ port });
    try {
      await send(c, 5, 500);
      const line = await waitForLog(c.stack, /writer halted/);
      t.regex(line, /database swap does not exist on immudb at 127\.0\.0\.1:\d+, but the writer verified tx \d+ of log swap on server \S+: the server was replaced or the database removed/);

      const bad = await runCli([...c.target, 'verify', written[0]!], c.env);
      t.is(bad.code, 3);
      t.regex(bad.stderr, /^immudb-audit: VERIFICATION FAILED: database swap does not exist on immudb at 127\.0\.0\.1:\d+, but this auditor verified tx \d+ of log swap on server \S+: the server was replaced or the database removed/);

      // The impostor now has a database of that name, with entries of its own.
      const forged = await ImmudbClient.connect({ host: impostor.host, port: impostor.port, username: impostor.username, password: impostor.password, database: 'swap', createDatabase: true });
      await forged.set([{ key: Buffer.from(`t:entry:${written[0]}`), value: Buffer.from('{"forged":true}') }]);
      await forged.close();
      const bad2 = await runCli([...c.target, 'verify', written[0]!], c.env);
      t.is(bad2.code, 3);
      // Trust belongs to the log, not to the server: the impostor's history is shorter (a fork
      // were it longer), whatever its identity.
      t.regex(bad2.stderr, /^immudb-audit: VERIFICATION FAILED: immudb at 127\.0\.0\.1:\d+ \(server \S+\) reports tx 1 of swap, but this auditor verified tx \d+ of log swap before on server \S+: its history is shorter/);

      t.deepEqual(dirSnapshot(join(c.stack.dataDir, 'trusted-state')), pluginState, "the writer's trusted state did not move");
      t.deepEqual(dirSnapshot(c.auditor), auditorState, "the auditor's trusted state did not move");
      t.true(c.stack.server.isRunning());
    } finally {
      await impostor.dispose();
    }
  } finally {
    await c.stack.dispose();
    rmSync(c.auditor, { recursive: true, force: true });
  }
});

test.serial('data directory rolled back to an older copy: writer halts, verify fails, trusted state unchanged', async (t) => {
  const c = await setUp('rollback');
  const backup = mkdtempSync(join(tmpdir(), 'kia-immudb-backup-'));
  try {
    await send(c, 10, 1);
    const early = await ids(c, 'rollback', 10);
    t.is((await runCli([...c.target, 'verify', early[0]!], c.env)).code, 0);

    // Copy the data directory while the server is stopped, then let history grow.
    const dataDir = join(c.stack.immudb.dataDir!, 'data');
    await c.stack.immudb.stop();
    cpSync(dataDir, backup, { recursive: true });
    await c.stack.immudb.restart();
    await send(c, 10, 100);
    const all = await ids(c, 'rollback', 20);
    const late = all.filter((id) => !early.includes(id));
    const v = await runCli([...c.target, 'verify', ...late], c.env);
    t.is(v.code, 0, v.stderr);

    const pluginState = dirSnapshot(join(c.stack.dataDir, 'trusted-state'));
    const auditorState = dirSnapshot(c.auditor);

    // Roll back: the older copy replaces the data directory.
    await c.stack.immudb.stop();
    rmSync(dataDir, { recursive: true, force: true });
    cpSync(backup, dataDir, { recursive: true });
    await c.stack.immudb.restart();

    await send(c, 3, 900);
    const line = await waitForLog(c.stack, /writer halted/);
    t.regex(line, /reports tx \d+ of rollback, but the writer verified tx \d+ of log rollback before: its history is shorter\. .*rolled back or replaced/);

    const bad = await runCli([...c.target, 'verify', early[0]!], c.env);
    t.is(bad.code, 3, bad.stderr);
    t.regex(bad.stderr, /^immudb-audit: VERIFICATION FAILED: immudb at 127\.0\.0\.1:\d+ \(server \S+\) reports tx \d+ of rollback, but this auditor verified tx \d+ of log rollback before: its history is shorter\. .*rolled back or replaced/);
    const audit = await runCli([...c.target, 'verify', '--all'], c.env);
    t.is(audit.code, 3, audit.stderr);
    t.regex(audit.stderr, /its history was rolled back or replaced/);

    t.deepEqual(dirSnapshot(join(c.stack.dataDir, 'trusted-state')), pluginState, "the writer's trusted state did not move");
    t.deepEqual(dirSnapshot(c.auditor), auditorState, "the auditor's trusted state did not move");
  } finally {
    await c.stack.dispose();
    rmSync(c.auditor, { recursive: true, force: true });
    rmSync(backup, { recursive: true, force: true });
  }
});
