// High availability with real immudb replication (immudb 1.11, replication per database): a
// primary and replicas with their own server identities. Trust belongs to the audit log, not
// to a server: an up-to-date replica promoted in the primary's place is accepted (the change
// of identity logged and counted), a forked one is refused by the writer and the auditor at
// whatever address it is reached, a lagging one gets the entries it lacks from the spool, and
// `trust move` re-anchors only after a proof.
import test, { type ExecutionContext } from 'ava';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createPrimaryDatabase, createReplicaDatabase, currentTx, freePort, promoteReplica, startImmudb, waitForTx, type ImmudbServer,
} from '../../scripts/lib/immudb-server.js';
import { ImmudbClient } from '../../plugin/store/immudb-client.js';
import { TrustedStateStore } from '../../plugin/store/trusted-state.js';
import { simulateWorkers, startPluginServer, KongRpcClient, type KongInstance, type PluginServerProcess } from '../helpers/kong-driver.js';
import { PLUGIN_NAME, pluginDir, scanAll } from '../helpers/audit-stack.js';
import { runCli } from '../helpers/cli.js';
import { generateFixtures } from '../fixtures/serialized-logs.js';
import { until } from '../helpers/until.js';

const QUEUE = { max_batch_size: 8, max_coalescing_delay: 0.02, initial_retry_delay: 0.05, max_retry_delay: 0.3 };

interface DestinationStatus {
  written: number;
  duplicates: number;
  spool_entries: number;
  halted: string | null;
}

/**
 * Like until(), restarting the replicas every few seconds meanwhile: immudb 1.11's asynchronous
 * replicator polls its primary with an exponential backoff while idle (1 s doubling up to
 * 2 min), and a restart starts it afresh. Without it a test could wait minutes.
 */
async function untilNudging<T>(what: string, replicas: ImmudbServer[], fn: () => Promise<T | undefined | null | false>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await until(what, fn, 3_000);
    } catch (e) {
      if (Date.now() > deadline) throw e;
      for (const r of replicas) await r.restart();
    }
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
  // The primary goes on: the writer and an auditor verify 20 more entries there.
  await send(w, 20);
  await until('24 entries on the primary', async () => (await entryIds(primary, 'fork', 'f')).size === 24);
  const aud = stateDir();
  const ok = await auditor([primary], 'fork', 'f', aud, 'verify', '--all');
  t.is(ok.code, 0, ok.stderr);
  // The fork grows longer than the primary's history (how many transactions the primary took
  // depends on batching, i.e. on the machine's speed): a shorter one would be refused as shorter.
  const forged = Math.max(7, (await currentTx(primary, 'fork')) - (await currentTx(replica, 'fork')) + 2);
  const forger = await client(replica, 'fork');
  for (let i = 0; i < forged; i++) await forger.set([{ key: Buffer.from(`f:entry:0190c8e2-7b1a-7c3d-9e4f-${String(i).padStart(12, '0')}`), value: Buffer.from('{"forged":true}') }]);
  await forger.close();
  await primary.stop();

  // At its own address: the auditor refuses it (its state belongs to the log, not a server).
  const own = await auditor([replica], 'fork', 'f', aud, 'verify', '--all');
  t.is(own.code, 3, own.stdout + own.stderr);
  t.regex(own.stderr, /^immudb-audit: VERIFICATION FAILED: immudb at 127\.0\.0\.1:\d+ \(server \S+\) does not hold log fork as verified: its history forks from the trusted state/);
  // Nor does trust move there: it needs the same proof.
  const move = await auditor([replica], 'fork', 'f', aud, 'trust', 'move');
  t.is(move.code, 3, move.stdout + move.stderr);
  t.regex(move.stderr, /forks from the trusted state/);
  // A plugin configuration naming the replica's address for the same log: refused when it
  // starts (one writer per trusted state, decisions #35), so nothing can write to the fork.
  await t.throwsAsync(() => gw.worker(config([replica], 'fork', 'f')), { message: /the audit log "fork" is already written by this plugin server/ });

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
  t.is(onFork.size, 4 + forged, `only the 4 replicated entries and the ${forged} forged ones`);
  for (const s of Object.values(await gw.status())) t.true(s.spool_entries >= 3, 'entries wait in the spool');
});

test.serial('trust reset is loud: a lifecycle entry records it in the log, and trust starts there', async (t) => {
  const s = await server(t);
  await createPrimaryDatabase(s, 'life');
  const aud = stateDir();
  const c = await client(s, 'life');
  await c.set([{ key: Buffer.from('x'), value: Buffer.from('1') }]);
  await c.close();
  // The chain is verified, but it holds no audit entry: not a pass (exit 1).
  const audited = await auditor([s], 'life', 'l', aud, 'verify', '--all');
  t.is(audited.code, 1, audited.stderr);
  t.regex(audited.stdout, /^verified: transactions 1\.\.1 of life/);
  const reset = await auditor([s], 'life', 'l', aud, 'trust', 'reset');
  t.is(reset.code, 0, reset.stderr);
  t.regex(reset.stdout, /recorded in the log: l:lifecycle:[0-9a-f-]{36} in tx 2/);
  const c2 = await client(s, 'life');
  const [entry] = await scanAll(c2, 'l:lifecycle:');
  await c2.close();
  t.like(JSON.parse(entry!.value.toString()), { event: 'trust_reset', log: 'life', holder: 'auditor', previous: { tx_id: 1 } });
  // The auditor's trust now starts at the recorded reset.
  const again = await auditor([s], 'life', 'l', aud, '--json', 'verify', '--all', '--from-tx', '1');
  t.is(again.code, 1, again.stderr);
  t.regex(again.stderr, /hold no audit entry under prefix "l"/);
  t.is(JSON.parse(again.stdout).to_tx, 2);
});

test.serial('promotion of an up-to-date replica: two gateways fail over without surgery, nothing lost or duplicated, the auditor still verifies; trust move', async (t) => {
  const primary = await server(t);
  const replica = await server(t);
  await createPrimaryDatabase(primary, 'up');
  await createReplicaDatabase(replica, primary, 'up');
  const gws = [await startGateway(), await startGateway()];
  for (const g of gws) t.teardown(() => g.dispose());
  const workers = await Promise.all(gws.map((g) => g.worker(config([primary, replica], 'up', 'u'))));
  // Two gateway nodes write to one database: each proves the other's transactions as it goes.
  await Promise.all(workers.map((w) => send(w, 15)));
  await until('30 entries on the primary', async () => (await entryIds(primary, 'up', 'u')).size === 30);
  await waitForTx(replica, 'up', await currentTx(primary, 'up'));
  const aud = stateDir();
  const before = await auditor([primary, replica], 'up', 'u', aud, '--json', 'verify', '--all');
  t.is(before.code, 0, before.stderr);
  t.is(JSON.parse(before.stdout).entries, 30);

  await primary.stop();
  await promoteReplica(replica, 'up');
  await Promise.all(workers.map((w) => send(w, 10)));
  await until('50 entries on the promoted replica', async () => (await entryIds(replica, 'up', 'u')).size === 50);
  const ids = await entryIds(replica, 'up', 'u');
  t.true([...ids.values()].every((n) => n === 1), 'each entry once');
  for (const g of gws) {
    const [s] = Object.values(await g.status());
    t.is(s!.halted, null);
    await until('spool drained', async () => Object.values(await g.status())[0]!.spool_entries === 0);
    t.regex(g.server.logs(), /is now served by server \S+ at 127\.0\.0\.1:\d+, trusted before on server/);
    const metrics = await (await fetch(`http://127.0.0.1:${g.metricsPort}/metrics`)).text();
    t.regex(metrics, /kong_immudb_audit_server_changes_total\{[^}]*\} [1-9]/);
  }
  // The auditor's saved state still verifies, through whichever address answers.
  const after = await auditor([primary, replica], 'up', 'u', aud, '--json', 'verify', '--all');
  t.is(after.code, 0, after.stderr);
  t.is(JSON.parse(after.stdout).entries, 20);

  // trust move: another auditor, anchored on the primary, moves to the replica after a proof.
  const aud2 = stateDir();
  const moved = await moveTo(replica, primary.port);
  cleanups.push(() => moved.dispose());
  t.is((await auditor([moved], 'up', 'u', aud2, 'verify', '--all')).code, 0);
  const relocated = await moveTo(moved, await freePort());
  cleanups.push(() => relocated.dispose());
  const move = await auditor([relocated], 'up', 'u', aud2, 'trust', 'move');
  t.is(move.code, 0, move.stderr);
  t.regex(move.stdout, /^trust in log up \(database up\) moved to server \S+ at 127\.0\.0\.1:\d+: its history \(tx \d+\) extends the state trusted before/);
});

test.serial('a lagging replica promoted: entries it lacks are re-sent from the spool, none lost, none twice (immudb_replica_acks)', async (t) => {
  const primary = await server(t);
  const replica = await server(t);
  const laterPort = await freePort();
  await createPrimaryDatabase(primary, 'lag');
  await createReplicaDatabase(replica, primary, 'lag');
  const gw = await startGateway();
  t.teardown(() => gw.dispose());
  const w = await gw.worker(config([primary, replica, { host: '127.0.0.1', port: laterPort }], 'lag', 'g', { immudb_replica_acks: 1, immudb_replica_ack_timeout: 3 }));
  await send(w, 10);
  await untilNudging('10 entries acknowledged', [replica], async () => Object.values(await gw.status())[0]?.written === 10 && Object.values(await gw.status())[0]!.spool_entries === 0);
  // Nothing in flight either, for a while: an ack that misses its timeout (under load) is
  // recorded by a writer_failing entry written a moment after the spool emptied, whose own ack
  // can miss again. A batch on the primary waiting for this replica's ack when it stops waits
  // for good, holding back the entries sent next, and the replica may hold it anyway (no lag to
  // show). Hence the 3 s ack timeout, and 3 s with nothing new before the replica stops.
  /** The primary's tx when the replica holds it and the spool is empty. */
  const held = async () => {
    const tx = await currentTx(primary, 'lag');
    return (await currentTx(replica, 'lag')) === tx && Object.values(await gw.status())[0]!.spool_entries === 0 ? tx : undefined;
  };
  await untilNudging('the replica holds all the primary holds', [replica], held);
  let quiet = { tx: -1, since: 0 };
  await until('the replica holds all the primary holds, and nothing new for 3 s', async () => {
    const tx = (await held()) ?? -1;
    if (tx !== quiet.tx) quiet = { tx, since: Date.now() };
    return tx !== -1 && Date.now() - quiet.since >= 3_000;
  });
  // The replica pauses; the primary proves more entries, which stay in the spool: no replica
  // holds them (and the writer waits for that before it writes the next batch).
  const replicated = quiet.tx;
  await replica.stop();
  await send(w, 50);
  // A batch more on the primary, waiting for an ack that cannot come and holding back the rest.
  let seen = '';
  const spooled = await until('a batch more on the primary, the 50 entries spooled', async () => {
    const n = Object.values(await gw.status())[0]!.spool_entries;
    const tx = await currentTx(primary, 'lag');
    seen = `primary at tx ${tx} (replica had ${replicated}), ${n} in the spool`;
    return tx > replicated && n >= 50 ? n : undefined;
  }).catch((e: Error) => {
    throw new Error(`${e.message}: ${seen}; logs:\n${gw.server.logs().slice(-6000)}`);
  });
  // The 50 entries, and lifecycle entries not acknowledged (writer_failing once the replica's
  // ack was missed, and whatever of started/config_loaded was still waiting).
  t.true(spooled >= 50 && spooled <= 53, `nothing acknowledged without a replica (${spooled} in the spool)`);
  await primary.stop();
  await replica.restart();
  t.is(await currentTx(replica, 'lag'), replicated, 'the replica is behind the primary');
  await promoteReplica(replica, 'lag');
  // The writer fails over, re-anchors at the last tx a replica held and re-sends the rest; a
  // new replica of the promoted server acknowledges them, and the spool drains.
  const replica2 = await server(t, { port: laterPort });
  await createReplicaDatabase(replica2, replica, 'lag');
  await untilNudging('spool drained', [replica2], async () => Object.values(await gw.status())[0]!.spool_entries === 0, 120_000);
  const s = Object.values(await gw.status())[0]!;
  t.is(s.halted, null);
  const ids = await entryIds(replica, 'lag', 'g');
  t.is(ids.size, 60);
  t.true([...ids.values()].every((n) => n === 1), 'each entry once');
  t.regex(gw.server.logs(), /transactions \d+\.\.\d+ had not reached it when it took over \(replication lag\)/);
});

test.serial('synchronous replication: the promoted replica holds every acknowledged entry', async (t) => {
  const primary = await server(t);
  const replica = await server(t);
  await createPrimaryDatabase(primary, 'sync', { sync: true, syncAcks: 1 });
  await createReplicaDatabase(replica, primary, 'sync', { sync: true });
  const gw = await startGateway();
  t.teardown(() => gw.dispose());
  // The replica first: the writer must pass over a read-only replica to the primary.
  const w = await gw.worker(config([replica, primary], 'sync', 's'));
  await send(w, 30);
  await until('30 entries acknowledged', async () => Object.values(await gw.status())[0]?.written === 30 && Object.values(await gw.status())[0]!.spool_entries === 0);
  await primary.stop();
  // What the primary committed, the replica had acknowledged (precommitted: it commits them
  // once promoted). The spool is empty, so nothing could be re-sent: 35 = none lost.
  await promoteReplica(replica, 'sync');
  await send(w, 5);
  await until('35 entries on the promoted replica', async () => (await entryIds(replica, 'sync', 's')).size === 35);
  t.true([...(await entryIds(replica, 'sync', 's')).values()].every((n) => n === 1));
  const s = Object.values(await gw.status())[0]!;
  t.is(s.halted, null);
  t.is(s.duplicates, 0);
  t.regex(gw.server.logs(), new RegExp(`writing to immudb at 127\\.0\\.0\\.1:${primary.port} \\(server \\S+\\) instead of 127\\.0\\.0\\.1:${replica.port}`), 'the read-only replica was passed over');
});

test.serial('a trusted state of an earlier version (per server UUID, with its binding) is migrated on first use', async (t) => {
  const s = await server(t);
  await createPrimaryDatabase(s, 'mig');
  const gw = await startGateway();
  t.teardown(() => gw.dispose());
  const w = await gw.worker(config([s], 'mig', 'm'));
  await send(w, 5);
  await until('5 entries', async () => (await entryIds(s, 'mig', 'm')).size === 5);
  // Rewrite the writer's state as an earlier version kept it, then start again.
  await gw.server.stop();
  const dir = join(gw.dataDir, 'trusted-state');
  const saved = new TrustedStateStore(dir).load('mig', 'mig')!;
  const state = { server_uuid: saved.serverUuid, tx_id: saved.txId, alh: saved.alh.toString('hex') };
  rmSync(join(dir, 'logs'), { recursive: true });
  mkdirSync(join(dir, 'bindings'), { recursive: true });
  writeFileSync(join(dir, 'bindings', `127.0.0.1_${s.port}_mig.json`), JSON.stringify({ host: '127.0.0.1', port: s.port, database: 'mig', server_uuid: state.server_uuid }));
  mkdirSync(join(dir, state.server_uuid));
  writeFileSync(join(dir, state.server_uuid, 'mig.json'), JSON.stringify({ server_uuid: state.server_uuid, database: 'mig', tx_id: state.tx_id, alh: state.alh }));
  const from = gw.server.logs().length;
  await gw.server.start();
  const w2 = await gw.worker(config([s], 'mig', 'm'));
  await send(w2, 3);
  await until('8 entries', async () => (await entryIds(s, 'mig', 'm')).size === 8);
  const logs = gw.server.logs().slice(from);
  t.regex(logs, new RegExp(`trusted state of log mig migrated from \\S+/${state.server_uuid}/mig\\.json \\(server ${state.server_uuid}, tx ${state.tx_id}\\)`));
  t.notRegex(logs, /no trusted state/, 'not a first contact');
  // The state is saved after immudb proved the batch, so it can follow the entries by a moment.
  const advanced = await until('the migrated state to advance', async () => {
    const now = new TrustedStateStore(dir).load('mig', 'mig');
    return now && now.txId > state.tx_id ? now : undefined;
  });
  t.true(advanced.txId > state.tx_id);
});
