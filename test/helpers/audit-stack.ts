// A real stack for integration tests and the demo: immudb, the plugin server running the built
// plugin (dist/kong-plugins), and helpers to read back what landed in immudb.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, startImmudb, type ImmudbServer } from '../../scripts/lib/immudb-server.js';
import { ImmudbClient } from '../../plugin/store/immudb-client.js';
import type { Entry } from '../../plugin/store/immudb-types.js';
import { KongRpcClient, projectRoot, startPluginServer, type PluginServerProcess } from './kong-driver.js';

const run = promisify(execFile);

export const PLUGIN_NAME = 'immudb-audit';
export const pluginDir = () => join(projectRoot(), 'dist', 'kong-plugins');

export interface AuditStack {
  immudb: ImmudbServer;
  server: PluginServerProcess;
  rpc: KongRpcClient;
  /** Private data dir of the plugin server (trusted state, spool). */
  dataDir: string;
  /** The port of /metrics and /status, with `metrics: true`. */
  metricsPort?: number;
  /** A plugin config pointing at this stack's immudb. */
  config(over?: Record<string, unknown>): Record<string, unknown>;
  client(database: string): Promise<ImmudbClient>;
  dispose(): Promise<void>;
}

/** `metrics: true` serves /metrics and /status on a free port (IMMUDB_AUDIT_METRICS_PORT). */
export async function startAuditStack(opts: { env?: NodeJS.ProcessEnv; immudbArgs?: string[]; metrics?: boolean } = {}): Promise<AuditStack> {
  const metricsPort = opts.metrics ? await freePort() : undefined;
  const immudb = await startImmudb(opts.immudbArgs ? { args: opts.immudbArgs } : {});
  const dataDir = mkdtempSync(join(tmpdir(), 'kia-plugin-data-'));
  let server: PluginServerProcess;
  try {
    const metricsEnv = metricsPort !== undefined ? { IMMUDB_AUDIT_METRICS_PORT: String(metricsPort) } : {};
    server = await startPluginServer({ pluginsDir: pluginDir(), env: { IMMUDB_AUDIT_DATA_DIR: dataDir, ...metricsEnv, ...opts.env } });
  } catch (e) {
    await immudb.dispose();
    throw e;
  }
  const rpc = new KongRpcClient(server.socketPath);
  const clients: ImmudbClient[] = [];
  return {
    immudb,
    server,
    rpc,
    dataDir,
    metricsPort,
    config: (over = {}) => ({
      immudb_host: immudb.host,
      immudb_port: immudb.port,
      immudb_username: immudb.username,
      immudb_password: immudb.password,
      immudb_database: 'defaultdb',
      ...over,
    }),
    async client(database) {
      // The plugin creates its database on its first write: wait for it.
      const deadline = Date.now() + 30_000;
      for (;;) {
        try {
          const c = await ImmudbClient.connect({ host: immudb.host, port: immudb.port, username: immudb.username, password: immudb.password, database });
          clients.push(c);
          return c;
        } catch (e) {
          if (Date.now() > deadline || !/database does not exist/.test((e as Error).message)) throw e;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    },
    async dispose() {
      rpc.close();
      await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
      await server.dispose().catch(() => undefined);
      await immudb.dispose();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Every entry under a key prefix (paged scan). */
export function scanAll(client: ImmudbClient, prefix: string): Promise<Entry[]> {
  return client.scanPrefix(Buffer.from(prefix));
}

/** Polls until `count` entries exist under the prefix (or fails after timeoutMs). */
export async function waitForEntries(client: ImmudbClient, prefix: string, count: number, timeoutMs = 60_000): Promise<Entry[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const entries = await scanAll(client, prefix);
    if (entries.length >= count) return entries;
    if (Date.now() > deadline) throw new Error(`only ${entries.length} of ${count} entries under ${prefix} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Runs immudb's own immuclient one-shot, with a private HOME and working dir (token, state). */
export async function immuclient(immudb: ImmudbServer, database: string, ...args: string[]): Promise<string> {
  const home = mkdtempSync(join(tmpdir(), 'kia-immuclient-'));
  try {
    const { stdout } = await run(
      join(immudb.binDir, 'immuclient'),
      [...args, '--username', immudb.username, '--password', immudb.password, '--database', database, '-a', immudb.host, '-p', String(immudb.port)],
      { env: { ...process.env, HOME: home }, cwd: home, maxBuffer: 64 * 1024 * 1024 },
    );
    return stdout;
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

/** Parses immuclient's `key: ... value: ...` blocks. */
export function parseImmuclient(out: string): Array<{ tx: number; key: string; value: string; verified?: boolean }> {
  return out
    .split(/\n\s*\n/)
    .map((block) => {
      const field = (name: string) => new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(block)?.[1];
      const key = field('key');
      if (key === undefined) return undefined;
      const verified = field('verified');
      return { tx: Number(field('tx')), key, value: field('value') ?? '', ...(verified !== undefined ? { verified: verified === 'true' } : {}) };
    })
    .filter((x): x is { tx: number; key: string; value: string; verified?: boolean } => x !== undefined);
}

/** Runs tasks with at most `n` in flight. */
export async function mapLimit<T, R>(items: readonly T[], n: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  }));
  return out;
}
