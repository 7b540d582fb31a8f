// immudb's signed states (--signingKey): with the server's public key configured, the writer
// and the auditor accept only states signed by it.
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { simulateWorkers } from '../helpers/kong-driver.js';
import { generateFixtures } from '../fixtures/serialized-logs.js';
import { PLUGIN_NAME, startAuditStack, waitForEntries, type AuditStack } from '../helpers/audit-stack.js';
import { cliTarget, runCli } from '../helpers/cli.js';
import { signingKeyPair } from '../helpers/signing-keys.js';
import { startImmudb } from '../../scripts/lib/immudb-server.js';
import { ImmudbClient } from '../../plugin/store/immudb-client.js';

const dir = mkdtempSync(join(tmpdir(), 'kia-signing-'));
const keyPair = (name: string) => signingKeyPair(dir, name);
const server = keyPair('server');
const other = keyPair('other');

let stack: AuditStack;
test.before(async () => {
  stack = await startAuditStack({ immudbArgs: ['--signingKey', server.priv] });
});
test.after.always(async () => {
  await stack?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

async function sendTo(db: string, prefix: string, publicKey: string, n: number) {
  const [w] = await simulateWorkers(stack.rpc, 1, PLUGIN_NAME, stack.config({ immudb_database: db, create_database: true, key_prefix: prefix, server_public_key: publicKey, queue: { max_batch_size: 8, max_coalescing_delay: 0.01 } }));
  for (const f of generateFixtures(n, { seed: 3 })) await w!.runLogEvent({ 'kong.log.serialize': f.json });
}

test.serial("with the server's key: writes and verified reads pass; another key fails them", async (t) => {
  await sendTo('signed', 's', server.pubPem, 12);
  const stored = await waitForEntries(await stack.client('signed'), 's:entry:', 12);
  const id = (JSON.parse(stored[0]!.value.toString()) as { id: string }).id;
  const env = { IMMUDB_PASSWORD: stack.immudb.password };
  const auditor = mkdtempSync(join(dir, 'auditor-'));
  const ok = await runCli([...cliTarget(stack.immudb, 'signed', 's', auditor), '--server-public-key', server.pub, 'verify', id], env);
  t.is(ok.code, 0, ok.stderr);
  const all = await runCli([...cliTarget(stack.immudb, 'signed', 's', auditor), '--server-public-key', server.pub, '--json', 'verify', '--all'], env);
  t.is(all.code, 0, all.stderr);
  t.is(JSON.parse(all.stdout).entries, 12);
  const wrong = await runCli([...cliTarget(stack.immudb, 'signed', 's', mkdtempSync(join(dir, 'auditor-'))), '--server-public-key', other.pub, 'verify', id], env);
  t.is(wrong.code, 3);
  t.regex(wrong.stderr, /^immudb-audit: VERIFICATION FAILED: state of tx \d+ of database signed is not signed by the configured server key\n$/);
});

test.serial('the writer halts when states are not signed by the configured key', async (t) => {
  await sendTo('wrongkey', 'w', other.pubPem, 3);
  const deadline = Date.now() + 20_000;
  while (!/writer halted: state of tx \d+ of database wrongkey is not signed by the configured server key/.test(stack.server.logs())) {
    if (Date.now() > deadline) return t.fail(stack.server.logs().slice(-2000));
    await new Promise((r) => setTimeout(r, 100));
  }
  t.pass();
});

test.serial('a configured key and a server that does not sign: verification fails', async (t) => {
  const plain = await startImmudb();
  t.teardown(() => plain.dispose());
  const c = await ImmudbClient.connect({ host: plain.host, port: plain.port, username: plain.username, password: plain.password, database: 'defaultdb' });
  const id = '01900000-0000-7000-8000-00000000abcd';
  await c.set([{ key: Buffer.from(`u:entry:${id}`), value: Buffer.from('{}') }]);
  await c.close();
  const r = await runCli([...cliTarget(plain, 'defaultdb', 'u', mkdtempSync(join(dir, 'auditor-'))), '--server-public-key', server.pub, 'verify', id], { IMMUDB_PASSWORD: plain.password });
  t.is(r.code, 3);
  t.regex(r.stderr, /state of tx \d+ is not signed, but a server signing key is configured/);
});

test('a malformed public key is refused at start with a clear error', async (t) => {
  const err = await t.throwsAsync(stack.rpc.startInstance(PLUGIN_NAME, stack.config({ immudb_database: 'x', server_public_key: 'not a key' })));
  t.regex(err!.message, /server public key is not a PEM public key/);
});

test.serial('a server key set by a new configuration applies to the running writer (here: the wrong one halts it)', async (t) => {
  const cfg = (key: string | null) => stack.config({ immudb_database: 'keylater', create_database: true, key_prefix: 'kl', server_public_key: key, queue: { max_batch_size: 8, max_coalescing_delay: 0.01 } });
  const [w] = await simulateWorkers(stack.rpc, 1, PLUGIN_NAME, cfg(null));
  for (const f of generateFixtures(3, { seed: 5 })) await w!.runLogEvent({ 'kong.log.serialize': f.json });
  await waitForEntries(await stack.client('keylater'), 'kl:entry:', 3);
  await w!.reconfigure(cfg(other.pubPem), { seq: 70 });
  for (const f of generateFixtures(1, { seed: 6 })) await w!.runLogEvent({ 'kong.log.serialize': f.json });
  await stack.server.waitForLog(/writer halted: state of tx \d+ of database keylater is not signed by the configured server key/, 20_000);
  t.regex(stack.server.logs(), /configuration of 127\.0\.0\.1:\d+\/keylater changed \(server_public_key\)/);
});

test.serial('a malformed key in a new configuration of a running destination fails that instance only; the writer keeps its settings', async (t) => {
  const cfg = (key: string | null) => stack.config({ immudb_database: 'keybad', create_database: true, key_prefix: 'kb', server_public_key: key, queue: { max_batch_size: 8, max_coalescing_delay: 0.01 } });
  const [w] = await simulateWorkers(stack.rpc, 1, PLUGIN_NAME, cfg(server.pubPem));
  for (const f of generateFixtures(2, { seed: 8 })) await w!.runLogEvent({ 'kong.log.serialize': f.json });
  const err = await t.throwsAsync(stack.rpc.startInstance(PLUGIN_NAME, cfg('not a key')));
  t.regex(err!.message, /server public key is not a PEM public key/);
  for (const f of generateFixtures(2, { seed: 9 })) await w!.runLogEvent({ 'kong.log.serialize': f.json });
  t.is((await waitForEntries(await stack.client('keybad'), 'kb:entry:', 4)).length, 4);
  t.notRegex(stack.server.logs(), /keybad changed/);
});
