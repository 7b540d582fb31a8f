// A configuration change takes effect without a restart: the immudb user's password is rotated
// under steady load, Kong sends the new configuration (StartInstance with it, CloseInstance of
// the old one) and writing resumes with the new credentials, nothing lost, nothing twice.
import test from 'ava';
import { readdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { simulateWorkers } from '../helpers/kong-driver.js';
import { until } from '../helpers/until.js';
import { onceEach } from '../helpers/exactly-once.js';
import { buildFixture, SCENARIO_KINDS } from '../fixtures/serialized-logs.js';
import { immuclient, PLUGIN_NAME, scanAll, startAuditStack, waitForEntries } from '../helpers/audit-stack.js';

const PW1 = 'Rotate-me-1';
const PW2 = 'Rotated-2nd';

test.serial('a rotated immudb password takes effect when Kong sends the new configuration: 0 lost, 0 twice', async (t) => {
  const stack = await startAuditStack();
  t.teardown(() => stack.dispose());
  await immuclient(stack.immudb, 'defaultdb', 'exec', `CREATE USER auditw WITH PASSWORD '${PW1}' READWRITE;`);
  const queue = { max_batch_size: 32, max_coalescing_delay: 0.05, initial_retry_delay: 0.05, max_retry_delay: 1 };
  const config = (password: string) => stack.config({ immudb_username: 'auditw', immudb_password: password, key_prefix: 'rot', queue });
  const workers = await simulateWorkers(stack.rpc, 2, PLUGIN_NAME, config(PW1));

  const acked = new Set<string>();
  let failed = 0;
  let running = true;
  const load = (async () => {
    // Bounded in count and time.
    const until = Date.now() + 120_000;
    for (let i = 0; running && i < 20_000 && Date.now() < until; i++) {
      const f = buildFixture(SCENARIO_KINDS[i % SCENARIO_KINDS.length]!, 300_000 + i);
      const r = await workers[i % 2]!.runLogEvent({ 'kong.log.serialize': f.json }).catch(() => undefined);
      if (r?.completed) acked.add(f.expected.requestId);
      else failed++;
      await new Promise((res) => setTimeout(res, 10));
    }
  })();

  let client = await stack.client('defaultdb');
  await waitForEntries(client, 'rot:entry:', 20, 60_000);
  // The password is rotated; immudb restarts (as an upgrade or session expiry would), so the
  // writer has to log in again, and the old password no longer works.
  await immuclient(stack.immudb, 'defaultdb', 'exec', `ALTER USER auditw WITH PASSWORD '${PW2}' READWRITE;`);
  await client.close();
  await stack.immudb.stop();
  await stack.immudb.restart();
  await until('the writer to fail with the old password', () => (/invalid user name or password/.test(stack.server.logs()) ? true : undefined), 60_000);
  client = await stack.client('defaultdb');
  const before = (await scanAll(client, 'rot:entry:')).length;

  const changedAt = Date.now();
  for (const [w, worker] of workers.entries()) await worker.reconfigure(config(PW2), { seq: 100 + w });
  const resumedMs = await until('writing to resume with the new password', async () => ((await scanAll(client, 'rot:entry:')).length > before ? Date.now() - changedAt : undefined), 120_000);
  await new Promise((r) => setTimeout(r, 1_000));
  running = false;
  await load;

  t.is(failed, 0, 'every log event completed');
  const entries = await waitForEntries(client, 'rot:entry:', acked.size, 120_000);
  const { missing, dupes } = onceEach(acked, entries);
  t.deepEqual(missing, [], 'nothing lost');
  t.deepEqual(dupes, [], 'nothing twice');
  // max_retry_delay is 1 s; the bound is generous for a loaded machine.
  // Without the new configuration it would never resume; the bound only has to be generous.
  t.true(resumedMs < 60_000, `writing resumed ${resumedMs} ms after the new configuration`);
  t.log(`${acked.size} events; writing resumed ${resumedMs} ms after the new configuration`);
});

test.serial("a spool left by an earlier version under <host>_<port>_<database>_<user> is replayed, not orphaned", async (t) => {
  const stack = await startAuditStack();
  t.teardown(() => stack.dispose());
  const config = stack.config({ key_prefix: 'legacy', queue: { max_coalescing_delay: 0.01, initial_retry_delay: 0.05, max_retry_delay: 0.2 } });
  const [w] = await simulateWorkers(stack.rpc, 1, PLUGIN_NAME, config);
  await stack.immudb.stop();
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) {
    const f = buildFixture(SCENARIO_KINDS[i % SCENARIO_KINDS.length]!, 900_000 + i);
    t.true((await w!.runLogEvent({ 'kong.log.serialize': f.json })).completed);
    ids.push(f.expected.requestId);
  }
  await stack.server.stop();
  // Where an earlier version kept this destination's spool (the user in the name).
  const root = join(stack.dataDir, 'spool');
  const current = readdirSync(root).find((d) => d.endsWith('_defaultdb'))!;
  t.truthy(current, readdirSync(root).join(', '));
  renameSync(join(root, current), join(root, `${current}_${stack.immudb.username}`));
  await stack.immudb.restart();
  await stack.server.restart();
  await w!.runLogEvent({ 'kong.log.serialize': buildFixture(SCENARIO_KINDS[0]!, 900_100).json });
  const entries = await waitForEntries(await stack.client('defaultdb'), 'legacy:entry:', 6);
  const stored = new Set(entries.map((e) => (JSON.parse(e.value.toString()) as { request_id: string }).request_id));
  t.deepEqual(ids.filter((id) => !stored.has(id)), [], 'the entries of the old spool are written');
  t.regex(stack.server.logs(), /of an earlier version renamed to/);
});

test.serial('a new immudb user for the same database: the same writer reconnects, one spool, nothing lost or twice', async (t) => {
  const stack = await startAuditStack();
  t.teardown(() => stack.dispose());
  await immuclient(stack.immudb, 'defaultdb', 'exec', `CREATE USER writer_a WITH PASSWORD '${PW1}' READWRITE;`);
  await immuclient(stack.immudb, 'defaultdb', 'exec', `CREATE USER writer_b WITH PASSWORD '${PW2}' READWRITE;`);
  const queue = { max_batch_size: 16, max_coalescing_delay: 0.02, initial_retry_delay: 0.05, max_retry_delay: 0.5 };
  const config = (user: string, password: string) => stack.config({ immudb_username: user, immudb_password: password, key_prefix: 'users', queue });
  const workers = await simulateWorkers(stack.rpc, 2, PLUGIN_NAME, config('writer_a', PW1));
  const acked = new Set<string>();
  let running = true;
  const load = (async () => {
    for (let i = 0; running && i < 5_000; i++) {
      const f = buildFixture(SCENARIO_KINDS[i % SCENARIO_KINDS.length]!, 700_000 + i);
      const r = await workers[i % 2]!.runLogEvent({ 'kong.log.serialize': f.json });
      if (r.completed) acked.add(f.expected.requestId);
      await new Promise((res) => setTimeout(res, 5));
    }
  })();
  const client = await stack.client('defaultdb');
  await waitForEntries(client, 'users:entry:', 20, 60_000);
  for (const [w, worker] of workers.entries()) await worker.reconfigure(config('writer_b', PW2), { seq: 200 + w });
  await new Promise((r) => setTimeout(r, 1_500));
  running = false;
  await load;
  const entries = await waitForEntries(client, 'users:entry:', acked.size, 120_000);
  const { missing, dupes } = onceEach(acked, entries);
  t.deepEqual(missing, [], 'nothing lost');
  t.deepEqual(dupes, [], 'nothing twice');
  t.deepEqual(readdirSync(join(stack.dataDir, 'spool')).filter((d) => d.includes('_defaultdb')).length, 1, 'one spool for the destination');
  t.regex(stack.server.logs(), /changed \(immudb_username, immudb_password\): the writer reconnects with the new settings/);
  t.notRegex(stack.server.logs(), /halted|VERIFICATION/i);
});
