/**
 * The Kong driver against the real plugin server running the noop plugin: immudb-audit-pluginserver
 * (kong-pdk 0.6.0's server with our listener), and kong-pdk's own kong-js-pluginserver where a test
 * shows its listener's quirks or compares answers byte for byte.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { decode, encode } from '@msgpack/msgpack';
import { FrameSplitter } from '../../plugin/pluginserver/frames.js';
import {
  KongInstance,
  KongRpcClient,
  NOOP_PLUGIN_NAME,
  PluginServerProcess,
  type PluginServerCommand,
  RpcError,
  countCalls,
  dumpAllPlugins,
  fixMultiMap,
  fixturePluginDir,
  kongPluginConfig,
  logPhaseAnswers,
  simulateWorkers,
  startPluginServer,
  stripAnsi,
  waitForExit,
} from '../helpers/kong-driver.js';
import {
  CONSUMERS,
  KEY_AUTH_CREDENTIALS,
  SCENARIO_KINDS,
  buildFixture,
  generateFixtures,
  type KongSerializedLog,
} from '../fixtures/serialized-logs.js';

const NOOP_DIR = fixturePluginDir(NOOP_PLUGIN_NAME);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A server of our own, disposed at the end of the test. */
async function ownServer(
  t: { teardown(fn: () => unknown): void },
  command: PluginServerCommand = 'ours',
): Promise<{ ps: PluginServerProcess; client: KongRpcClient }> {
  const ps = await startPluginServer({ pluginsDir: NOOP_DIR, command });
  const client = new KongRpcClient(ps.socketPath, { callTimeoutMs: 10_000 });
  t.teardown(async () => {
    await client.close();
    await ps.dispose();
  });
  return { ps, client };
}

/** Reads whole MessagePack replies off a raw socket (framed with the server's own splitter). */
function replyReader(s: net.Socket) {
  const frames = new FrameSplitter();
  const queue: Buffer[] = [];
  let wake: (() => void) | undefined;
  s.on('data', (chunk: Buffer) => {
    queue.push(...frames.push(chunk).map((f) => Buffer.from(f)));
    wake?.();
  });
  // Generous: only a missing reply waits this long (a loaded machine answers late).
  const deadline = () => Date.now() + 60_000;
  const take = async (until: number): Promise<Buffer> => {
    while (queue.length === 0) {
      if (Date.now() > until) throw new Error('no reply within 60 s');
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, 100);
      });
    }
    return queue.shift()!;
  };
  return {
    async nextRaw(): Promise<[unknown[], Buffer]> {
      const raw = await take(deadline());
      return [decode(raw) as unknown[], raw];
    },
    async next(n: number): Promise<unknown[][]> {
      const until = deadline();
      const out: unknown[][] = [];
      for (let i = 0; i < n; i++) out.push(decode(await take(until)) as unknown[]);
      return out;
    },
  };
}

function rawConnect(socketPath: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(socketPath);
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

let shared: { ps: PluginServerProcess; client: KongRpcClient };

test.before(async () => {
  const ps = await startPluginServer({ pluginsDir: NOOP_DIR });
  shared = { ps, client: new KongRpcClient(ps.socketPath, { callTimeoutMs: 10_000 }) };
});

test.after.always(async () => {
  await shared?.client.close();
  await shared?.ps.dispose();
});

// ---------------------------------------------------------------------------------------------
// Process & metadata
// ---------------------------------------------------------------------------------------------

test('the server listens on <prefix>/js_pluginserver.sock of a private prefix and logs to stdout', async (t) => {
  const { ps } = shared;
  t.true(ps.isRunning());
  t.is(path.basename(ps.socketPath), 'js_pluginserver.sock');
  t.is(path.dirname(ps.socketPath), ps.prefix);
  t.true(ps.prefix.startsWith(os.tmpdir()));
  t.true(fs.statSync(ps.socketPath).isSocket());
  // kong-pdk's logger (node-color-log) writes everything, warnings included, to stdout
  await ps.waitForLog(`server started at ${ps.socketPath}`);
  t.regex(ps.stdout(), /\[INFO\] server started at /);
  t.is(ps.stderr(), '');
});

test('GetPluginInfo has the shape Kong expects', async (t) => {
  const info = await shared.client.getPluginInfo(NOOP_PLUGIN_NAME);
  t.is(info.Name, 'noop-serialize');
  t.is(info.Version, '0.1.0');
  t.deepEqual(info.Phases, ['log']);
  t.is(info.Priority, 0);
  t.is(info.Schema.name, 'noop-serialize');
  t.is(info.Schema.fields.length, 1);
  t.is(info.Schema.fields[0]?.config.type, 'record');
  t.deepEqual(info.Schema.fields[0]?.config.fields, []);
});

test('GetPluginInfo of an unknown plugin is an RPC error, the server keeps running', async (t) => {
  const err = await t.throwsAsync(shared.client.getPluginInfo('nope'), { instanceOf: RpcError });
  t.is(err?.message, 'nope not initizlied'); // sic, kong-pdk 0.6.0
  t.true(err?.remote);
  t.true(shared.ps.isRunning());
});

test('non-plugin namespaces and unknown methods are refused with an error response', async (t) => {
  await t.throwsAsync(shared.client.call('kong.Nope'), { message: 'RPC for kong is not supported' });
  await t.throwsAsync(shared.client.call('plugin.Nope'), { message: 'method Nope not implemented' });
  t.true(shared.ps.isRunning());
});

test('--dump-all-plugins prints a JSON array with the plugin info (Kong query_cmd)', async (t) => {
  const dump = await dumpAllPlugins(NOOP_DIR);
  t.true(Array.isArray(dump));
  t.is(dump.length, 1);
  const info = await shared.client.getPluginInfo(NOOP_PLUGIN_NAME);
  t.deepEqual(dump[0], info);
});

test('--dump-all-plugins output becomes unparseable when a plugin fails to load (warning on stdout)', async (t) => {
  // A CommonJS plugin under a package.json with "type": "module" (like this project) cannot load:
  // kong-pdk logs the warning on stdout before the JSON, which Kong cannot decode.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kong-broken-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(path.join(dir, 'package.json'), '{"type": "module"}');
  fs.writeFileSync(path.join(dir, 'cjs-plugin.js'), "module.exports = { Plugin: class { async log() {} }, Version: '1' }\n");
  const err = await t.throwsAsync(dumpAllPlugins(dir));
  t.regex(err?.message ?? '', /not JSON/);
  t.regex(err?.message ?? '', /error loading plugin "cjs-plugin"/);
  t.regex(err?.message ?? '', /\[\]/); // the plugin is simply missing from the list
});

test('GetStatus reports the pid; kong-pdk 0.6.0 lists no Instances (for..in over a Map)', async (t) => {
  const { client, ps } = shared;
  const st = await client.startInstance(NOOP_PLUGIN_NAME, { status: true });
  t.teardown(() => client.closeInstance(st.Id).catch(() => undefined));
  const status = await client.getStatus();
  t.is(status.Pid, ps.pid);
  const p = status.Plugins[NOOP_PLUGIN_NAME];
  t.truthy(p);
  t.is(p?.Name, NOOP_PLUGIN_NAME);
  t.deepEqual(p?.Instances, []);
  t.true((p?.LastStartInstance ?? 0) > 0);
});

// ---------------------------------------------------------------------------------------------
// Instances
// ---------------------------------------------------------------------------------------------

test('StartInstance / InstanceStatus / CloseInstance round trip', async (t) => {
  const { client } = shared;
  const cfg = { endpoint: 'immudb:3322', nested: { list: [1, 2, 3], flag: false }, empty: null };
  const st = await client.startInstance(NOOP_PLUGIN_NAME, cfg);
  t.is(st.Name, NOOP_PLUGIN_NAME);
  t.is(typeof st.Id, 'number');
  t.deepEqual(st.Config, cfg);
  t.true(Math.abs((st.StartTime ?? 0) - Date.now() / 1000) < 60);
  const again = await client.instanceStatus(st.Id);
  t.is(again.Id, st.Id);
  t.deepEqual(again.Config, cfg);
  const closed = await client.closeInstance(st.Id);
  t.is(closed.Id, st.Id);
  t.deepEqual(closed.Config, cfg);
  await t.throwsAsync(client.instanceStatus(st.Id), { message: `no plugin instance #${st.Id}` });
  await t.throwsAsync(client.closeInstance(st.Id), { message: `no plugin instance #${st.Id}` });
});

test('several workers start one instance each for the same configuration', async (t) => {
  const { client } = shared;
  const config = { immudb: { host: 'immudb', port: 3322 }, queue_size: 1000 };
  const workers = await simulateWorkers(client, 4, NOOP_PLUGIN_NAME, config);
  t.teardown(() => Promise.all(workers.map((w) => w.close().catch(() => undefined))));
  const ids = workers.map((w) => w.id);
  t.is(new Set(ids).size, 4, 'one server-side instance per worker');
  t.true(ids.every((id) => typeof id === 'number'));
  for (const [i, w] of workers.entries()) {
    const st = await w.status();
    // Kong decorates the config; only __seq__ differs between workers
    t.deepEqual(st.Config, kongPluginConfig(NOOP_PLUGIN_NAME, config, { seq: i + 1 }));
    t.is(st.Config.__plugin_id, workers[0]?.sentConfig.__plugin_id);
    t.is(st.Config.__seq__, i + 1);
    t.deepEqual((st.Config as { immudb: unknown }).immudb, config.immudb);
  }
  // each worker is its own client (own pool and msgid counter), as nginx workers are
  t.is(new Set(workers.map((w) => w.client)).size, 4);
  const results = await Promise.all(workers.map((w) => w.runLogEvent({ 'kong.log.serialize': '{}' })));
  t.deepEqual(
    results.map((r) => r.instanceId),
    ids,
  );
  t.true(results.every((r) => r.completed && r.calls.length === 1));
});

test('concurrent first events of one worker share a single StartInstance', async (t) => {
  const { client } = shared;
  const k = new KongInstance(client, NOOP_PLUGIN_NAME, { x: 1 });
  t.teardown(() => k.close().catch(() => undefined));
  const rs = await Promise.all(Array.from({ length: 10 }, () => k.runLogEvent({ 'kong.log.serialize': '{}' })));
  t.is(k.history.started.length, 1);
  t.true(rs.every((r) => r.instanceId === k.id && r.completed));
});

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

test('a log event completes with exactly one kong.log.serialize call', async (t) => {
  const { client } = shared;
  const fx = buildFixture('key-auth-consumer', 1);
  const st = await client.startInstance(NOOP_PLUGIN_NAME, {});
  t.teardown(() => client.closeInstance(st.Id).catch(() => undefined));
  const r = await client.runLogEvent(st.Id, logPhaseAnswers(fx.json));
  t.true(r.completed);
  t.false(r.abandoned);
  t.is(r.eventName, 'log');
  t.is(r.instanceId, st.Id);
  t.deepEqual(countCalls(r), { 'kong.log.serialize': 1 });
  t.is(r.calls[0]?.stepMethod, 'plugin.Step');
  t.deepEqual(r.calls[0]?.args, []);
  t.is(r.calls[0]?.answer, fx.json);
  t.is(r.roundTrips, 2); // HandleEvent + one Step
  t.true(r.durationMs > 0 && r.durationMs < 60_000, 'measured (the bound only catches a hang)');
});

test('an object answer to kong.log.serialize is sent as a cjson-like JSON string', async (t) => {
  const { client } = shared;
  const st = await client.startInstance(NOOP_PLUGIN_NAME, {});
  t.teardown(() => client.closeInstance(st.Id).catch(() => undefined));
  const log: Partial<KongSerializedLog> = { upstream_uri: '/a/b', client_ip: '10.0.0.1' };
  const r = await client.runLogEvent(st.Id, { 'kong.log.serialize': () => log });
  t.is(r.calls[0]?.answer, '{"upstream_uri":"\\/a\\/b","client_ip":"10.0.0.1"}');
  t.deepEqual(JSON.parse(String(r.calls[0]?.answer)), log);
});

test('a StepError answer makes the PDK call throw in the plugin without crashing the server', async (t) => {
  const { client, ps } = shared;
  const st = await client.startInstance(NOOP_PLUGIN_NAME, {});
  t.teardown(() => client.closeInstance(st.Id).catch(() => undefined));
  const r = await client.runLogEvent(st.Id, { 'kong.log.serialize': { error: 'boom-stepError' } });
  t.true(r.completed);
  t.is(r.calls.length, 1);
  t.is(r.calls[0]?.stepMethod, 'plugin.StepError');
  t.is(r.calls[0]?.error, 'boom-stepError');
  // the noop plugin does not catch: kong-pdk logs the PDKError and still answers "ret"
  await ps.waitForLog(/unhandled exception in noop-serialize\.log on instance #\d+: PDKError: PDK method kong\.log\.serialize failed: {2}boom-stepError/);
  t.true(ps.isRunning());
  const ok = await client.runLogEvent(st.Id, { 'kong.log.serialize': '{}' });
  t.true(ok.completed);
  // a handler that throws is also answered with StepError
  const thrown = await client.runLogEvent(st.Id, {
    'kong.log.serialize': () => {
      throw new Error('handler failed');
    },
  });
  t.is(thrown.calls[0]?.stepMethod, 'plugin.StepError');
  t.is(thrown.calls[0]?.error, 'handler failed');
});

test('unknown PDK methods: StepError by default, nil or abandon on request', async (t) => {
  const { client, ps } = shared;
  const st = await client.startInstance(NOOP_PLUGIN_NAME, {});
  t.teardown(() => client.closeInstance(st.Id).catch(() => undefined));

  const byDefault = await client.runLogEvent(st.Id, {});
  t.true(byDefault.completed);
  t.is(byDefault.calls[0]?.stepMethod, 'plugin.StepError');
  t.is(byDefault.calls[0]?.error, 'method not available in log phase: kong.log.serialize');

  const nil = await client.runLogEvent(st.Id, {}, { onUnknownMethod: 'nil' });
  t.true(nil.completed);
  t.is(nil.calls[0]?.stepMethod, 'plugin.Step');
  t.is(nil.calls[0]?.answer, undefined);

  // Kong's timer died: the JS handler stays suspended forever, the server carries on
  const abandoned = await client.runLogEvent(st.Id, {}, { onUnknownMethod: 'abandon' });
  t.false(abandoned.completed);
  t.true(abandoned.abandoned);
  t.is(abandoned.calls.length, 1);
  t.is(abandoned.calls[0]?.stepMethod, undefined);
  const after = await client.runLogEvent(st.Id, { 'kong.log.serialize': '{}' });
  t.true(after.completed);
  t.true(ps.isRunning());
  // Step on the abandoned event still works later (the event is parked in the server)
  const resumed = await client.step('plugin.Step', abandoned.eventId, '{}');
  t.is(resumed.Data, 'ret');
  await t.throwsAsync(client.step('plugin.Step', abandoned.eventId, '{}'), { message: `event id ${abandoned.eventId} not found` });
});

test('an event for a phase the plugin does not implement ends immediately with "ret"', async (t) => {
  const { client } = shared;
  const st = await client.startInstance(NOOP_PLUGIN_NAME, {});
  t.teardown(() => client.closeInstance(st.Id).catch(() => undefined));
  const r = await client.runEvent(st.Id, 'access', {});
  t.true(r.completed);
  t.is(r.calls.length, 0);
  t.is(r.roundTrips, 1);
});

test('log-phase answers: multimap fix and saved-data helpers behave like Kong', (t) => {
  t.deepEqual(fixMultiMap({ a: 'x', b: ['y', 'z'], flag: true }), { a: ['x'], b: ['y', 'z'], flag: [] });
  const fx = buildFixture('w3c-trace', 3);
  const answers = logPhaseAnswers(fx.log);
  const ctx = { eventId: 0, index: 0, method: '' };
  const call = (m: string, ...args: unknown[]) => (answers[m] as (a: unknown[], c: typeof ctx) => unknown)(args, ctx);
  t.is(call('kong.request.get_header', 'TraceParent'), fx.log.request.headers.traceparent);
  t.is(call('kong.response.get_status'), fx.log.response.status);
  t.is(call('kong.response.get_source'), 'service');
  t.is(call('kong.nginx.req_start_time'), fx.log.started_at / 1000);
  t.deepEqual(JSON.parse(String(call('kong.log.serialize'))), fx.log);
  call('kong.ctx.shared.set', 'k', 'v');
  t.is(call('kong.ctx.shared.get', 'k'), 'v');
  t.is(answers.ctxShared.get('k'), 'v');
});

// ---------------------------------------------------------------------------------------------
// "no plugin instance"
// ---------------------------------------------------------------------------------------------

test('"no plugin instance": the wrapper starts a new instance and retries the event once', async (t) => {
  const { client } = shared;
  const config = { retry: 'test' };
  const k = new KongInstance(client, NOOP_PLUGIN_NAME, config);
  t.teardown(() => k.close().catch(() => undefined));
  const first = await k.runLogEvent({ 'kong.log.serialize': '{}' });
  t.is(first.retries, 0);
  const oldId = first.instanceId;
  await client.closeInstance(oldId); // e.g. closed by another worker / gone from the server
  const r = await k.runLogEvent({ 'kong.log.serialize': '{}' });
  t.true(r.completed);
  t.is(r.retries, 1);
  t.deepEqual(r.retryErrors, [`no plugin instance #${oldId}`]);
  t.not(r.instanceId, oldId);
  t.is(k.id, r.instanceId);
  t.deepEqual(countCalls(r), { 'kong.log.serialize': 1 });
  t.deepEqual(k.history.started, [oldId, r.instanceId]);
  const st = await client.instanceStatus(r.instanceId);
  t.deepEqual(st.Config, k.sentConfig);
  t.is(st.Config.retry, 'test');
});

test('"no plugin instance" with retries exhausted surfaces the error', async (t) => {
  const { client } = shared;
  const k = new KongInstance(client, NOOP_PLUGIN_NAME, {}, { maxRetries: 0 });
  const id = await k.ensureStarted();
  await client.closeInstance(id);
  const err = await t.throwsAsync(k.runLogEvent({ 'kong.log.serialize': '{}' }), { instanceOf: RpcError });
  t.is(err?.message, `no plugin instance #${id}`);
});

test('one worker hitting "no plugin instance" resets the cached ids of all workers (worker event)', async (t) => {
  const { client } = shared;
  const workers = await simulateWorkers(client, 3, NOOP_PLUGIN_NAME, { linked: true });
  t.teardown(() => Promise.all(workers.map((w) => w.close().catch(() => undefined))));
  const [w0, w1, w2] = workers as [KongInstance, KongInstance, KongInstance];
  const oldIds = workers.map((w) => w.id);
  await client.closeInstance(w0.id as number);
  const r = await w0.runLogEvent({ 'kong.log.serialize': '{}' });
  t.is(r.retries, 1);
  t.is(w1.id, undefined);
  t.is(w2.id, undefined);
  // the others' old instances were not closed (Kong only forgets them): they still exist
  const still = await client.instanceStatus(oldIds[1] as number);
  t.is(still.Id, oldIds[1] as number);
  const r1 = await w1.runLogEvent({ 'kong.log.serialize': '{}' });
  t.is(r1.retries, 0);
  t.not(r1.instanceId, oldIds[1]);
  await client.closeInstance(oldIds[1] as number);
  await client.closeInstance(oldIds[2] as number);
});

test('a configuration change starts a new instance and closes the old one', async (t) => {
  const { client } = shared;
  const k = new KongInstance(client, NOOP_PLUGIN_NAME, { v: 1 }, { kongMeta: { seq: 10 } });
  t.teardown(() => k.close().catch(() => undefined));
  const oldId = await k.ensureStarted();
  const newId = await k.reconfigure({ v: 2 }, { seq: 11 });
  t.not(newId, oldId);
  t.deepEqual(k.history.closed, [oldId]);
  await t.throwsAsync(client.instanceStatus(oldId), { message: `no plugin instance #${oldId}` });
  const st = await client.instanceStatus(newId);
  t.is(st.Config.v, 2);
  t.is(st.Config.__seq__, 11);
});

// ---------------------------------------------------------------------------------------------
// Restart / kill
// ---------------------------------------------------------------------------------------------

test('kill, then restart on the same socket: pooled connections are dropped and calls work again', async (t) => {
  const { ps, client } = await ownServer(t);
  const k = new KongInstance(client, NOOP_PLUGIN_NAME, { a: 1 });
  const ids: number[] = [];
  for (let i = 0; i < 3; i++) ids.push((await client.startInstance(NOOP_PLUGIN_NAME, { filler: i })).Id);
  await k.runLogEvent({ 'kong.log.serialize': '{}' });
  const cachedId = k.id as number;
  t.is(cachedId, 3);
  const pid1 = ps.pid;
  const exit = await ps.kill();
  t.is(exit.signal, 'SIGKILL');
  t.false(ps.isRunning());
  await t.throwsAsync(client.getStatus(), { instanceOf: RpcError });
  await ps.restart();
  t.not(ps.pid, pid1);
  t.is(ps.exits.length, 1);
  const status = await client.getStatus();
  t.is(status.Pid, ps.pid);
  // the server forgot everything: the cached id 3 is unknown -> retry with a new instance (id 0)
  const r = await k.runLogEvent({ 'kong.log.serialize': '{}' });
  t.is(r.retries, 1);
  t.is(r.instanceId, 0);
  t.deepEqual(r.retryErrors, ['no plugin instance #3']);
});

test('kong-pdk 0.6.0 quirk: instance ids restart at 0 and no serverPid notification is sent', async (t) => {
  // A worker that cached id 0 before the restart silently uses another configuration's instance.
  const { ps, client } = await ownServer(t);
  const a = await client.startInstance(NOOP_PLUGIN_NAME, { cfg: 'A' });
  await ps.restart();
  const b = await client.startInstance(NOOP_PLUGIN_NAME, { cfg: 'B' });
  t.is(a.Id, 0);
  t.is(b.Id, 0);
  const stale = await client.instanceStatus(a.Id);
  t.deepEqual(stale.Config, { cfg: 'B' });
  t.deepEqual(client.notifications, []);
});

test('stop(SIGTERM) ends the server; the socket file is left behind and refuses connections', async (t) => {
  const { ps } = await ownServer(t);
  const exit = await ps.stop();
  t.is(exit.signal, 'SIGTERM');
  t.true(fs.existsSync(ps.socketPath));
  const err = await t.throwsAsync(rawConnect(ps.socketPath));
  t.is((err as NodeJS.ErrnoException | undefined)?.code, 'ECONNREFUSED');
});

// ---------------------------------------------------------------------------------------------
// Framing: chunks, large messages, concurrency
// ---------------------------------------------------------------------------------------------

test('a 1 MB kong.log.serialize answer (many socket chunks) is delivered', async (t) => {
  const { client, ps } = shared;
  const st = await client.startInstance(NOOP_PLUGIN_NAME, {});
  t.teardown(() => client.closeInstance(st.Id).catch(() => undefined));
  const fx = buildFixture('anonymous', 9);
  const log = { ...fx.log, padding: 'p'.repeat(1024 * 1024) };
  const json = JSON.stringify(log);
  t.true(json.length > 1024 * 1024);
  const r = await client.runLogEvent(st.Id, { 'kong.log.serialize': json });
  t.true(r.completed);
  t.is(r.calls.length, 1);
  t.is((r.calls[0]?.answer as string).length, json.length);
  t.true(ps.isRunning());
});

test('a 1 MB response (config echoed by StartInstance / InstanceStatus) is reassembled by the client', async (t) => {
  const { client } = shared;
  const blob = Array.from({ length: 1024 }, (_, i) => `${i}:${'x'.repeat(1020)}`).join('|');
  const cfg = { blob, utf8: 'héllo wörld ✓'.repeat(1000) };
  const st = await client.startInstance(NOOP_PLUGIN_NAME, cfg);
  t.teardown(() => client.closeInstance(st.Id).catch(() => undefined));
  t.deepEqual(st.Config, cfg);
  const again = await client.instanceStatus(st.Id);
  t.deepEqual(again.Config, cfg);
});

test('the listener reassembles a request split inside a string', async (t) => {
  const s = await rawConnect(shared.ps.socketPath);
  t.teardown(() => s.destroy());
  const replies = replyReader(s);
  const req = encode([0, 7, 'plugin.GetPluginInfo', [NOOP_PLUGIN_NAME]]);
  // split inside "plugin.GetPluginInfo" and inside "noop-serialize"
  s.write(req.subarray(0, 10));
  await sleep(50);
  s.write(req.subarray(10, req.length - 4));
  await sleep(50);
  s.write(req.subarray(req.length - 4));
  const [reply] = await replies.next(1);
  t.is(reply?.[1], 7);
  t.true(shared.ps.isRunning());
});

test('kong-pdk 0.6.0 quirk: a chunk boundary inside a MessagePack header kills kong-js-pluginserver', async (t) => {
  // listener.js only tolerates the decoder's "Insufficient data" error; a DataView RangeError from
  // a truncated header escapes the 'data' handler and the process exits with code 1.
  const { ps } = await ownServer(t, 'kong-pdk');
  const s = await rawConnect(ps.socketPath);
  s.on('error', () => undefined);
  t.teardown(() => s.destroy());
  const req = encode([0, 1, 'plugin.GetStatus', []]);
  // The header alone, then the rest. On a loaded machine the server may read both writes as one
  // chunk (and just answer): then try again, on a new connection, leaving it longer to read.
  let exit: Awaited<ReturnType<typeof waitForExit>>;
  for (let attempt = 1, conn = s; ; attempt++) {
    conn.write(req.subarray(0, 1)); // the fixarray header alone
    await sleep(100 * attempt);
    conn.write(req.subarray(1));
    exit = await waitForExit(ps, 2_000 * attempt);
    if (exit || attempt === 10 || !ps.isRunning()) break;
    conn = await rawConnect(ps.socketPath);
    conn.on('error', () => undefined);
    const next = conn;
    t.teardown(() => next.destroy());
  }
  exit ??= await waitForExit(ps, 30_000);
  t.deepEqual(exit, { code: 1, signal: null });
  // The exit event can come before the last stderr chunk: wait for it.
  await ps.waitForLog(/RangeError: Offset is outside the bounds of the DataView/);
  t.regex(ps.stderr(), /RangeError: Offset is outside the bounds of the DataView/);
});

test('immudb-audit-pluginserver answers a request cut after every byte, header bytes included', async (t) => {
  const { ps } = await ownServer(t);
  const s = await rawConnect(ps.socketPath);
  t.teardown(() => s.destroy());
  const replies = replyReader(s);
  // a str8 header (name), a map, and a uint16 msgid: every kind of header split
  const req = encode([0, 300, 'plugin.GetPluginInfo', [NOOP_PLUGIN_NAME]]);
  for (let i = 0; i < req.length; i++) {
    s.write(req.subarray(i, i + 1));
    await sleep(5);
  }
  const [reply] = await replies.next(1);
  t.is(reply?.[1], 300);
  t.is(reply?.[2], null);
  t.is((reply?.[3] as { Name?: string } | undefined)?.Name, NOOP_PLUGIN_NAME);
  t.true(ps.isRunning());
});

test('big Steps with Data as the last map entry survive any 64 KiB chunk alignment', async (t) => {
  // With {Data, EventId} (Data first) a single write whose length is 1 mod 65536 left the final
  // EventId byte alone in the last chunk and crashed kong-pdk 0.6.0 here; the driver's step()
  // encodes EventId first so nothing but string bytes can follow a chunk boundary.
  const { ps, client } = await ownServer(t);
  const st = await client.startInstance(NOOP_PLUGIN_NAME, {});
  for (let trailing = 0; trailing <= 12; trailing++) {
    const ev = await client.handleEvent(st.Id, 'log');
    const mk = (n: number) => encode([0, 99, 'plugin.Step', [{ EventId: ev.EventId, Data: 'x'.repeat(n) }]]);
    const overhead = mk(300_000).length - 300_000;
    const msg = mk(65536 * 5 + trailing - overhead);
    t.is(msg.length % 65536, trailing);
    const s = await rawConnect(ps.socketPath);
    const reply = new Promise<Buffer>((resolve) => s.once('data', resolve));
    s.write(msg);
    await reply;
    s.destroy();
  }
  t.true(ps.isRunning());
});

test('immudb-audit-pluginserver answers pipelined requests in one chunk, each with its msgid', async (t) => {
  // kong-pdk 0.6.0's listener decodes a chunk as one value: "Extra N of M byte(s) found" ends it.
  const { ps } = await ownServer(t);
  const s = await rawConnect(ps.socketPath);
  t.teardown(() => s.destroy());
  const replies = replyReader(s);
  const ids = [1, 2, 3, 4, 5];
  // the last request is cut in two, its second half sent with nothing else
  const all = Buffer.concat(ids.map((id) => encode([0, id, 'plugin.GetPluginInfo', [NOOP_PLUGIN_NAME]])));
  s.write(all.subarray(0, all.length - 3));
  await sleep(50);
  s.write(all.subarray(all.length - 3));
  const got = await replies.next(ids.length);
  t.deepEqual(got.map((r) => r[1]).sort(), ids);
  t.true(got.every((r) => r[2] === null && (r[3] as { Name?: string }).Name === NOOP_PLUGIN_NAME));
  t.true(ps.isRunning());
});

test('immudb-audit-pluginserver drops a connection that sends a byte MessagePack never uses, and keeps serving', async (t) => {
  const { ps, client } = await ownServer(t);
  const s = await rawConnect(ps.socketPath);
  s.on('error', () => undefined);
  const closed = new Promise<void>((r) => s.once('close', () => r()));
  s.write(Buffer.from([0x94, 0x00, 0xc1]));
  await closed;
  t.true(ps.isRunning());
  t.is((await client.call<{ Name: string }>('plugin.GetPluginInfo', NOOP_PLUGIN_NAME)).Name, NOOP_PLUGIN_NAME);
});

test('immudb-audit-pluginserver answers byte for byte like kong-js-pluginserver', async (t) => {
  const [ours, theirs] = await Promise.all([ownServer(t, 'ours'), ownServer(t, 'kong-pdk')]);
  const fx = buildFixture('anonymous', 3);
  const script = async (socketPath: string): Promise<Buffer[]> => {
    const s = await rawConnect(socketPath);
    try {
      const replies = replyReader(s);
      const ask = async (msgid: number, method: string, args: unknown[]) => {
        s.write(encode([0, msgid, method, args]));
        const [, raw] = await replies.nextRaw();
        return raw;
      };
      const out: Buffer[] = [];
      out.push(await ask(1, 'plugin.GetPluginInfo', [NOOP_PLUGIN_NAME]));
      out.push(await ask(2, 'plugin.GetPluginInfo', ['no-such-plugin']));
      out.push(await ask(3, 'plugin.NoSuchMethod', []));
      out.push(await ask(4, 'other.Thing', []));
      const started = await ask(5, 'plugin.StartInstance', [{ Name: NOOP_PLUGIN_NAME, Config: JSON.stringify({ a: 1 }) }]);
      const id = (decode(started) as [number, number, null, { Id: number }])[3].Id;
      const ev = await ask(6, 'plugin.HandleEvent', [{ InstanceId: id, EventName: 'log' }]);
      const eventId = (decode(ev) as [number, number, null, { EventId: number }])[3].EventId;
      out.push(ev);
      out.push(await ask(7, 'plugin.Step', [{ EventId: eventId, Data: JSON.stringify(fx.log) }]));
      out.push(await ask(8, 'plugin.CloseInstance', [id]));
      return out;
    } finally {
      s.destroy();
    }
  };
  const [a, b] = [await script(ours.ps.socketPath), await script(theirs.ps.socketPath)];
  t.is(a.length, b.length);
  for (let i = 0; i < a.length; i++) t.is(a[i]!.toString('hex'), b[i]!.toString('hex'), `reply ${i}: ${JSON.stringify(decode(b[i]!))}`);
});

test('the client decodes responses split byte by byte and records notifications', async (t) => {
  // A fake server: for each request, a notification then the response, one byte per write.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kong-fake-'));
  const sock = path.join(dir, 'fake.sock');
  const server = net.createServer((c) => {
    c.on('data', async (chunk: Buffer) => {
      const { decode } = await import('@msgpack/msgpack');
      const [, msgid, method] = decode(chunk) as [number, number, string];
      const out = Buffer.concat([encode([2, 'serverPid', 4242]), encode([1, msgid, null, { echo: method, big: 'z'.repeat(3000) }])]);
      for (const byte of out) {
        c.write(Buffer.from([byte]));
        if (byte % 64 === 0) await sleep(0);
      }
    });
  });
  await new Promise<void>((r) => server.listen(sock, r));
  const client = new KongRpcClient(sock);
  t.teardown(async () => {
    await client.close();
    await new Promise((r) => server.close(r));
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const res = await client.call<{ echo: string; big: string }>('plugin.Anything', 1);
  t.is(res.echo, 'plugin.Anything');
  t.is(res.big.length, 3000);
  t.is(client.notifications.length, 1);
  t.is(client.notifications[0]?.label, 'serverPid');
  t.is(client.notifications[0]?.args, 4242);
});

test('200 concurrent log events over a connection pool', async (t) => {
  const { client, ps } = await ownServer(t);
  const workers = await simulateWorkers(client, 4, NOOP_PLUGIN_NAME, { pool: true });
  const fixtures = generateFixtures(200, { seed: 5000 });
  const results = await Promise.all(
    fixtures.map((fx, i) => (workers[i % workers.length] as KongInstance).runLogEvent({ 'kong.log.serialize': fx.json })),
  );
  t.is(results.length, 200);
  t.true(results.every((r) => r.completed && r.retries === 0));
  t.true(results.every((r) => r.calls.length === 1 && r.calls[0]?.method === 'kong.log.serialize'));
  t.deepEqual(
    results.map((r) => r.calls[0]?.answer),
    fixtures.map((f) => f.json),
  );
  t.is(new Set(results.map((r) => r.eventId)).size, 200, 'event ids are unique server-wide');
  const perWorker = workers.map((w) => w.client.stats);
  t.is(
    perWorker.reduce((n, s) => n + s.calls, 0),
    4 + 200 * 2, // 4 StartInstance + (HandleEvent + Step) per event
  );
  t.true(perWorker.every((s) => s.maxOpenConnections > 1), 'concurrent calls used several connections');
  t.true(perWorker.every((s) => s.openConnections <= 30), 'idle pool capped like lua_socket_pool_size');
  t.true(ps.isRunning());
});

test('a capped pool (maxConnections) queues calls and still completes them all', async (t) => {
  const client = new KongRpcClient(shared.ps.socketPath, { maxConnections: 4, maxIdle: 4 });
  t.teardown(() => client.close());
  const st = await client.startInstance(NOOP_PLUGIN_NAME, {});
  const rs = await Promise.all(Array.from({ length: 100 }, () => client.runLogEvent(st.Id, { 'kong.log.serialize': '{}' })));
  t.true(rs.every((r) => r.completed));
  t.true(client.stats.maxOpenConnections <= 4);
  t.true(client.stats.connectionsOpened <= 4);
  await client.closeInstance(st.Id);
});

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

test('fixtures: 1,000 distinct, deterministic serialize outputs covering every scenario', (t) => {
  const all = generateFixtures(1000);
  t.is(new Set(all.map((f) => f.log.request.id)).size, 1000);
  t.true(all.every((f) => /^[0-9a-f]{32}$/.test(f.log.request.id)));
  t.deepEqual(new Set(all.map((f) => f.kind)), new Set(SCENARIO_KINDS));
  t.deepEqual(generateFixtures(50, { seed: 77 }), generateFixtures(50, { seed: 77 }));
  t.notDeepEqual(buildFixture('anonymous', 1).log, buildFixture('anonymous', 2).log);
  for (const f of all) {
    t.deepEqual(JSON.parse(f.json), f.log);
    t.is(f.expected.requestId, f.log.request.id);
    t.is(f.expected.status, f.log.response.status);
    t.is(f.log.request.headers['x-kong-request-id'], undefined);
    t.is(f.log.response.headers['x-kong-request-id'], f.log.request.id);
    t.true(f.log.request.url.endsWith(f.log.request.uri));
    for (const name of Object.keys(f.log.request.headers)) t.is(name, name.toLowerCase());
  }
});

test('fixtures: each scenario implies what Kong would serialize', (t) => {
  const keyAuth = buildFixture('key-auth-consumer', 11, { consumerIndex: 2 });
  t.is(keyAuth.log.consumer?.id, CONSUMERS[2]?.id);
  t.deepEqual(keyAuth.log.authenticated_entity, { id: KEY_AUTH_CREDENTIALS[2]?.id });
  t.is(keyAuth.log.request.headers.apikey, KEY_AUTH_CREDENTIALS[2]?.key);
  t.deepEqual(keyAuth.expected.secretsInClear[0], { header: 'apikey', value: KEY_AUTH_CREDENTIALS[2]?.key });
  t.is(keyAuth.log.source, 'upstream');

  for (let seed = 0; seed < 20; seed++) {
    const anon = buildFixture('anonymous', seed);
    t.is(anon.log.consumer, undefined);
    t.is(anon.log.authenticated_entity, undefined);
    if (anon.log.request.headers.authorization !== undefined) {
      t.is(anon.log.request.headers.authorization, 'REDACTED');
      t.deepEqual(anon.expected.redactedHeaders, ['authorization']);
    }
  }

  const u401 = buildFixture('kong-401-key-auth', 12, { keyProblem: 'invalid' });
  t.is(u401.log.response.status, 401);
  t.is(u401.log.source, 'kong');
  t.is(u401.log.upstream_status, '');
  t.is(u401.log.upstream_uri, '');
  t.is(u401.log.consumer, undefined);
  t.is(u401.log.tries, undefined);
  t.is(u401.log.latencies.proxy, -1);
  t.is(u401.log.response.headers['www-authenticate'], 'Key');
  t.is(u401.expected.kongMessage, 'Unauthorized');
  t.is(u401.expected.upstreamStatus, undefined);
  t.is(buildFixture('kong-401-key-auth', 12, { keyProblem: 'missing' }).log.request.headers.apikey, undefined);

  const acl = buildFixture('kong-403-acl', 13);
  t.is(acl.log.response.status, 403);
  t.is(acl.log.source, 'kong');
  t.truthy(acl.log.consumer?.id);
  t.is(acl.expected.kongMessage, 'You cannot consume this service');

  for (const status of [502, 503] as const) {
    const u5 = buildFixture('upstream-5xx', 14, { status });
    t.is(u5.log.response.status, status);
    t.is(u5.log.upstream_status, String(status));
    t.is(u5.expected.upstreamStatus, status);
    t.is(u5.log.source, 'upstream');
    t.is(u5.log.tries?.length, 1);
  }

  const tr = buildFixture('w3c-trace', 15);
  t.regex(String(tr.log.request.headers.traceparent), /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/);
  t.is(tr.log.trace_id?.w3c, tr.expected.trace?.traceId);
  t.is(buildFixture('w3c-trace', 15, { tracingPlugin: false }).log.trace_id, undefined);

  const q = buildFixture('query-string', 16, {
    query: [
      ['tag', 'a'],
      ['tag', 'b'],
      ['q', 'x y/z'],
      ['verbose', true],
    ],
  });
  t.deepEqual(q.log.request.querystring, { tag: ['a', 'b'], q: 'x y/z', verbose: true });
  t.true(q.log.request.uri.endsWith('?tag=a&tag=b&q=x%20y%2Fz&verbose'));
  t.true(q.log.upstream_uri.endsWith('?tag=a&tag=b&q=x%20y%2Fz&verbose'));
  t.is(q.expected.rawQuery, 'tag=a&tag=b&q=x%20y%2Fz&verbose');
  t.true(q.json.includes('\\/api\\/'), 'cjson escapes slashes');
});

test('stripAnsi replays node-color-log cursor moves into clean lines', (t) => {
  const raw =
    'T \u001b[0m\n\u001b[1A\u001b[K\n\u001b[1AT \u001b[0m\u001b[42m[INFO]\u001b[0m\n\u001b[1A\u001b[K\n\u001b[1AT \u001b[42m[INFO]\u001b[0m hello\u001b[0m\n';
  t.is(stripAnsi(raw), 'T [INFO] hello\n');
});
