// Queue and replica settings take effect when Kong sends a new configuration, without a restart
// of the plugin server: through the real plugin server and a real immudb, the way Kong applies a
// change (StartInstance with the new configuration, CloseInstance of the old one).
import test from 'ava';
import { freePort } from '../../scripts/lib/immudb-server.js';
import { simulateWorkers, type KongInstance } from '../helpers/kong-driver.js';
import { until } from '../helpers/until.js';
import { onceEach } from '../helpers/exactly-once.js';
import { buildFixture, SCENARIO_KINDS } from '../fixtures/serialized-logs.js';
import { PLUGIN_NAME, scanAll, startAuditStack, waitForEntries } from '../helpers/audit-stack.js';

let seq = 0;
/** `n` log events at once; resolves with their request ids once Kong's calls returned. */
async function burst(worker: KongInstance, n: number): Promise<string[]> {
  const fixtures = Array.from({ length: n }, () => buildFixture(SCENARIO_KINDS[seq % SCENARIO_KINDS.length]!, 700_000 + seq++));
  const results = await Promise.all(fixtures.map((f) => worker.runLogEvent({ 'kong.log.serialize': f.json })));
  if (!results.every((r) => r.completed)) throw new Error('a log event did not complete');
  return fixtures.map((f) => f.expected.requestId);
}

test.serial('queue and replica settings of a new configuration apply to the running writer: 0 lost, 0 twice', async (t) => {
  const metricsPort = await freePort();
  const stack = await startAuditStack({ env: { IMMUDB_AUDIT_METRICS_PORT: String(metricsPort) } });
  t.teardown(() => stack.dispose());
  const spooled = async () => {
    const s = (await (await fetch(`http://127.0.0.1:${metricsPort}/status`)).json()) as { destinations: Record<string, { spool_entries: number }> };
    return Object.values(s.destinations).reduce((n, d) => n + d.spool_entries, 0);
  };
  const base = { key_prefix: 'live', queue: { max_batch_size: 1, max_coalescing_delay: 0.01, initial_retry_delay: 0.05, max_retry_delay: 0.5 } };
  const [w] = await simulateWorkers(stack.rpc, 1, PLUGIN_NAME, stack.config(base));
  const worker = w!;
  const sent: string[] = [];
  const client = await stack.client('defaultdb');
  const txsOf = async (ids: string[]) => {
    const entries = await waitForEntries(client, 'live:entry:', sent.length, 60_000);
    const wanted = new Set(ids);
    return new Set(entries.filter((e) => wanted.has((JSON.parse(e.value.toString()) as { request_id: string }).request_id)).map((e) => e.tx.toString()));
  };

  // 1. max_batch_size 1: one transaction per entry.
  const first = await burst(worker, 8);
  sent.push(...first);
  t.is((await txsOf(first)).size, 8, 'max_batch_size 1 writes one transaction per entry');

  // 2. A new configuration with max_batch_size 64 and a long coalescing delay: the next burst
  //    shares transactions.
  await worker.reconfigure(stack.config({ ...base, queue: { ...base.queue, max_batch_size: 64, max_coalescing_delay: 1 } }), { seq: 10 });
  const second = await burst(worker, 8);
  sent.push(...second);
  const txs = await txsOf(second);
  t.true(txs.size <= 2, `after the change 8 entries went into ${txs.size} transactions (max_batch_size 64 did not apply)`);
  t.regex(stack.server.logs(), /queue settings of .* changed/);

  // 3. Replica settings: a second address that never answers and one acknowledgement required.
  //    The same pipeline (one spool, one writer, one trusted state) writes the next batch, but it
  //    stays in the spool, and holds the batches after it, until the replica proves it holds it.
  const deadPort = await freePort();
  const addresses = [`${stack.immudb.host}:${stack.immudb.port}`, `127.0.0.1:${deadPort}`];
  await worker.reconfigure(stack.config({ ...base, immudb_addresses: addresses, immudb_replica_acks: 1, immudb_replica_ack_timeout: 0.5 }), { seq: 11 });
  const third = await burst(worker, 4);
  sent.push(...third);
  await until('the replica wait to show', () => (/replicas required \(immudb_replica_acks\)/.test(stack.server.logs()) ? true : undefined), 60_000);
  t.true((await spooled()) > 0, 'entries wait in the spool for the replica acknowledgement');
  t.notRegex(stack.server.logs(), /did not start|failed to start/);

  // 4. Back to no acknowledgement: the entries waiting for it leave the spool.
  await worker.reconfigure(stack.config({ ...base, immudb_addresses: addresses, immudb_replica_acks: 0 }), { seq: 12 });
  await until('the spool to drain', async () => ((await spooled()) === 0 ? true : undefined), 60_000);
  await txsOf(third);
  const fourth = await burst(worker, 4);
  sent.push(...fourth);
  await until('the last entries to leave the spool', async () => ((await spooled()) === 0 ? true : undefined), 60_000);
  await txsOf(fourth);

  const entries = await scanAll(client, 'live:entry:');
  const { missing, dupes } = onceEach(sent, entries);
  t.deepEqual(missing, [], 'nothing lost');
  t.deepEqual(dupes, [], 'nothing twice');
  t.notRegex(stack.server.logs(), /first one's apply/);
});

test.serial('a second destination for an audit log already written is refused with the reason, not a second writer', async (t) => {
  const stack = await startAuditStack();
  t.teardown(() => stack.dispose());
  const [w] = await simulateWorkers(stack.rpc, 1, PLUGIN_NAME, stack.config({ key_prefix: 'one' }));
  await burst(w!, 2);
  // Another first address for the same database (and so the same trusted state): a restart moves it.
  const moved = stack.config({ key_prefix: 'one', immudb_host: 'localhost' });
  const e = await t.throwsAsync(() => w!.reconfigure(moved, { seq: 20 }));
  t.regex(`${e?.message} ${stack.server.logs()}`, /audit log "defaultdb" is already written by this plugin server to 127\.0\.0\.1:\d+\/defaultdb/);
});
