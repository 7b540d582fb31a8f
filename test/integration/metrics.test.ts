// The opt-in Prometheus endpoint of the plugin server and `immudb-audit status` reading it.
import test from 'ava';
import { simulateWorkers } from '../helpers/kong-driver.js';
import { generateFixtures } from '../fixtures/serialized-logs.js';
import { PLUGIN_NAME, startAuditStack, waitForEntries, type AuditStack } from '../helpers/audit-stack.js';
import { runCli } from '../helpers/cli.js';
import { freePort } from '../../scripts/lib/immudb-server.js';

let stack: AuditStack;
let port: number;
test.before(async () => {
  stack = await startAuditStack({ metrics: true });
  port = stack.metricsPort!;
});
test.after.always(async () => {
  await stack?.dispose();
});

function metric(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
  if (!line) throw new Error(`no metric ${name}`);
  return Number(line.split(' ').pop());
}

test.serial('metrics count what the pipeline did; status shows the same', async (t) => {
  const [w] = await simulateWorkers(stack.rpc, 1, PLUGIN_NAME, stack.config({ immudb_database: 'metrics', create_database: true, key_prefix: 'x', queue: { max_batch_size: 10, max_coalescing_delay: 0.01 } }));
  for (const f of generateFixtures(25, { seed: 1 })) await w!.runLogEvent({ 'kong.log.serialize': f.json });
  await waitForEntries(await stack.client('metrics'), 'x:entry:', 25);
  // The counters move after the batch is acknowledged: poll (a generous deadline: load).
  let text = '';
  for (const deadline = Date.now() + 60_000; Date.now() < deadline;) {
    text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    if (metric(text, 'kong_immudb_audit_entries_written_total') === 25) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  t.is(metric(text, 'kong_immudb_audit_entries_captured_total'), 25);
  t.is(metric(text, 'kong_immudb_audit_entries_spooled_total'), 25);
  t.is(metric(text, 'kong_immudb_audit_entries_written_total'), 25);
  t.is(metric(text, 'kong_immudb_audit_entries_verified_total'), 25);
  t.is(metric(text, 'kong_immudb_audit_entries_refused_total'), 0);
  t.is(metric(text, 'kong_immudb_audit_entries_lost_total'), 0);
  t.is(metric(text, 'kong_immudb_audit_loss_records_total'), 0);
  t.is(metric(text, 'kong_immudb_audit_spool_missing_records_total'), 0);
  t.is(metric(text, 'kong_immudb_audit_held_entries'), 0);
  t.is(metric(text, 'kong_immudb_audit_spool_entries'), 0);
  t.is(metric(text, 'kong_immudb_audit_writer_halted'), 0);
  t.true(metric(text, 'kong_immudb_audit_batches_verified_total') >= 3);
  t.true(metric(text, 'kong_immudb_audit_last_tx_id') >= 3);
  t.regex(text, /kong_immudb_audit_immudb_write_seconds_bucket\{le="0.1",destination="127\.0\.0\.1:\d+\/metrics"\} \d+/);

  const status = await runCli(['status', '--metrics-url', `http://127.0.0.1:${port}`]);
  t.is(status.code, 0, status.stderr);
  t.regex(status.stdout, /^plugin server pid \d+\n127\.0\.0\.1:\d+\/metrics\n  captured +25\n  spooled +25\n  written +25\n/);
  const json = await runCli(['--json', 'status', '--metrics-url', `http://127.0.0.1:${port}`]);
  const body = JSON.parse(json.stdout);
  const dest = Object.values<{ written: number; lost: number; spool_missing: number; held_memory: number }>(body.destinations)[0]!;
  t.is(dest.written, 25);
  t.deepEqual([dest.lost, dest.spool_missing, dest.held_memory], [0, 0, 0]);
});

test.serial('while immudb is down the spool depth and the oldest entry age grow', async (t) => {
  const [w] = await simulateWorkers(stack.rpc, 1, PLUGIN_NAME, stack.config({ immudb_database: 'metrics', create_database: true, key_prefix: 'x', queue: { max_batch_size: 10, max_coalescing_delay: 0.01, initial_retry_delay: 0.05, max_retry_delay: 0.2 } }));
  await stack.immudb.stop();
  try {
    for (const f of generateFixtures(7, { seed: 500 })) await w!.runLogEvent({ 'kong.log.serialize': f.json });
    // Wait for the conditions (a retry, half a second of age), not a fixed time.
    let text = '';
    for (const deadline = Date.now() + 60_000; Date.now() < deadline;) {
      text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      if (metric(text, 'kong_immudb_audit_write_retries_total') >= 1 && metric(text, 'kong_immudb_audit_oldest_unacked_seconds') >= 0.5) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    // The 7 entries, and lifecycle entries (lifecycle.ts) not written yet: started and
    // config_loaded of an instance that started just before the outage, writer_failing.
    t.true([7, 8, 9, 10].includes(metric(text, 'kong_immudb_audit_spool_entries')), String(metric(text, 'kong_immudb_audit_spool_entries')));
    t.true(metric(text, 'kong_immudb_audit_spool_bytes') > 0);
    t.true(metric(text, 'kong_immudb_audit_oldest_unacked_seconds') >= 0.5);
    t.true(metric(text, 'kong_immudb_audit_write_retries_total') >= 1);
  } finally {
    await stack.immudb.restart();
  }
  await waitForEntries(await stack.client('metrics'), 'x:entry:', 32);
});

test.serial('status without an endpoint fails clearly', async (t) => {
  const r = await runCli(['status', '--metrics-url', `http://127.0.0.1:${await freePort()}`]);
  t.is(r.code, 1);
  t.regex(r.stderr, /cannot read http:\/\/127\.0\.0\.1:\d+\/status: fetch failed \(is IMMUDB_AUDIT_METRICS_PORT set for the plugin server\?\)/);
});
