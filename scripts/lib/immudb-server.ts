// Starts and stops a real immudb server for tests and the local demo: the binaries built by
// scripts/install-immudb.sh, a free loopback port and a temporary data directory. When
// IMMUDB_ADDRESS is set (host:port) an existing server is used instead and nothing is started.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync, openSync, closeSync, readFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

export interface ImmudbServer {
  host: string;
  port: number;
  username: string;
  password: string;
  /** Data directory; undefined for an external server. */
  dataDir?: string;
  /** Directory with immudb, immuadmin, immuclient. */
  binDir: string;
  /** Stops the server (SIGTERM, then SIGKILL) and keeps the data directory. */
  stop(): Promise<void>;
  /** Starts the server again on the same port and data directory. */
  restart(): Promise<void>;
  /** Stops the server and removes its data directory. */
  dispose(): Promise<void>;
  /** The server's log, for failure messages. */
  log(): string;
}

/** Directory of the cached immudb binaries, building them on first use. */
export function immudbBinDir(): string {
  if (process.env.IMMUDB_BIN_DIR) return process.env.IMMUDB_BIN_DIR;
  const out = execFileSync('bash', [join(repoRoot, 'scripts/install-immudb.sh')], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return out.trim().split('\n').pop()!;
}

export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolvePort(addr.port) : reject(new Error('no port'))));
    });
  });
}

async function waitForPort(host: string, port: number, timeoutMs: number, proc?: ChildProcess): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc && proc.exitCode !== null) throw new Error(`immudb exited with code ${proc.exitCode} before listening`);
    const ok = await new Promise<boolean>((res) => {
      const s = connect({ host, port }, () => {
        s.destroy();
        res(true);
      });
      s.on('error', () => res(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`immudb did not listen on ${host}:${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface StartOptions {
  /** Extra immudb flags, e.g. ['--signingKey', path]. */
  args?: string[];
  /** Reuse this data directory (it is then not removed by dispose). */
  dataDir?: string;
  port?: number;
}

export async function startImmudb(opts: StartOptions = {}): Promise<ImmudbServer> {
  const external = process.env.IMMUDB_ADDRESS;
  if (external && !opts.dataDir) {
    const [host, portText] = external.split(':');
    return {
      host: host || '127.0.0.1',
      port: Number(portText || 3322),
      username: process.env.IMMUDB_USERNAME ?? 'immudb',
      password: process.env.IMMUDB_PASSWORD ?? 'immudb',
      binDir: process.env.IMMUDB_BIN_DIR ?? '',
      stop: async () => {},
      restart: async () => {},
      dispose: async () => {},
      log: () => '(external server)',
    };
  }

  const binDir = immudbBinDir();
  const ownDir = !opts.dataDir;
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'kia-immudb-'));
  const port = opts.port ?? (await freePort());
  const password = 'immudb';
  const logFile = join(dataDir, 'server.log');
  let proc: ChildProcess | undefined;

  const launch = async () => {
    const fd = openSync(logFile, 'a');
    proc = spawn(
      join(binDir, 'immudb'),
      [
        '--dir', join(dataDir, 'data'),
        '--address', '127.0.0.1',
        '--port', String(port),
        '--admin-password', password,
        '--force-admin-password',
        '--metrics-server=false',
        '--pgsql-server=false',
        '--web-server=false',
        '--grpc-reflection=false',
        '--logdir', dataDir,
        ...(opts.args ?? []),
      ],
      { stdio: ['ignore', fd, fd], cwd: dataDir },
    );
    closeSync(fd);
    await waitForPort('127.0.0.1', port, 30_000, proc);
  };

  const stop = async () => {
    const p = proc;
    proc = undefined;
    // A process killed by a signal has exitCode null: its 'exit' has been and gone as well.
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    await new Promise<void>((res) => {
      const timer = setTimeout(() => p.kill('SIGKILL'), 10_000);
      p.once('exit', () => {
        clearTimeout(timer);
        res();
      });
      p.kill('SIGTERM');
    });
  };

  await launch();
  return {
    host: '127.0.0.1',
    port,
    username: 'immudb',
    password,
    dataDir,
    binDir,
    stop,
    restart: async () => {
      await stop();
      await launch();
    },
    dispose: async () => {
      await stop();
      if (ownDir) rmSync(dataDir, { recursive: true, force: true });
    },
    log: () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : ''),
  };
}

// ---- Replication (immudb 1.11: configured per database) ----------------------------------------

/** An admin session on `server`'s defaultdb, for database administration. */
async function admin(server: ImmudbServer) {
  const { ImmudbClient } = await import('../../plugin/store/immudb-client.js');
  return ImmudbClient.connect({ host: server.host, port: server.port, username: server.username, password: server.password, database: 'defaultdb' });
}

export interface ReplicationOptions {
  /** Synchronous replication (`--replication-sync-enabled`); set on the primary and its replicas. */
  sync?: boolean;
  /** With `sync` on the primary: replicas that must hold a transaction before it commits (`--replication-sync-acks`). */
  syncAcks?: number;
}

/** Creates `database` on `server` as a primary (what `immuadmin database create` does). */
export async function createPrimaryDatabase(server: ImmudbServer, database: string, opts: ReplicationOptions = {}): Promise<void> {
  const c = await admin(server);
  try {
    await c.createDatabase(database, opts.sync ? { replicationSettings: { replica: { value: false }, syncReplication: { value: true }, syncAcks: { value: opts.syncAcks ?? 1 } } } : {});
  } finally {
    await c.close();
  }
}

/**
 * Creates `database` on `replica` as an asynchronous (or, with `sync`, synchronous) replica of
 * the same database on `primary` (`immuadmin database create <db> --replication-is-replica
 * --replication-primary-host ...`). The replica has its own server identity (UUID).
 */
export async function createReplicaDatabase(replica: ImmudbServer, primary: ImmudbServer, database: string, opts: ReplicationOptions = {}): Promise<void> {
  const c = await admin(replica);
  try {
    await c.createDatabase(database, {
      replicationSettings: {
        replica: { value: true },
        primaryDatabase: { value: database },
        primaryHost: { value: primary.host },
        primaryPort: { value: primary.port },
        primaryUsername: { value: primary.username },
        primaryPassword: { value: primary.password },
        ...(opts.sync ? { syncReplication: { value: true } } : {}),
      },
    });
  } finally {
    await c.close();
  }
}

/** Promotes a replica: its database accepts writes from now on (`--replication-is-replica=false`). */
export async function promoteReplica(replica: ImmudbServer, database: string): Promise<void> {
  const c = await admin(replica);
  try {
    await c.updateDatabase(database, { replicationSettings: { replica: { value: false }, syncReplication: { value: false } } });
  } finally {
    await c.close();
  }
}

/** The database's current tx id on `server`. */
export async function currentTx(server: ImmudbServer, database: string): Promise<number> {
  const { ImmudbClient } = await import('../../plugin/store/immudb-client.js');
  const c = await ImmudbClient.connect({ host: server.host, port: server.port, username: server.username, password: server.password, database });
  try {
    return Number((await c.currentState()).txId);
  } finally {
    await c.close();
  }
}

/** Waits until `server` holds at least tx `txId` of `database` (a replica catching up). */
export async function waitForTx(server: ImmudbServer, database: string, txId: number, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const at = await currentTx(server, database).catch(() => -1);
    if (at >= txId) return;
    if (Date.now() > deadline) throw new Error(`${server.host}:${server.port} ${database} is at tx ${at}, not ${txId}, after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
