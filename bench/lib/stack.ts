// What the benchmarks run against: a real immudb (scripts/lib/immudb-server.ts), real
// kong-js-pluginserver processes (test/helpers/kong-driver.ts) with bench/probe.ts preloaded,
// a Kong-like load generator, and a counter of entries committed and verified by the plugin.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { startImmudb, type ImmudbServer } from '../../scripts/lib/immudb-server.js';
import { ImmudbClient } from '../../plugin/store/immudb-client.js';
import { EntryTypeAction } from '../../plugin/store/immudb-types.js';
import { TrustedStateStore } from '../../plugin/store/trusted-state.js';
import { toSafeInt } from '../../plugin/store/longs.js';
import {
  KongRpcClient, fixturePluginDir, projectRoot, simulateWorkers, startPluginServer, NOOP_PLUGIN_NAME,
  type KongInstance, type PluginServerCommand, type PluginServerProcess,
} from '../../test/helpers/kong-driver.js';
import { findPid } from './proc.js';
import { sharedOtlpSink } from './otlp-sink.js';

export const AUDIT_PLUGIN = 'immudb-audit';
export const NOOP_PLUGIN = NOOP_PLUGIN_NAME;

const here = dirname(fileURLToPath(import.meta.url));
/** dist/bench/probe.js, next to this file's directory. */
export const PROBE_PATH = join(here, '..', 'probe.js');

export interface BenchImmudb extends ImmudbServer {
  pid: number | undefined;
  connect(database: string, createDatabase?: boolean): Promise<ImmudbClient>;
}

export async function startBenchImmudb(): Promise<BenchImmudb> {
  const s = await startImmudb();
  const pid = s.dataDir ? findPid('immudb', s.dataDir) : undefined;
  const clients: ImmudbClient[] = [];
  const dispose = s.dispose;
  const restart = s.restart;
  return Object.assign(s, {
    pid,
    async connect(database: string, createDatabase = true) {
      const c = await ImmudbClient.connect({ host: s.host, port: s.port, username: s.username, password: s.password, database, createDatabase });
      clients.push(c);
      return c;
    },
    dispose: async () => {
      await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
      await dispose();
    },
    restart: async () => {
      await restart();
      (s as BenchImmudb).pid = s.dataDir ? findPid('immudb', s.dataDir) : undefined;
    },
  });
}

export interface BenchServer {
  kind: 'noop' | 'audit';
  ps: PluginServerProcess;
  rpc: KongRpcClient;
  probeSock: string;
  dataDir: string;
  pid: number;
  dispose(): Promise<void>;
}

export interface ServerOptions {
  /** Extra node options for the plugin server (e.g. --expose-gc). */
  nodeOptions?: string[];
  env?: NodeJS.ProcessEnv;
  /** Plugin-server command (default ours, immudb-audit-pluginserver; 'kong-pdk' for kong-js-pluginserver). */
  command?: PluginServerCommand;
}

/** A plugin server with either the noop baseline plugin or ours (dist/kong-plugins), probe preloaded. */
export async function startBenchServer(kind: 'noop' | 'audit', opts: ServerOptions = {}): Promise<BenchServer> {
  const dataDir = mkdtempSync(join(tmpdir(), `kia-bench-${kind}-`));
  const probeSock = join(dataDir, 'probe.sock');
  const nodeOptions = [
    `--import=${pathToFileURL(PROBE_PATH).href}`,
    ...(opts.nodeOptions ?? []),
  ].join(' ');
  // The plugin's tracing is on by default: give its OTLP exporter a receiver that keeps up.
  const otlp = kind === 'audit' ? await sharedOtlpSink() : undefined;
  const ps = await startPluginServer({
    ...(opts.command ? { command: opts.command } : {}),
    pluginsDir: kind === 'noop' ? fixturePluginDir('noop-serialize') : join(projectRoot(), 'dist', 'kong-plugins'),
    env: {
      NODE_OPTIONS: nodeOptions,
      BENCH_PROBE_SOCK: probeSock,
      IMMUDB_AUDIT_DATA_DIR: dataDir,
      IMMUDB_AUDIT_LOG_LEVEL: 'warn',
      ...(otlp ? { OTEL_EXPORTER_OTLP_ENDPOINT: otlp.endpoint } : {}),
      ...opts.env,
    },
  });
  const rpc = new KongRpcClient(ps.socketPath);
  return {
    kind,
    ps,
    rpc,
    probeSock,
    dataDir,
    pid: ps.pid,
    async dispose() {
      await rpc.close().catch(() => undefined);
      await ps.dispose().catch(() => undefined);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** A plugin config for our plugin writing to `database` on `immudb`. */
export function auditConfig(immudb: ImmudbServer, database: string, over: Record<string, unknown> = {}, queue: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    immudb_host: immudb.host,
    immudb_port: immudb.port,
    immudb_username: immudb.username,
    immudb_password: immudb.password,
    immudb_database: database,
    create_database: true,
    key_prefix: 'bench',
    // Measured once the durable spool exists (issue 6): group commit is the production default.
    spool_fsync: 'group',
    ...over,
    queue: { max_batch_size: 256, max_coalescing_delay: 0.05, max_entries: 1_000_000, initial_retry_delay: 0.05, max_retry_delay: 1, ...queue },
  };
}

export async function startWorkers(server: BenchServer, n: number, config: Record<string, unknown>): Promise<KongInstance[]> {
  const name = server.kind === 'noop' ? NOOP_PLUGIN : AUDIT_PLUGIN;
  return simulateWorkers(server.rpc, n, name, server.kind === 'noop' ? {} : config);
}

export interface DriveOptions {
  /** Events in flight at once (Kong: log timers running across its workers). */
  concurrency: number;
  /** Stop after this many events... */
  count?: number;
  /** ...or after this long, whichever comes first. */
  durationMs?: number;
  /** Keep per-event latencies (ms). */
  latencies?: boolean;
}

export interface DriveResult {
  events: number;
  ms: number;
  latencies: Float64Array;
  errors: number;
  firstError?: string;
}

/**
 * Sends log events like Kong's workers do (HandleEvent, one Step answering kong.log.serialize
 * with a pool entry, until "ret"), `concurrency` at a time, round-robin over the workers.
 */
export async function drive(workers: KongInstance[], serialized: readonly string[], opts: DriveOptions): Promise<DriveResult> {
  const answers = serialized.map((json) => ({ 'kong.log.serialize': json }));
  const max = opts.count ?? Number.POSITIVE_INFINITY;
  const lat = opts.latencies ? new Float64Array(Number.isFinite(max) ? max : 2_000_000) : new Float64Array(0);
  let started = 0;
  let done = 0;
  let errors = 0;
  let firstError: string | undefined;
  const t0 = performance.now();
  const deadline = opts.durationMs === undefined ? Number.POSITIVE_INFINITY : t0 + opts.durationMs;
  await Promise.all(
    Array.from({ length: opts.concurrency }, async () => {
      while (started < max && performance.now() < deadline) {
        const i = started++;
        try {
          const r = await workers[i % workers.length]!.runLogEvent(answers[i % answers.length]!);
          if (opts.latencies && done < lat.length) lat[done] = r.durationMs;
          done++;
        } catch (e) {
          errors++;
          firstError ??= (e as Error).message;
        }
      }
    }),
  );
  const ms = performance.now() - t0;
  return { events: done, ms, latencies: lat.subarray(0, opts.latencies ? Math.min(done, lat.length) : 0), errors, ...(firstError ? { firstError } : {}) };
}

export interface Progress {
  at: number;
  committedTx: number;
  committedEntries: number;
  verifiedTx: number;
  verifiedEntries: number;
}

/**
 * Counts the audit entries (keys `<prefix>:entry:...`; trace-index keys and anything else in the
 * same transactions are not counted) the plugin has committed to a database, from the tx listings
 * (digests only), and those it has verified: up to the tx of the plugin's trusted state file.
 */
export class WriteCounter {
  private cum: number[] = [0];
  private readonly entryPrefix: Buffer;
  private constructor(readonly client: ImmudbClient, private readonly states: TrustedStateStore, keyPrefix: string) {
    // Stored keys carry immudb's one-byte prefix for plain keys (0x00).
    this.entryPrefix = Buffer.concat([Buffer.from([0]), Buffer.from(`${keyPrefix}:entry:`)]);
  }

  static async open(immudb: BenchImmudb, database: string, pluginDataDir: string, keyPrefix = 'bench'): Promise<WriteCounter> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        const c = await immudb.connect(database, false);
        return new WriteCounter(c, new TrustedStateStore(join(pluginDataDir, 'trusted-state')), keyPrefix);
      } catch (e) {
        if (Date.now() > deadline || !/database does not exist/.test((e as Error).message)) throw e;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  private async countUpTo(txId: number): Promise<void> {
    while (this.cum.length - 1 < txId) {
      const from = this.cum.length;
      const txs = await this.client.txScan(from, Math.min(64, txId - from + 1), EntryTypeAction.ONLY_DIGEST);
      if (txs.length === 0) break;
      for (const tx of txs) {
        let n = 0;
        for (const e of tx.entries ?? []) if (e.key.subarray(0, this.entryPrefix.length).equals(this.entryPrefix)) n++;
        this.cum.push(this.cum[this.cum.length - 1]! + n);
      }
    }
  }

  async poll(): Promise<Progress> {
    const st = await this.client.currentState();
    const committedTx = toSafeInt(st.txId, 'tx');
    await this.countUpTo(committedTx);
    let verifiedTx = 0;
    try {
      // The plugin's log is named after its database unless immudb_log_name says otherwise (decisions #23).
      verifiedTx = this.states.load(this.client.database, this.client.database)?.txId ?? 0;
    } catch {
      // being replaced right now (atomic rename): keep 0 for this poll
    }
    const c = Math.min(committedTx, this.cum.length - 1);
    const v = Math.min(verifiedTx, this.cum.length - 1);
    return { at: performance.now(), committedTx, committedEntries: this.cum[c]!, verifiedTx, verifiedEntries: this.cum[v]! };
  }

  /** Polls until `entries` are verified or the time is up; returns the last progress seen. */
  async waitVerified(entries: number, timeoutMs: number, intervalMs = 25): Promise<Progress> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const p = await this.poll();
      if (p.verifiedEntries >= entries || performance.now() > deadline) return p;
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export interface PacedResult {
  events: number;
  ms: number;
  /** Events that could not be sent on time because maxInFlight were already waiting. */
  late: number;
  errors: number;
  firstError?: string;
}

/**
 * Sends events at a fixed rate (open loop, like requests arriving at a gateway), spread over
 * ticks of 10 ms, at most `maxInFlight` outstanding; for comparing CPU per event at equal load.
 */
export async function drivePaced(workers: KongInstance[], serialized: readonly string[], opts: { rate: number; durationMs: number; maxInFlight?: number }): Promise<PacedResult> {
  const answers = serialized.map((json) => ({ 'kong.log.serialize': json }));
  const maxInFlight = opts.maxInFlight ?? 256;
  let sent = 0;
  let done = 0;
  let inFlight = 0;
  let late = 0;
  let errors = 0;
  let firstError: string | undefined;
  const pending = new Set<Promise<void>>();
  const t0 = performance.now();
  const fire = () => {
    const i = sent++;
    inFlight++;
    const p: Promise<void> = workers[i % workers.length]!.runLogEvent(answers[i % answers.length]!).then(
      () => {
        done++;
      },
      (e: Error) => {
        errors++;
        firstError ??= e.message;
      },
    ).finally(() => {
      inFlight--;
      pending.delete(p);
    });
    pending.add(p);
  };
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const elapsed = performance.now() - t0;
      if (elapsed >= opts.durationMs) {
        clearInterval(timer);
        resolve();
        return;
      }
      const due = Math.floor((elapsed / 1000) * opts.rate) - sent - late;
      for (let k = 0; k < due; k++) {
        if (inFlight >= maxInFlight) late++;
        else fire();
      }
    }, 10);
  });
  await Promise.all(pending);
  return { events: done, ms: performance.now() - t0, late, errors, ...(firstError ? { firstError } : {}) };
}
