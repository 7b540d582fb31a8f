// The audit thread in the real plugin server: Kong's SIGTERM reaches the main thread, which has
// the thread write what it holds before the process exits; IMMUDB_AUDIT_THREAD=off runs the
// same handler in process; a bad setting fails StartInstance with its reason.
import test from 'ava';
import { simulateWorkers } from '../helpers/kong-driver.js';
import { buildFixture, SCENARIO_KINDS } from '../fixtures/serialized-logs.js';
import { PLUGIN_NAME, scanAll, startAuditStack } from '../helpers/audit-stack.js';

const fixture = (i: number) => buildFixture(SCENARIO_KINDS[i % SCENARIO_KINDS.length]!, 300_000 + i);

for (const mode of ['on', 'off'] as const) {
  test.serial(`IMMUDB_AUDIT_THREAD=${mode}: SIGTERM writes every acknowledged entry to immudb before the process exits`, async (t) => {
    const stack = await startAuditStack({ env: { IMMUDB_AUDIT_THREAD: mode } });
    t.teardown(() => stack.dispose());
    const db = `sigterm${mode}`;
    // An hour of coalescing: nothing is written until the shutdown flushes the batch.
    const workers = await simulateWorkers(stack.rpc, 2, PLUGIN_NAME, stack.config({ immudb_database: db, create_database: true, key_prefix: 's', queue: { max_batch_size: 512, max_coalescing_delay: 3600 } }));
    const ids: string[] = [];
    for (let i = 0; i < 40; i++) {
      const f = fixture(i);
      const r = await workers[i % 2]!.runLogEvent({ 'kong.log.serialize': f.json });
      t.true(r.completed);
      ids.push(f.expected.requestId);
    }
    // No trace backend listens here: its exporter's retries must not hold the exit up (bounded
    // to 2 s); past 20 s the driver would SIGKILL the server and the exit code would say so.
    // (6 s was too tight on a loaded machine: the flush alone took longer under the CPU hog.)
    const exit = await stack.server.stop('SIGTERM', 20_000);
    t.is(exit.code, 0, stack.server.logs());
    t.is(exit.signal, null);
    // Written by the flush, not by a replay: no plugin server runs any more.
    const client = await stack.client(db);
    const stored = (await scanAll(client, 's:entry:')).map((e) => (JSON.parse(e.value.toString()) as { request_id: string }).request_id);
    t.deepEqual(stored.sort(), [...ids].sort());
    t.regex(stack.server.logs(), mode === 'on' ? /audit-thread: SIGTERM: flushing audit entries before exit/ : /pipeline: SIGTERM: flushing audit entries before exit/);
  });
}

test.serial('IMMUDB_AUDIT_THREAD with a value other than on/off fails StartInstance with the reason', async (t) => {
  const stack = await startAuditStack({ env: { IMMUDB_AUDIT_THREAD: 'maybe' } });
  t.teardown(() => stack.dispose());
  const err = await t.throwsAsync(stack.rpc.startInstance(PLUGIN_NAME, stack.config()));
  t.regex(err!.message, /IMMUDB_AUDIT_THREAD must be "on" or "off", got "maybe"/);
});

test.serial('a configuration the audit thread refuses fails StartInstance with its reason, and the secret is not echoed', async (t) => {
  const stack = await startAuditStack();
  t.teardown(() => stack.dispose());
  // Valid for the schema, refused when the thread checks the spool's directory (a file on /proc).
  const err = await t.throwsAsync(stack.rpc.startInstance(PLUGIN_NAME, stack.config({ spool_dir: '/proc/self/status', immudb_password: 'hunter2-secret' })));
  t.regex(err!.message, /^spool_dir \/proc\/self\/status\/\S+: \/proc\/self\/status is on proc, a pseudo file system/);
  t.notRegex(err!.message, /hunter2/);
  t.notRegex(stack.server.logs(), /hunter2/);
  // The server keeps serving: a good configuration starts.
  const ok = await stack.rpc.startInstance(PLUGIN_NAME, stack.config());
  t.is(typeof ok.Id, 'number');
  t.is((ok.Config as Record<string, unknown>).immudb_password, '<redacted>');
});
