// TLS and mutual TLS to immudb, through the real plugin server: entries are written over TLS
// with immudb's CA pinned; another CA fails clearly (pinning); a client certificate is sent for
// mutual TLS, and a server that requires one refuses a client without it.
//
// immudb v1.11.1's --mtls verifies a client certificate only *if given* (tls.VerifyClientCertIfGiven
// in cmd/immudb/command/tls_config.go): it does not require one. The test records that, and
// proves "fails without a client certificate" against a TLS terminator that requires one (the
// deployment docs/security.md recommends when client certificates must be enforced).
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startImmudb, type ImmudbServer } from '../../scripts/lib/immudb-server.js';
import { ImmudbClient, type ImmudbTlsOptions } from '../../plugin/store/immudb-client.js';
import { KongRpcClient, startPluginServer, type PluginServerProcess } from '../helpers/kong-driver.js';
import { generateFixtures } from '../fixtures/serialized-logs.js';
import { PLUGIN_NAME, pluginDir, waitForEntries } from '../helpers/audit-stack.js';

let dir: string;
const pem = (name: string) => readFileSync(join(dir, name));
let tlsImmudb: ImmudbServer;
let mtlsImmudb: ImmudbServer;
let terminator: net.Server;
let terminatorPort: number;
let server: PluginServerProcess;
let rpc: KongRpcClient;
let dataDir: string;

function openssl(...args: string[]) {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A throwaway CA, a server certificate for localhost/127.0.0.1, client certificates from it and from another CA. */
function makeCertificates() {
  const key = (name: string) => openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${name}.key`);
  const ca = (name: string, cn: string) => {
    key(name);
    openssl('req', '-x509', '-new', '-key', `${name}.key`, '-out', `${name}.pem`, '-days', '2', '-subj', `/CN=${cn}`);
  };
  const leaf = (name: string, cn: string, caName: string, ext: string) => {
    key(name);
    openssl('req', '-new', '-key', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
    writeFileSync(join(dir, `${name}.ext`), ext);
    openssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${caName}.pem`, '-CAkey', `${caName}.key`, '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`);
  };
  ca('ca', 'kia test CA');
  ca('other-ca', 'some other CA');
  leaf('server', 'localhost', 'ca', 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n');
  leaf('client', 'kong-audit-writer', 'ca', 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n');
  leaf('rogue', 'kong-audit-writer', 'other-ca', 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n');
}

/** A TLS terminator in front of the TLS immudb that requires a client certificate from our CA. */
async function startTerminator(upstreamPort: number): Promise<{ srv: net.Server; port: number }> {
  const srv = tls.createServer({ key: pem('server.key'), cert: pem('server.pem'), ca: pem('ca.pem'), requestCert: true, rejectUnauthorized: true, ALPNProtocols: ['h2'] }, (down) => {
    const up = tls.connect({ host: '127.0.0.1', port: upstreamPort, ca: pem('ca.pem'), servername: 'localhost', ALPNProtocols: ['h2'] });
    down.pipe(up).pipe(down);
    const end = () => {
      down.destroy();
      up.destroy();
    };
    up.on('error', end);
    down.on('error', end);
  });
  srv.on('tlsClientError', () => undefined);
  const port = await freePort();
  await new Promise<void>((r) => srv.listen(port, '127.0.0.1', r));
  return { srv, port };
}

test.before(async () => {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
  } catch {
    throw new Error('these tests need the openssl command (Debian: apt-get install openssl)');
  }
  dir = mkdtempSync(join(tmpdir(), 'kia-tls-'));
  makeCertificates();
  const serverArgs = ['--certificate', join(dir, 'server.pem'), '--pkey', join(dir, 'server.key')];
  [tlsImmudb, mtlsImmudb] = await Promise.all([
    startImmudb({ args: serverArgs }),
    startImmudb({ args: [...serverArgs, '--mtls', '--clientcas', join(dir, 'ca.pem')] }),
  ]);
  ({ srv: terminator, port: terminatorPort } = await startTerminator(tlsImmudb.port));
  dataDir = mkdtempSync(join(tmpdir(), 'kia-tls-data-'));
  server = await startPluginServer({ pluginsDir: pluginDir(), env: { IMMUDB_AUDIT_DATA_DIR: dataDir, KIA_TEST_CLIENT_KEY: pem('client.key').toString() } });
  rpc = new KongRpcClient(server.socketPath);
});
test.after.always(async () => {
  await rpc?.close();
  await server?.dispose();
  terminator?.close();
  await Promise.all([tlsImmudb?.dispose(), mtlsImmudb?.dispose()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

const CLIENT_CERT = () => ({ client_cert: pem('client.pem').toString(), client_key: 'env:KIA_TEST_CLIENT_KEY' });

function config(port: number, database: string, tlsSettings: Record<string, unknown>) {
  return {
    immudb_host: '127.0.0.1',
    immudb_port: port,
    immudb_username: 'immudb',
    immudb_password: 'immudb',
    immudb_database: database,
    create_database: true,
    key_prefix: database,
    queue: { max_batch_size: 32, max_coalescing_delay: 0.02, initial_retry_delay: 0.2, max_retry_delay: 1 },
    tls: { enabled: true, server_name: 'localhost', ca_cert: `file:${join(dir, 'ca.pem')}`, ...tlsSettings },
  };
}

async function send(cfg: Record<string, unknown>, n: number, seed: number): Promise<void> {
  const st = await rpc.startInstance(PLUGIN_NAME, cfg);
  for (const f of generateFixtures(n, { seed })) await rpc.runLogEvent(st.Id, { 'kong.log.serialize': f.json });
}

async function connect(port: number, database: string, opts: ImmudbTlsOptions | undefined): Promise<ImmudbClient> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      return await ImmudbClient.connect({ host: '127.0.0.1', port, username: 'immudb', password: 'immudb', database, callTimeoutMs: 5_000, ...(opts ? { tls: opts } : {}) });
    } catch (e) {
      if (Date.now() > deadline || !/database does not exist/.test((e as Error).message)) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

const pinned = (): ImmudbTlsOptions => ({ ca: pem('ca.pem'), serverName: 'localhost' });

test.serial('TLS with the pinned CA: entries are written and read back over TLS only', async (t) => {
  await send(config(tlsImmudb.port, 'tlsok', {}), 10, 10);
  const c = await connect(tlsImmudb.port, 'tlsok', pinned());
  try {
    t.is((await waitForEntries(c, 'tlsok:entry:', 10)).length, 10);
  } finally {
    await c.close();
  }
  await t.throwsAsync(connect(tlsImmudb.port, 'tlsok', undefined), undefined, 'the server speaks TLS only');
});

test.serial('a CA other than the one that signed immudb fails clearly, and nothing is written', async (t) => {
  const err = await t.throwsAsync(connect(tlsImmudb.port, 'defaultdb', { ca: pem('other-ca.pem'), serverName: 'localhost' }));
  t.regex(err!.message, /^immudb open session failed: TLS handshake failed: unable to verify the first certificate \(check tls\.ca_cert/);
  t.notRegex(err!.message, /use-system-ca/);

  await send(config(tlsImmudb.port, 'tlswrong', { ca_cert: pem('other-ca.pem').toString() }), 1, 20);
  await server.waitForLog(/write to immudb failed \(attempt 1\).*TLS handshake failed: unable to verify the first certificate/, 15_000);
  await t.throwsAsync(
    ImmudbClient.connect({ host: '127.0.0.1', port: tlsImmudb.port, username: 'immudb', password: 'immudb', database: 'tlswrong', tls: pinned() }),
    { message: /database does not exist/ },
    'the server behind the wrong CA never received anything',
  );
});

test.serial('mutual TLS: the client certificate is presented and accepted; one from another CA is refused', async (t) => {
  await send(config(mtlsImmudb.port, 'mtlsok', CLIENT_CERT()), 5, 30);
  const c = await connect(mtlsImmudb.port, 'mtlsok', { ...pinned(), cert: pem('client.pem'), key: pem('client.key') });
  try {
    t.is((await waitForEntries(c, 'mtlsok:entry:', 5)).length, 5);
  } finally {
    await c.close();
  }
  const rogue = await t.throwsAsync(connect(mtlsImmudb.port, 'defaultdb', { ...pinned(), cert: pem('rogue.pem'), key: pem('rogue.key') }));
  t.regex(rogue!.message, /TLS handshake failed: tlsv1 alert unknown ca/);

  // immudb v1.11.1 --mtls does not require a certificate (VerifyClientCertIfGiven): record it.
  const none = await connect(mtlsImmudb.port, 'defaultdb', pinned()).then(
    async (cl) => {
      await cl.close();
      return 'accepted';
    },
    () => 'refused',
  );
  t.log(`immudb --mtls, client without certificate: ${none} (upstream behaviour; see docs/security.md)`);
});

test.serial('a server that requires client certificates refuses the plugin without one and accepts it with one', async (t) => {
  await send(config(terminatorPort, 'mtlsreq', {}), 1, 40);
  await server.waitForLog(/write to immudb failed \(attempt 1\).*TLS handshake failed: tlsv13 alert certificate required/, 15_000);
  const direct = await t.throwsAsync(connect(terminatorPort, 'defaultdb', pinned()));
  t.regex(direct!.message, /TLS handshake failed: tlsv13 alert certificate required/);

  await send(config(terminatorPort, 'mtlsreq2', CLIENT_CERT()), 5, 50);
  const c = await connect(tlsImmudb.port, 'mtlsreq2', pinned());
  try {
    t.is((await waitForEntries(c, 'mtlsreq2:entry:', 5)).length, 5, 'written through the terminator with the client certificate');
  } finally {
    await c.close();
  }
  const noKeyInLog = !server.logs().includes(pem('client.key').toString().split('\n')[1]!);
  t.true(noKeyInLog, 'the client key is never logged');
});

test.serial('a corrected CA takes effect without a restart: the writer reconnects with the new TLS settings', async (t) => {
  const wrong = await rpc.startInstance(PLUGIN_NAME, config(tlsImmudb.port, 'tlsfix', { ca_cert: pem('other-ca.pem').toString() }));
  for (const f of generateFixtures(3, { seed: 60 })) await rpc.runLogEvent(wrong.Id, { 'kong.log.serialize': f.json });
  await server.waitForLog(/write to immudb failed \(attempt 1\).*TLS handshake failed/, 15_000);
  // What Kong does after an Admin API change: a new instance with the new configuration, then
  // CloseInstance of the old one.
  const fixed = await rpc.startInstance(PLUGIN_NAME, config(tlsImmudb.port, 'tlsfix', {}));
  await rpc.closeInstance(wrong.Id);
  for (const f of generateFixtures(2, { seed: 61 })) await rpc.runLogEvent(fixed.Id, { 'kong.log.serialize': f.json });
  const c = await connect(tlsImmudb.port, 'tlsfix', pinned());
  try {
    t.is((await waitForEntries(c, 'tlsfix:entry:', 5, 30_000)).length, 5, 'the entries spooled behind the wrong CA and the new ones');
  } finally {
    await c.close();
  }
  t.regex(server.logs(), /changed \(tls\): the writer reconnects with the new settings/);
});
