// The main thread's side of the audit thread, against a stand-in thread speaking the same
// protocol: synchronous starts with the thread's refusal as the error, settled and failed log
// calls, a thread that dies (its calls fail, the next call starts a new thread and restarts the
// live instances, not the closed ones), and shutdown.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditThreadClient } from '../../plugin/thread/audit-thread-client.js';
import { auditThreadEnabled, failClosedEnabled } from '../../plugin/thread/plugin-front.js';
import { GATE_NO_AUDIT_THREAD, GATE_OPEN } from '../../plugin/pipeline/fail-closed-gate.js';

const fake = new URL('../fixtures/threads/fake-audit-thread.js', import.meta.url);

test('a start the thread refuses throws its reason, synchronously', (t) => {
  const c = new AuditThreadClient(fake);
  t.notThrows(() => c.startInstance(1, { ok: true }));
  const e = t.throws(() => c.startInstance(2, { bad: 'no host' }));
  t.is(e.message, 'bad config: no host');
  t.is(e.name, 'ConfigError');
});

test('log calls settle as the thread reports them', async (t) => {
  const c = new AuditThreadClient(fake);
  c.startInstance(1, {});
  await t.notThrowsAsync(c.log(1, '{"a":1}', undefined));
  await t.throwsAsync(c.log(1, 'fail:disk full', undefined), { message: 'disk full' });
  await t.throwsAsync(c.log(9, '{}', undefined), { message: 'no plugin instance 9 in the audit thread' });
  // Many at once, each settled once.
  await t.notThrowsAsync(Promise.all(Array.from({ length: 500 }, (_, i) => c.log(1, `{"i":${i}}`, undefined))));
});

test('a thread that dies fails its calls in flight; the next call restarts it with the live instances', async (t) => {
  const c = new AuditThreadClient(fake);
  c.startInstance(1, {});
  c.startInstance(2, {});
  c.startInstance(3, {});
  c.closeInstance(2);
  await t.throwsAsync(c.log(1, 'crash', undefined), { message: 'audit thread failed: thread crashed on purpose' });
  // The new thread was given instances 1 and 3 again (not the closed 2), before this call.
  await t.throwsAsync(c.log(3, 'starts', undefined), { message: 'starts 1,3' });
  await t.notThrowsAsync(c.log(1, '{}', undefined));
});

test('a thread that runs out of heap fails only its calls in flight, and the next call restarts it', async (t) => {
  // A small heap (an operator's --max-old-space-size sets one for both threads): the same happens at any limit.
  const c = new AuditThreadClient(fake, { maxOldGenerationSizeMb: 32, maxYoungGenerationSizeMb: 8 });
  c.startInstance(1, {});
  // Settled (in the real thread: durable in the spool) before the thread dies: stays settled.
  const before = await Promise.allSettled([c.log(1, '{"a":1}', undefined), c.log(1, '{"a":2}', undefined)]);
  t.deepEqual(before.map((r) => r.status), ['fulfilled', 'fulfilled']);
  // In flight when it dies: failed, never acknowledged (Kong logs them; the real thread's spool
  // holds whatever it had made durable, and the next thread replays it).
  const inFlight = [c.log(1, '{"b":1}', undefined), c.log(1, 'leak', undefined)];
  for (const p of inFlight) await t.throwsAsync(p, { message: /^audit thread failed: .*memory limit/ });
  await t.throwsAsync(c.log(1, 'starts', undefined), { message: 'starts 1' }, 'a new thread, the instance started again');
  await t.notThrowsAsync(c.log(1, '{}', undefined));
});

test('a thread that dies closes the fail-closed gates until a new thread starts their instances again', async (t) => {
  const c = new AuditThreadClient(fake);
  const gate = new SharedArrayBuffer(4);
  const flag = new Int32Array(gate);
  Atomics.store(flag, 0, 3);
  c.startInstance(1, {}, gate);
  t.is(Atomics.load(flag, 0), GATE_OPEN, 'the thread keeps it');
  await t.throwsAsync(c.log(1, 'crash', undefined), { message: 'audit thread failed: thread crashed on purpose' });
  t.is(Atomics.load(flag, 0), GATE_NO_AUDIT_THREAD);
  await t.notThrowsAsync(c.log(1, '{}', undefined));
  t.is(Atomics.load(flag, 0), GATE_OPEN, 'the new thread was given the gate with the instance');
});

test('IMMUDB_AUDIT_FAIL_CLOSED: off by default, on when asked, anything else is an error', (t) => {
  t.false(failClosedEnabled({}));
  for (const v of ['on', 'ON', 'true', '1', ' on ']) t.true(failClosedEnabled({ IMMUDB_AUDIT_FAIL_CLOSED: v }), v);
  for (const v of ['off', 'false', '0', '']) t.false(failClosedEnabled({ IMMUDB_AUDIT_FAIL_CLOSED: v }), v);
  t.throws(() => failClosedEnabled({ IMMUDB_AUDIT_FAIL_CLOSED: 'yes' }), { message: 'IMMUDB_AUDIT_FAIL_CLOSED must be "on" or "off", got "yes"' });
});

test('shutdown asks the thread and resolves with what it left; without a thread there is nothing to do', async (t) => {
  const c = new AuditThreadClient(fake);
  t.is(await c.shutdown(1000), 0);
  c.startInstance(1, {});
  t.is(await c.shutdown(5000), 7);
});

test('IMMUDB_AUDIT_THREAD: on by default, off when asked, anything else is an error', (t) => {
  t.true(auditThreadEnabled({}));
  for (const v of ['on', 'ON', 'true', '1', ' on ']) t.true(auditThreadEnabled({ IMMUDB_AUDIT_THREAD: v }), v);
  for (const v of ['off', 'false', '0']) t.false(auditThreadEnabled({ IMMUDB_AUDIT_THREAD: v }), v);
  t.throws(() => auditThreadEnabled({ IMMUDB_AUDIT_THREAD: 'yes' }), { message: 'IMMUDB_AUDIT_THREAD must be "on" or "off", got "yes"' });
});

test('a call in flight keeps the process alive; an idle thread does not', (t) => {
  const client = new URL('../../plugin/thread/audit-thread-client.js', import.meta.url).href;
  // A script file, not -e: a worker inherits execArgv, and would evaluate an -e script again.
  const dir = mkdtempSync(join(tmpdir(), 'kia-thread-exit-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const script = join(dir, 'run.mjs');
  writeFileSync(script, `
    const { AuditThreadClient } = await import(${JSON.stringify(client)});
    const c = new AuditThreadClient(new URL(${JSON.stringify(fake.href)}));
    c.startInstance(1, {});
    c.log(1, '{}', undefined).then(() => console.log('settled'));
  `);
  const r = spawnSync(process.execPath, [script], { encoding: 'utf8', timeout: 20_000 });
  t.is(r.signal, null, 'exited by itself, not killed by the timeout');
  t.is(r.status, 0, r.stderr);
  t.is(r.stdout.trim(), 'settled');
});

test('a thread that cannot load fails StartInstance with the reason at once, not after the start timeout', (t) => {
  const c = new AuditThreadClient(new URL('../fixtures/threads/broken-audit-thread.js', import.meta.url));
  const t0 = Date.now();
  const e = t.throws(() => c.startInstance(1, {}));
  t.is(e.message, "the audit thread could not load: Error: Cannot find package '@grpc/grpc-js'");
  t.true(Date.now() - t0 < 30_000, 'well before the 60 s start timeout');
});
