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
    if (!p || p.exitCode !== null) return;
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
