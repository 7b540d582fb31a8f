// Secrets of the plugin itself, through the real plugin server: the immudb password, the
// pseudonym key and the TLS client key never appear in GetPluginInfo / StartInstance /
// InstanceStatus / GetStatus / CloseInstance replies, in error messages, or in the server's log;
// and the server's socket and files are private to its user.
import test from 'ava';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startImmudb, type ImmudbServer } from '../../scripts/lib/immudb-server.js';
import { ImmudbClient } from '../../plugin/store/immudb-client.js';
import { dumpAllPlugins, KongInstance, KongRpcClient, startPluginServer, type PluginServerProcess } from '../helpers/kong-driver.js';
import { generateFixtures } from '../fixtures/serialized-logs.js';
import { PLUGIN_NAME, pluginDir, waitForEntries } from '../helpers/audit-stack.js';

const MARK = 'zqS3CR3T';
const IMMUDB_PASSWORD = `Pw-${MARK}-immudb-9f2K!`;
const HMAC_LITERAL = `${MARK}-hmac-literal-0123456789abcdef0123`;
const HMAC_ENV = `${MARK}-hmac-from-env-0123456789abcdef01`;
const TLS_KEY = `-----BEGIN PRIVATE KEY-----\n${MARK}tlskey\n-----END PRIVATE KEY-----\n`;

let immudb: ImmudbServer;
let server: PluginServerProcess;
let rpc: KongRpcClient;
let dataDir: string;

test.before(async () => {
  // A distinctive admin password, so that any leak of it is visible.
  immudb = await startImmudb({ args: ['--admin-password', IMMUDB_PASSWORD] });
  dataDir = mkdtempSync(join(tmpdir(), 'kia-secrets-'));
  server = await startPluginServer({
    pluginsDir: pluginDir(),
    env: { IMMUDB_AUDIT_DATA_DIR: dataDir, KIA_TEST_IMMUDB_PASSWORD: IMMUDB_PASSWORD, KIA_TEST_HMAC: HMAC_ENV },
  });
  rpc = new KongRpcClient(server.socketPath);
});
test.after.always(async () => {
  await rpc?.close();
  await server?.dispose();
  await immudb?.dispose();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

const base = (over: Record<string, unknown>) => ({
  immudb_host: immudb.host,
  immudb_port: immudb.port,
  immudb_username: 'immudb',
  create_database: true,
  queue: { max_batch_size: 16, max_coalescing_delay: 0.02 },
  ...over,
});

/** Config as Kong sends it after resolving {vault://...}: the secrets in clear. */
const literalConfig = () => base({
  immudb_password: IMMUDB_PASSWORD,
  immudb_database: 'secretslit',
  key_prefix: 'lit',
  privacy: { pseudonymize: ['client_ip', 'consumer_username'], pseudonym_key: HMAC_LITERAL, pseudonym_key_id: 'k1' },
  // client_cert with client_key: the schema wants both or neither (mutually_required)
  tls: { enabled: false, client_cert: '-----BEGIN CERTIFICATE-----\nnot parsed while TLS is off\n-----END CERTIFICATE-----', client_key: TLS_KEY },
});
/** Config with env: references, resolved by the plugin server. */
const envConfig = () => base({
  immudb_password: 'env:KIA_TEST_IMMUDB_PASSWORD',
  immudb_database: 'secretsenv',
  key_prefix: 'env',
  privacy: { pseudonymize: ['client_ip'], pseudonym_key: 'env:KIA_TEST_HMAC', pseudonym_key_id: 'k2' },
});

/** The plugin creates its database on its first write: wait for it. */
async function connectWhenCreated(database: string): Promise<ImmudbClient> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      return await ImmudbClient.connect({ host: immudb.host, port: immudb.port, username: 'immudb', password: IMMUDB_PASSWORD, database });
    } catch (e) {
      if (Date.now() > deadline || !/database does not exist/.test((e as Error).message)) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

const noSecret = (t: import('ava').ExecutionContext, what: string, v: unknown) => {
  const text = typeof v === 'string' ? v : JSON.stringify(v);
  for (const s of [MARK, IMMUDB_PASSWORD, HMAC_LITERAL, HMAC_ENV]) t.false(text.includes(s), `${what} contains a secret`);
};

test.serial('GetPluginInfo, StartInstance, InstanceStatus, GetStatus, CloseInstance replies carry no secret; the secrets work', async (t) => {
  noSecret(t, 'GetPluginInfo', await rpc.getPluginInfo(PLUGIN_NAME));
  noSecret(t, '--dump-all-plugins', await dumpAllPlugins(pluginDir()));

  for (const [name, cfg, db, prefix] of [['literal (vault-resolved)', literalConfig(), 'secretslit', 'lit'], ['env: references', envConfig(), 'secretsenv', 'env']] as const) {
    const k = new KongInstance(rpc, PLUGIN_NAME, cfg);
    const started = await rpc.startInstance(PLUGIN_NAME, k.sentConfig);
    noSecret(t, `StartInstance (${name})`, started);
    t.is(started.Config.immudb_password, '<redacted>');
    t.is((started.Config.privacy as Record<string, unknown>).pseudonym_key, '<redacted>');
    if (name.startsWith('literal')) t.is((started.Config.tls as Record<string, unknown>).client_key, '<redacted>');
    noSecret(t, 'InstanceStatus', await rpc.instanceStatus(started.Id));
    noSecret(t, 'GetStatus', await rpc.getStatus());

    // The redacted echo is not what the plugin uses: events are written with the real password.
    const fixtures = generateFixtures(5, { seed: 900, kinds: ['key-auth-consumer'] });
    for (const f of fixtures) await rpc.runLogEvent(started.Id, { 'kong.log.serialize': f.json });
    const client = await connectWhenCreated(db);
    try {
      const stored = await waitForEntries(client, `${prefix}:entry:`, 5);
      for (const s of stored) t.regex(JSON.parse(s.value.toString()).who.client_ip, /^hmac:k[12]:[0-9a-f]{64}$/);
    } finally {
      await client.close();
    }
    noSecret(t, 'CloseInstance', await rpc.closeInstance(started.Id));
  }
  noSecret(t, 'plugin server log', server.logs());
});

test.serial('configuration errors name fields, never values', async (t) => {
  const bad: Array<[string, Record<string, unknown>, RegExp]> = [
    ['missing env variable', base({ immudb_password: 'env:KIA_NOT_SET', immudb_database: 'x1' }), /immudb_password: environment variable KIA_NOT_SET is not set/],
    ['short pseudonym key', base({ immudb_password: IMMUDB_PASSWORD, immudb_database: 'x2', privacy: { pseudonymize: ['client_ip'], pseudonym_key: `${MARK}short`, pseudonym_key_id: 'k' } }), /privacy\.pseudonym_key: must be at least 32 characters/],
    ['unresolved vault reference', base({ immudb_password: '{vault://env/immudb-password}', immudb_database: 'x3' }), /immudb_password: the vault reference was not resolved by Kong/],
    ['bad TLS key', base({ immudb_password: IMMUDB_PASSWORD, immudb_database: 'x4', tls: { enabled: true, client_cert: `-----BEGIN CERTIFICATE-----\n${MARK}\n-----END CERTIFICATE-----`, client_key: TLS_KEY } }), /tls\.client_cert: a certificate in it cannot be parsed; tls\.client_key: not a PEM private key/],
    ['wrong type beside a secret', base({ immudb_password: IMMUDB_PASSWORD, immudb_port: 'nope', immudb_database: 'x5' }), /immudb_port: expected an integer/],
  ];
  for (const [name, cfg, expected] of bad) {
    const err = await t.throwsAsync(rpc.startInstance(PLUGIN_NAME, cfg));
    t.regex(err!.message, expected, name);
    noSecret(t, `error of ${name}`, err!.message);
  }
  // A wrong password is only found at the first write: the retry log names the failure, not the value.
  const wrong = await rpc.startInstance(PLUGIN_NAME, base({ immudb_password: `${MARK}-wrong-password`, immudb_database: 'x6', key_prefix: 'w' }));
  noSecret(t, 'StartInstance with a wrong password', wrong);
  await rpc.runLogEvent(wrong.Id, { 'kong.log.serialize': generateFixtures(1, { seed: 5 })[0]!.json });
  await server.waitForLog(/write to immudb failed .*invalid user name or password/, 15_000);
  noSecret(t, 'plugin server log', server.logs());
});

test.serial("the plugin server's socket and files have no group/other permissions", async (t) => {
  t.is(statSync(server.socketPath).mode & 0o777, 0o700, 'socket srwx------ (umask 077 applied when the plugin loads, before kong-pdk listens)');
  const walk = (dir: string): string[] => readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    const p = join(dir, d.name);
    return d.isDirectory() ? [p, ...walk(p)] : [p];
  });
  const files = walk(dataDir);
  t.true(files.length > 0, 'the plugin wrote its state');
  for (const f of files) t.is(statSync(f).mode & 0o077, 0, `${f.slice(dataDir.length)} is private`);

  // IMMUDB_AUDIT_UMASK=inherit keeps the umask the server was started with (here, ours).
  const ours = process.umask(0o022);
  process.umask(ours);
  const inherit = await startPluginServer({ pluginsDir: pluginDir(), env: { IMMUDB_AUDIT_UMASK: 'inherit', IMMUDB_AUDIT_DATA_DIR: dataDir } });
  try {
    t.is(statSync(inherit.socketPath).mode & 0o777, 0o777 & ~ours);
  } finally {
    await inherit.dispose();
  }
});
