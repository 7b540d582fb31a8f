// queue.max_bytes (Kong's name): while immudb is down, at most that many bytes of entries are
// held in memory; the rest wait in the durable spool only, and all of them land afterwards.
import test from 'ava';
import { simulateWorkers } from '../helpers/kong-driver.js';
import { generateFixtures } from '../fixtures/serialized-logs.js';
import { PLUGIN_NAME, startAuditStack, waitForEntries } from '../helpers/audit-stack.js';
import { freePort } from '../../scripts/lib/immudb-server.js';

test('queue.max_bytes bounds the memory queue; the spool holds the rest; nothing is lost', async (t) => {
  const port = await freePort();
  const stack = await startAuditStack({ env: { IMMUDB_AUDIT_METRICS_PORT: String(port) } });
  t.teardown(() => stack.dispose());
  const maxBytes = 8192;
  const [w] = await simulateWorkers(stack.rpc, 1, PLUGIN_NAME, stack.config({ key_prefix: 'qb', queue: { max_bytes: maxBytes, max_batch_size: 512, max_coalescing_delay: 0.01, initial_retry_delay: 0.05, max_retry_delay: 0.2 } }));
  await stack.immudb.stop();
  let status: { queued_memory: number; queued_memory_bytes: number; spool_entries: number } | undefined;
  try {
    for (const f of generateFixtures(60, { seed: 11 })) await w!.runLogEvent({ 'kong.log.serialize': f.json });
    const body = (await (await fetch(`http://127.0.0.1:${port}/status`)).json()) as { destinations: Record<string, NonNullable<typeof status>> };
    status = Object.values(body.destinations)[0];
  } finally {
    await stack.immudb.restart();
  }
  // The 60 entries, and the lifecycle entries of an instance that started just before the outage
  // (started, config_loaded, writer_failing: lifecycle.ts) when they were not written yet.
  t.true(status!.spool_entries >= 60 && status!.spool_entries <= 63, `${status!.spool_entries} in the spool`);
  t.true(status!.queued_memory_bytes <= maxBytes, `${status!.queued_memory_bytes} bytes in memory`);
  t.true(status!.queued_memory > 0 && status!.queued_memory < 60, `${status!.queued_memory} of 60 entries in memory`);
  await waitForEntries(await stack.client('defaultdb'), 'qb:entry:', 60);
});
