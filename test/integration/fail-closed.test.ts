// Fail-closed routes (issue 16, item 4; docs/decisions.md #32) through the real plugin server,
// driven over its socket as Kong 3.9.3 drives it, and a real immudb: a route with
// fail_closed.enabled answers 503 while its destination's writer is halted, while its spool
// refuses entries, and while its backlog passes a bound (entries or age); it is served again when
// auditing recovers. A fail-open route on the same plugin server is served all along, and
// fail-open is the default.
import test, { type ExecutionContext } from 'ava';
import { statfsSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dumpAllPlugins, simulateWorkers, type InstanceEventResult, type KongInstance } from '../helpers/kong-driver.js';
import { generateFixtures } from '../fixtures/serialized-logs.js';
import { tmpfsFor } from '../helpers/tmpfs.js';
import { PLUGIN_NAME, pluginDir, startAuditStack, waitForEntries, type AuditStack } from '../helpers/audit-stack.js';
import { until } from '../helpers/until.js';
import { freePort, startImmudb } from '../../scripts/lib/immudb-server.js';

const QUEUE = { max_batch_size: 16, max_coalescing_delay: 0.01, initial_retry_delay: 0.05, max_retry_delay: 0.3 };
const BODY = { message: 'Service temporarily unavailable: requests to this route cannot be audited right now' };
const ON = { IMMUDB_AUDIT_FAIL_CLOSED: 'on' };

/** kong_immudb_audit_fail_closed_refusing of the destination, from /metrics. */
async function refusingMetric(port: number, db: string): Promise<number | undefined> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const m = new RegExp(`^kong_immudb_audit_fail_closed_refusing\\{destination="[^"]*/${db}"\\} (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

let seed = 1;
/** Audits `n` requests through `worker` (Kong's log phase), as any request's log event would. */
async function logEvents(worker: KongInstance, n: number): Promise<string[]> {
  const ids: string[] = [];
  for (const f of generateFixtures(n, { seed: (seed += n) })) {
    const r = await worker.runLogEvent({ 'kong.log.serialize': f.json });
    if (!r.completed) throw new Error('log event did not complete');
    ids.push(f.expected.requestId);
  }
  return ids;
}

/** Kong's access phase for one request: the exit the plugin asked for, or undefined (served). */
async function access(worker: KongInstance): Promise<InstanceEventResult> {
  return worker.runEvent('access');
}

function refused(r: InstanceEventResult): boolean {
  return r.exit !== undefined;
}

function assertRefusal(t: ExecutionContext, r: InstanceEventResult) {
  t.truthy(r.exit, 'the access phase ended the request');
  t.is(r.exit!.method, 'kong.response.exit');
  t.deepEqual(r.exit!.args, [503, BODY, { 'Retry-After': '5' }]);
  t.is(r.roundTrips, 1, 'one round trip: the refusal comes with the HandleEvent answer');
}

function assertServed(t: ExecutionContext, r: InstanceEventResult, what: string) {
  t.true(r.completed, `${what}: the access event ended with "ret"`);
  t.is(r.exit, undefined, `${what}: no exit`);
  t.is(r.calls.length, 0, `${what}: no PDK call in the access phase`);
}

function config(stack: AuditStack, db: string, over: Record<string, unknown> = {}) {
  return stack.config({ immudb_database: db, create_database: true, key_prefix: 'fc', queue: QUEUE, ...over });
}

test.serial('the access phase is declared only with IMMUDB_AUDIT_FAIL_CLOSED=on (Kong reads it once, from the query command)', async (t) => {
  const off = await dumpAllPlugins(pluginDir());
  t.deepEqual(off.find((p) => p.Name === PLUGIN_NAME)!.Phases, ['log']);
  const on = await dumpAllPlugins(pluginDir(), { env: ON });
  t.deepEqual(on.find((p) => p.Name === PLUGIN_NAME)!.Phases.sort(), ['access', 'log']);
  const fields = on.find((p) => p.Name === PLUGIN_NAME)!.Schema.fields[0]!.config.fields as Array<Record<string, { fields?: unknown[] }>>;
  t.truthy(fields.find((f) => f.fail_closed), 'the schema Kong validates has fail_closed');
});

for (const thread of ['on', 'off'] as const) {
  test.serial(`backlog past its bound (immudb stopped): the fail-closed routes answer 503, the fail-open one is served, both resume (audit thread ${thread})`, async (t) => {
    const metricsPort = await freePort();
    const stack = await startAuditStack({ env: { ...ON, IMMUDB_AUDIT_THREAD: thread, IMMUDB_AUDIT_METRICS_PORT: String(metricsPort) } });
    t.teardown(() => stack.dispose());
    const db = `backlog${thread}`;
    const [open] = await simulateWorkers(stack.rpc, 1, PLUGIN_NAME, config(stack, db));
    const [byCount] = await simulateWorkers(stack.rpc, 1, PLUGIN_NAME, config(stack, db, { fail_closed: { enabled: true, max_backlog: 5, max_backlog_age: 3600 } }), { kongMeta: { pluginId: '00000000-0000-4000-8000-00000000000b' } });
    const [byAge] = await simulateWorkers(stack.rpc, 1, PLUGIN_NAME, config(stack, db, { fail_closed: { enabled: true, max_backlog: 1000000, max_backlog_age: 1 } }), { kongMeta: { pluginId: '00000000-0000-4000-8000-00000000000c' } });

    for (const w of [open!, byCount!, byAge!]) assertServed(t, await access(w), 'healthy');
    const first = await logEvents(open!, 3);
    const client = await stack.client(db);
    await waitForEntries(client, 'fc:entry:', 3);

    await stack.immudb.stop();
    // Below the bound: served.
    await logEvents(open!, 2);
    assertServed(t, await access(byCount!), 'two entries waiting');
    // Past it (6 > 5): refused; the age bound follows within a second or so.
    const during = await logEvents(open!, 4);
    assertRefusal(t, await until('the count-bound route to refuse', async () => {
      const r = await access(byCount!);
      return refused(r) ? r : undefined;
    }));
    assertRefusal(t, await until('the age-bound route to refuse', async () => {
      const r = await access(byAge!);
      return refused(r) ? r : undefined;
    }));
    assertServed(t, await access(open!), 'fail-open route while immudb is down');
    // The refused requests are audited like any other (Kong runs their log phase).
    const refusedIds = await logEvents(byCount!, 2);
    await stack.server.waitForLog(/fail-closed routes writing to \S+ answer 503: the backlog passed fail_closed\.max_backlog/);
    t.is(await refusingMetric(metricsPort, db), 1, 'kong_immudb_audit_fail_closed_refusing says so');

    // kong.response.exit ends the event on Kong's side; the plugin server has forgotten it too.
    const exitEvent = (await access(byCount!)).eventId;
    const late = await stack.rpc.step('plugin.Step', exitEvent, null).then((r) => JSON.stringify(r), (e: Error) => e.message);
    t.regex(late, /event id \d+ not found/);

    await stack.immudb.restart();
    await until('the count-bound route to be served again', async () => !refused(await access(byCount!)));
    await until('the age-bound route to be served again', async () => !refused(await access(byAge!)));
    await stack.server.waitForLog(/fail-closed routes writing to \S+ are served again: auditing recovered/);
    t.true(await until('the metric to say served again', async () => (await refusingMetric(metricsPort, db)) === 0));
    const stored = await waitForEntries(client, 'fc:entry:', first.length + 2 + during.length + refusedIds.length);
    const rids = new Set(stored.map((e) => (JSON.parse(e.value.toString()) as { request_id: string }).request_id));
    for (const id of [...first, ...during, ...refusedIds]) t.true(rids.has(id), `request ${id} audited`);
  });
}

test.serial('a halted writer (another server behind the address): the fail-closed route answers 503, the fail-open one is served', async (t) => {
  const stack = await startAuditStack({ env: ON });
  t.teardown(() => stack.dispose());
  const [open] = await simulateWorkers(stack.rpc, 1, PLUGIN_NAME, config(stack, 'halt'));
  const [closed] = await simulateWorkers(stack.rpc, 1, PLUGIN_NAME, config(stack, 'halt', { fail_closed: { enabled: true, max_backlog: 1000000, max_backlog_age: 3600 } }), { kongMeta: { pluginId: '00000000-0000-4000-8000-0000000000a1' } });
  await logEvents(open!, 3);
  await waitForEntries(await stack.client('halt'), 'fc:entry:', 3);
  assertServed(t, await access(closed!), 'healthy');

  const port = stack.immudb.port;
  await stack.immudb.stop();
  const impostor = await startImmudb({ port });
  t.teardown(() => impostor.dispose());
  await logEvents(open!, 2);
  await stack.server.waitForLog(/writer halted/);
  assertRefusal(t, await until('the fail-closed route to refuse', async () => {
    const r = await access(closed!);
    return refused(r) ? r : undefined;
  }));
  await stack.server.waitForLog(/answer 503: the writer is halted by a trust failure/);
  assertServed(t, await access(open!), 'fail-open route while the writer is halted');
  // Trust is never reset by itself (#18): the route stays closed.
  await new Promise((r) => setTimeout(r, 500));
  assertRefusal(t, await access(closed!));
});

test.serial('a spool that refuses entries (disk full): 503 until an entry is spooled again', async (t) => {
  const mnt = tmpfsFor(t, '2m');
  if (!mnt) return;
  const stack = await startAuditStack({ env: ON });
  t.teardown(() => stack.dispose());
  const over = { spool_dir: join(mnt, 'spool') };
  const [open] = await simulateWorkers(stack.rpc, 1, PLUGIN_NAME, config(stack, 'spool', over));
  const [closed] = await simulateWorkers(stack.rpc, 1, PLUGIN_NAME, config(stack, 'spool', { ...over, fail_closed: { enabled: true, max_backlog: 1000000000, max_backlog_age: 86400 } }), { kongMeta: { pluginId: '00000000-0000-4000-8000-0000000000b2' } });
  await logEvents(open!, 2);
  const client = await stack.client('spool');
  await waitForEntries(client, 'fc:entry:', 2);
  assertServed(t, await access(closed!), 'healthy');

  // The disk fills: the next entries are refused by the spool (held in memory and written to
  // immudb directly, which is up: their log events still settle once immudb proved them).
  const filler = join(mnt, 'filler');
  const s = statfsSync(mnt);
  writeFileSync(filler, Buffer.alloc(s.bavail * s.bsize));
  await logEvents(open!, 3);
  t.regex(stack.server.logs(), /the spool cannot take entries \(spool: ENOSPC\)/);
  assertRefusal(t, await until('the fail-closed route to refuse', async () => {
    const r = await access(closed!);
    return refused(r) ? r : undefined;
  }));
  await stack.server.waitForLog(/answer 503: the spool refuses entries/);
  assertServed(t, await access(open!), 'fail-open route while the spool refuses');
  // Still refusing: the refused requests' own entries (Kong audits them too) keep it closed.
  await logEvents(closed!, 1);
  await new Promise((r) => setTimeout(r, 300));
  assertRefusal(t, await access(closed!));

  // Space returns: the next entry is spooled, and the route is served again.
  unlinkSync(filler);
  await logEvents(closed!, 1);
  await until('the route to be served again', async () => !refused(await access(closed!)));
  await stack.server.waitForLog(/are served again: auditing recovered/);
  await waitForEntries(client, 'fc:entry:', 7);
});

test.serial('half set: fail_closed on a server without the switch, or Kong never calling the access phase, is reported', async (t) => {
  const off = await startAuditStack();
  t.teardown(() => off.dispose());
  await simulateWorkers(off.rpc, 1, PLUGIN_NAME, config(off, 'half', { fail_closed: { enabled: true, max_backlog: 10, max_backlog_age: 60 } }));
  await off.server.waitForLog(/fail_closed\.enabled is set on a route but the plugin server runs without IMMUDB_AUDIT_FAIL_CLOSED=on, so Kong never calls the access phase: the route is served while auditing fails \(fail-open\)/);

  const on = await startAuditStack({ env: ON });
  t.teardown(() => on.dispose());
  const [closed] = await simulateWorkers(on.rpc, 1, PLUGIN_NAME, config(on, 'half', { fail_closed: { enabled: true, max_backlog: 1000000, max_backlog_age: 3600 } }));
  // A request another plugin answered first has a log phase only: a few are no evidence.
  await logEvents(closed!, 99);
  t.notRegex(on.server.logs(), /none in the access phase/);
  await logEvents(closed!, 1);
  await on.server.waitForLog(/a fail-closed route had 100 requests in the log phase and none in the access phase: Kong most likely read the plugin's phases without IMMUDB_AUDIT_FAIL_CLOSED=on/);
  t.notRegex(on.server.logs(), /fail_closed\.enabled is set on a route but/);
});
