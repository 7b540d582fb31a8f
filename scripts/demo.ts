// The local demo: a real immudb signing its states (--signingKey, a key made for this run), Kong's
// JavaScript plugin server running the built plugin with that key's public half
// (server_public_key), and demo requests sent through it exactly as Kong sends log events. Prints
// each request's audit id and verifies it with a verified read that checks the signature too.
// `--keep` leaves the stack running until Ctrl-C.
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { simulateWorkers } from '../test/helpers/kong-driver.js';
import { buildFixture, SCENARIO_KINDS } from '../test/fixtures/serialized-logs.js';
import { PLUGIN_NAME, scanAll, startAuditStack, waitForEntries } from '../test/helpers/audit-stack.js';
import { AuditReader } from '../plugin/reader/audit-reader.js';
import { freePort } from './lib/immudb-server.js';
import type { AuditEntry } from '../plugin/capture/audit-entry.js';

const keep = process.argv.includes('--keep');
const count = 14;

const metricsPort = await freePort();
// immudb's state signing key (P-256, as --signingKey wants it), made for this run.
const keyDir = mkdtempSync(join(tmpdir(), 'kia-demo-signing-'));
const pair = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
const signingKey = join(keyDir, 'immudb-signing.key');
const publicKeyFile = join(keyDir, 'immudb-signing.pub');
const publicKey = pair.publicKey.export({ type: 'spki', format: 'pem' }).toString();
writeFileSync(signingKey, pair.privateKey.export({ type: 'sec1', format: 'pem' }), { mode: 0o600 });
writeFileSync(publicKeyFile, publicKey);
const stack = await startAuditStack({ immudbArgs: ['--signingKey', signingKey], env: { IMMUDB_AUDIT_METRICS_PORT: String(metricsPort) } });
try {
  const database = 'audit';
  const prefix = 'audit';
  console.log(`immudb ${stack.immudb.host}:${stack.immudb.port} (data ${stack.immudb.dataDir ?? 'external'}, states signed with ${signingKey}), plugin server socket ${stack.server.socketPath}`);
  const workers = await simulateWorkers(stack.rpc, 2, PLUGIN_NAME, stack.config({ immudb_database: database, create_database: true, key_prefix: prefix, server_public_key: publicKey, queue: { max_batch_size: 64, max_coalescing_delay: 0.1 } }));
  console.log(`plugin ${PLUGIN_NAME} started on 2 worker instances; sending ${count} requests through the log phase`);

  // Requests of the last minute, one a few seconds apart, so the entries carry today's date.
  const now = Date.now();
  const fixtures = Array.from({ length: count }, (_, i) => buildFixture(SCENARIO_KINDS[i % SCENARIO_KINDS.length]!, 100 + i, { startedAt: now - (count - i) * 3_000 }));
  await Promise.all(fixtures.map((f, i) => workers[i % 2]!.runLogEvent({ 'kong.log.serialize': f.json })));

  const client = await stack.client(database);
  await waitForEntries(client, `${prefix}:entry:`, count, 30_000);
  const stored = (await scanAll(client, `${prefix}:entry:`)).map((s) => JSON.parse(s.value.toString()) as AuditEntry);
  stored.sort((a, b) => a.time.localeCompare(b.time));

  const auditorDir = mkdtempSync(join(tmpdir(), 'kia-demo-auditor-'));
  const reader = await AuditReader.open(
    { host: stack.immudb.host, port: stack.immudb.port, username: stack.immudb.username, password: stack.immudb.password, database },
    prefix,
    auditorDir,
    { serverPublicKey: publicKey },
  );
  try {
    for (const e of stored) {
      const v = await reader.verify(e.id);
      const who = e.who.consumer?.username ?? (e.who.authenticated ? 'authenticated' : 'anonymous');
      console.log(`audit ${e.id}  tx ${String(v.txId).padStart(2)}  ${(e.what.method ?? '-').padEnd(6)} ${(e.what.path ?? '-').padEnd(28)} -> ${e.outcome.status} ${e.outcome.source.padEnd(8)} (${who})  verified`);
    }
  } finally {
    await reader.close();
  }
  console.log(`\n${stored.length} requests audited and verified.`);
  if (!keep) console.log('Run `bash scripts/demo.sh --keep` to keep immudb up and try the CLI on these entries.');
  if (keep) {
    // The Node this demo runs on (the one scripts/ installed): the system's may be older.
    const node = process.execPath;
    const cli = `${node} dist/plugin/cli.js --address ${stack.immudb.host}:${stack.immudb.port} --username ${stack.immudb.username} --database ${database} --prefix ${prefix} --state-dir ${auditorDir} --server-public-key ${publicKeyFile}`;
    const traced = stored.find((e) => e.trace_id);
    console.log('Try the CLI on these entries (in another terminal, from this directory):');
    console.log(`  export IMMUDB_PASSWORD=${stack.immudb.password}`);
    console.log(`  ${cli} get ${stored[0]!.id}`);
    console.log(`  ${cli} verify ${stored[0]!.id}`);
    console.log(`  ${cli} verify --all   # every transaction not audited yet (run again: exit 1, nothing new)`);
    console.log(`  ${cli} verify --all --since 1h   # the transactions of the last hour, whatever was audited before`);
    if (traced) console.log(`  ${cli} find --trace ${traced.trace_id} --verify`);
    console.log(`  ${cli} search --status 4xx --since 1h`);
    console.log(`  ${node} dist/plugin/cli.js status --metrics-url http://127.0.0.1:${metricsPort}`);
    console.log(`  ${cli} serve --port 8089 --status-url http://127.0.0.1:${metricsPort}/status   # then open http://127.0.0.1:8089/`);
    console.log('\n--keep: the stack stays up; press Ctrl-C to stop it.');
    await new Promise<void>((resolve) => process.once('SIGINT', () => resolve()));
  }
} finally {
  await stack.dispose();
  rmSync(keyDir, { recursive: true, force: true });
}
