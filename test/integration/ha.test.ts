// High availability with real immudb replication (immudb 1.11, replication per database): a
// primary and replicas with their own server identities. Trust belongs to the audit log, not
// to a server: an up-to-date replica promoted in the primary's place is accepted (the change
// of identity logged and counted), a forked one is refused by the writer and the auditor at
// whatever address it is reached, a lagging one gets the entries it lacks from the spool, and
// `trust move` re-anchors only after a proof.
import test, { type ExecutionContext } from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createPrimaryDatabase, createReplicaDatabase, currentTx, freePort, promoteReplica, startImmudb, waitForTx, type ImmudbServer,
} from '../../scripts/lib/immudb-server.js';
import { ImmudbClient } from '../../plugin/store/immudb-client.js';
import { simulateWorkers, startPluginServer, KongRpcClient, type KongInstance, type PluginServerProcess } from '../helpers/kong-driver.js';
import { PLUGIN_NAME, pluginDir, scanAll } from '../helpers/audit-stack.js';
import { runCli } from '../helpers/cli.js';
import { generateFixtures } from '../fixtures/serialized-logs.js';

const QUEUE = { max_batch_size: 8, max_coalescing_delay: 0.02, initial_retry_delay: 0.05, max_retry_delay: 0.3 };

interface DestinationStatus {
  written: number;
  duplicates: number;
  spool_entries: number;
  halted: string | null;
}

async function until<T>(what: string, fn: () => Promise<T | undefined | null | false> | T | undefined | null | false, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== null && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const addr = (s: ImmudbServer | { host: string; port: number }) => `${s.host}:${s.port}`;

interface Gateway {
  server: PluginServerProcess;
  rpc: KongRpcClient;
  dataDir: string;
  metricsPort: number;
  worker(config: Record<string, unknown>): Promise<KongInstance>;
  status(): Promise<Record<string, DestinationStatus>>;
  dispose(): Promise<void>;
}

async function startGateway(): Promise<Gateway> {
  const dataDir = mkdtempSync(join(tmpdir(), 'kia-ha-plugin-'));
  const metricsPort = await freePort();
  const server = await startPluginServer({ pluginsDir: pluginDir(), env: { IMMUDB_AUDIT_DATA_DIR: dataDir, IMMUDB_AUDIT_METRICS_PORT: String(metricsPort) } });
  const rpc = new KongRpcClient(server.socketPath);
  return {
    server, rpc, dataDir, metricsPort,
    async worker(config) {
      const [w] = await simulateWorkers(rpc, 1, PLUGIN_NAME, config);
      return w!;
    },
    async status() {
      const res = await fetch(`http://127.0.0.1:${metricsPort}/status`);
      return ((await res.json()) as { destinations: Record<string, DestinationStatus> }).destinations;
    },
    async dispose() {
      rpc.close();
      await server.dispose().catch(() => undefined);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

let seed = 1;
async function send(worker: KongInstance, n: number): Promise<void> {
  for (const f of generateFixtures(n, { seed: seed++ })) {
    const r = await worker.runLogEvent({ 'kong.log.serialize': f.json });
    if (!r.completed) throw new Error('log event did not complete');
  }
}

function config(servers: Array<ImmudbServer | { host: string; port: number }>, db: string, prefix: string, over: Record<string, unknown> = {}) {
  const [first] = servers;
  return {
    immudb_host: first!.host,
    immudb_port: first!.port,
    ...(servers.length > 1 ? { immudb_addresses: servers.map(addr) } : {}),
    immudb_username: 'immudb',
    immudb_password: 'immudb',
    immudb_database: db,
    key_prefix: prefix,
    queue: QUEUE,
    ...over,
  };
}

async function client(s: ImmudbServer, db: string): Promise<ImmudbClient> {
  return ImmudbClient.connect({ host: s.host, port: s.port, username: s.username, password: s.password, database: db });
}

async function entryIds(s: ImmudbServer, db: string, prefix: string): Promise<Map<string, number>> {
  const c = await client(s, db);
  try {
    const seen = new Map<string, number>();
    for (const e of await scanAll(c, `${prefix}:entry:`)) seen.set(e.key.toString(), (seen.get(e.key.toString()) ?? 0) + 1);
    return seen;
  } finally {
    await c.close();
  }
}

function auditor(servers: Array<ImmudbServer | { host: string; port: number }>, db: string, prefix: string, stateDir: string, ...args: string[]) {
  return runCli(['--address', servers.map(addr).join(','), '--username', 'immudb', '--database', db, '--prefix', prefix, '--state-dir', stateDir, ...args], { IMMUDB_PASSWORD: 'immudb' });
}

/** Restarts a stopped server's data directory at another port (an address the plugin already uses). */
async function moveTo(s: ImmudbServer, port: number): Promise<ImmudbServer> {
  await s.stop();
  return startImmudb({ dataDir: s.dataDir!, port });
}

const cleanups: Array<() => Promise<void>> = [];
test.after.always(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});
async function server(t: ExecutionContext, opts: Parameters<typeof startImmudb>[0] = {}): Promise<ImmudbServer> {
  const s = await startImmudb(opts);
  cleanups.push(() => s.dispose());
  t.teardown(() => s.dispose());
  return s;
}
function stateDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'kia-ha-auditor-'));
  cleanups.push(async () => rmSync(d, { recursive: true, force: true }));
  return d;
}

test.serial('a forked replica is refused by the writer and the auditor, at its own address and at the primary\'s', async (t) => {
  const primary = await server(t);
  const replica = await server(t);
  await createPrimaryDatabase(primary, 'fork');
  await createReplicaDatabase(replica, primary, 'fork');
  const gw = await startGateway();
  t.teardown(() => gw.dispose());
  const w = await gw.worker(config([primary], 'fork', 'f'));
  await send(w, 4);
  await until('4 entries on the primary', async () => (await entryIds(primary, 'fork', 'f')).size === 4);
  await waitForTx(replica, 'fork', await currentTx(primary, 'fork'));
  // The replica is promoted early and written to by someone else: a history of its own.
  await promoteReplica(replica, 'fork');
  const forger = await client(replica, 'fork');
  for (let i = 0; i < 7; i++) await forger.set([{ key: Buffer.from(`f:entry:0190c8e2-7b1a-7c3d-9e4f-00000000000${i}`), value: Buffer.from('{"forged":true}') }]);
  await forger.close();
  // The primary goes on: the writer and an auditor verify 20 more entries there.
  await send(w, 20);
  await until('24 entries on the primary', async () => (await entryIds(primary, 'fork', 'f')).size === 24);
  const aud = stateDir();
  const ok = await auditor([primary], 'fork', 'f', aud, 'verify', '--all');
  t.is(ok.code, 0, ok.stderr);
  await primary.stop();

  // At its own address: the auditor refuses it (its state belongs to the log, not a server).
  const own = await auditor([replica], 'fork', 'f', aud, 'verify', '--all');
  t.is(own.code, 3, own.stdout + own.stderr);
  t.regex(own.stderr, /fork/i);
  // A plugin configuration naming the replica's address: its writer refuses it too.
  const w2 = await gw.worker(config([replica], 'fork', 'f'));
  await send(w2, 3);
  const halted = await until('the writer at the replica\'s address refuses it', async () => Object.entries(await gw.status()).find(([d, s]) => d.includes(String(replica.port)) && s.halted)?.[1].halted);
  t.regex(halted, /fork/i);

  // At the primary's address.
  const moved = await moveTo(replica, primary.port);
  cleanups.push(() => moved.dispose());
  await send(w, 3);
  const halted1 = await until('the writer at the primary\'s address refuses it', async () => Object.entries(await gw.status()).find(([d, s]) => d.includes(String(primary.port)) && s.halted)?.[1].halted);
  t.regex(halted1, /fork/i);
  const atPrimary = await auditor([primary], 'fork', 'f', aud, 'verify', '--all');
  t.is(atPrimary.code, 3, atPrimary.stdout + atPrimary.stderr);
  t.regex(atPrimary.stderr, /fork/i);
  // Nothing of the writer's was written to the fork, and nothing of the fork was accepted.
  const onFork = await entryIds(moved, 'fork', 'f');
  t.is(onFork.size, 4 + 7, 'only the 4 replicated entries and the 7 forged ones');
  for (const s of Object.values(await gw.status())) t.true(s.spool_entries >= 3, 'entries wait in the spool');
});
