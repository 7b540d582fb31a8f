// Process-wide sharing: one pipeline (spool, writer) per immudb destination (its first address
// and database, which name its spool), shared by every configuration that writes there, so their
// proofs chain through one trusted state with one writer. The newest configuration's settings
// replace the pipeline's where that is safe (connection, replica and queue settings, the spool's
// size and fsync): Kong starts an instance with the new configuration before closing the old
// one, so the newest is the one the operator wants. What would move entries or trust elsewhere
// (spool_dir, immudb_log_name, the first address) waits for a restart, with a warning.
// Also the process shutdown hook that flushes everything.
import { join } from 'node:path';
import { isMainThread } from 'node:worker_threads';
import { canonicalJson } from '../capture/canonical-json.js';
import type { PluginConfig } from '../config/config.js';
import { createLogger, type Logger } from '../log.js';
import { flushThenExitOnSignal } from '../exit-on-signal.js';
import { processSettings, type ProcessSettings } from '../settings.js';
import { checkDirectory, checkDirectorySync } from './path-check.js';
import { AuditWriter } from '../store/audit-writer.js';
import { immudbConnection } from './connection.js';
import { immudbAddresses } from '../config/fields/connection.js';
import { AuditPipeline } from './audit-pipeline.js';
import { stopCoverage } from './lifecycle.js';
import { Spool } from './spool.js';
import { adoptLegacySpool } from './legacy-spool.js';
import { AuditMetrics } from '../telemetry/metrics.js';
import { AuditTracing } from '../telemetry/tracing.js';

export class PipelineRegistry {
  private readonly pipelines = new Map<string, AuditPipeline>();
  /** Per destination: the configuration whose settings the pipeline runs with now. */
  private readonly applied = new Map<string, PluginConfig>();
  /** Per audit log (trusted state): the destination whose writer holds it. */
  private readonly logs = new Map<string, string>();
  /** Directories that passed the path check (plugin/pipeline/path-check.ts). */
  private readonly checked = new Set<string>();
  private hooked = false;
  readonly logger: Logger = createLogger('pipeline');
  readonly metrics = new AuditMetrics();
  private metricsStarted = false;
  private tracer: AuditTracing | null | undefined;

  /** The process's tracing (created on first use; null when OTEL_SDK_DISABLED=true). */
  tracing(): AuditTracing | null {
    if (this.tracer === undefined) this.tracer = AuditTracing.fromEnv(createLogger('tracing'));
    return this.tracer;
  }

  constructor(readonly settings: ProcessSettings = processSettings()) {}

  /**
   * Checks (and creates) the directories a new destination of `config` would use, with async
   * calls under a deadline: the audit thread awaits this before get(), so a bad path fails the
   * instance with the reason and never blocks the thread. Nothing to do for a known destination.
   */
  async checkPaths(config: PluginConfig): Promise<void> {
    if (this.pipelines.has(destinationKey(config))) return;
    for (const [dir, what] of this.directories(config)) {
      if (this.checked.has(dir)) continue;
      await checkDirectory(dir, what);
      this.checked.add(dir);
    }
  }

  /** The directories of a destination, each with the setting that names it (for the reason). */
  private directories(config: PluginConfig): Array<[string, string]> {
    return [
      [this.stateDir(), 'IMMUDB_AUDIT_DATA_DIR'],
      [this.spoolDir(config), config.spool_dir !== null ? 'spool_dir' : this.settings.spoolDirFrom],
    ];
  }

  private stateDir(): string {
    return join(this.settings.dataDir, 'trusted-state');
  }

  private spoolDir(config: PluginConfig): string {
    const root = config.spool_dir ?? this.settings.spoolDir;
    const [first] = immudbAddresses(config);
    return join(root, safeDirName(`${first!.host}_${first!.port}_${config.immudb_database}`));
  }

  /**
   * The pipeline of this configuration's destination, created on first use: its directories
   * are checked first (with bounded sync calls unless checkPaths() did it), then opening it
   * replays whatever the spool still holds. Throws with the reason when either fails.
   */
  get(config: PluginConfig): AuditPipeline {
    const key = destinationKey(config);
    let p = this.pipelines.get(key);
    if (!p) {
      // One writer per trusted state: a second destination for the same log would be a second.
      const log = logName(config);
      const holder = this.logs.get(log);
      if (holder !== undefined) {
        throw new Error(`the audit log ${JSON.stringify(log)} is already written by this plugin server to ${describe(this.applied.get(holder)!)}, and one trusted state has one writer: ` +
          `to move it to ${describe(config)} (another first address or database), restart the plugin server (entries still in the old spool are replayed only from the old destination); ` +
          'for another audit log, set immudb_log_name');
      }
      p = this.create(config);
      this.pipelines.set(key, p);
      this.applied.set(key, config);
      this.logs.set(log, key);
      this.metrics.track(describe(config), p);
      this.hookShutdown();
      this.startMetrics();
    } else {
      this.applyChanges(key, p, config);
    }
    return p;
  }

  /**
   * The newest configuration's settings replace the pipeline's where that is safe: the writer
   * takes connection and replica settings between two writes (and reconnects), the queue and
   * the spool's limits apply from the next entry or batch. Entries stay in the spool, in order,
   * and are written once whatever changes. What would move them (spool_dir) or the trust
   * (immudb_log_name) needs a restart and is only warned about.
   */
  private applyChanges(key: string, p: AuditPipeline, config: PluginConfig) {
    const current = this.applied.get(key)!;
    const differs = (fields: Array<[string, unknown, unknown]>) => fields.filter(([, a, b]) => canonicalJson(a ?? null) !== canonicalJson(b ?? null)).map(([name]) => name);
    const pairs = (f: (c: PluginConfig) => Array<[string, unknown]>) => f(current).map(([name, v], i) => [name, v, f(config)[i]![1]] as [string, unknown, unknown]);
    const connection = differs(pairs(connectionSettings));
    const replicas = differs(pairs(replicaSettings));
    const queue = differs(Object.keys({ ...current.queue, ...config.queue }).map((k) => [`queue.${k}`, (current.queue as unknown as Record<string, unknown>)[k], (config.queue as unknown as Record<string, unknown>)[k]]));
    const spool = differs([['spool_max_bytes', current.spool_max_bytes, config.spool_max_bytes], ['spool_fsync', current.spool_fsync, config.spool_fsync]]);
    const restart = differs([['spool_dir', current.spool_dir, config.spool_dir], ['immudb_log_name', logName(current), logName(config)]]);
    for (const name of restart) {
      this.logger.once('warn', `restart-${name}-${key}`, `${name} of ${describe(config)} changed: it takes effect when the plugin server restarts (the spool and the trusted state stay where they are until then)`);
    }
    const next = { ...config, spool_dir: current.spool_dir, immudb_log_name: current.immudb_log_name, immudb_database: current.immudb_database };
    if (connection.length || replicas.length) {
      // Throws on a malformed server key: the new instance fails, the writer keeps its settings.
      void p.writer.reconfigure(immudbConnection(config), config.server_public_key, replicaOptions(config)).catch(() => undefined);
      this.logger.info(`configuration of ${describe(config)} changed (${[...connection, ...replicas].join(', ')}): the writer reconnects with the new settings`);
    }
    if (queue.length) {
      p.setQueue(config.queue);
      this.logger.info(`queue settings of ${describe(config)} changed (${queue.join(', ')}): they apply from the next batch`);
    }
    if (spool.length) {
      p.spool.setLimits({ maxBytes: config.spool_max_bytes, fsync: config.spool_fsync });
      this.logger.info(`spool settings of ${describe(config)} changed (${spool.join(', ')}): they apply to the entries spooled from now on`);
    }
    this.applied.set(key, next);
  }

  private create(config: PluginConfig): AuditPipeline {
    // Nothing below may see an unchecked path: Spool.open and the trusted state create their
    // directories with mkdir({ recursive: true }), which never returns on /proc.
    for (const [dir, what] of this.directories(config)) {
      if (this.checked.has(dir)) continue;
      checkDirectorySync(dir, what);
      this.checked.add(dir);
    }
    const logger = createLogger(`pipeline ${describe(config)}`);
    // The writer first: a bad setting (e.g. a malformed key) must fail before the spool is locked.
    const writer = new AuditWriter({
      connection: immudbConnection(config),
      log: logName(config),
      ...replicaOptions(config),
      stateDir: this.stateDir(),
      serverPublicKey: config.server_public_key,
      logger,
    });
    adoptLegacySpool(this.spoolDir(config), `${this.spoolDir(config)}_${safeDirName(config.immudb_username)}`, logger);
    const spool = Spool.open({
      dir: this.spoolDir(config),
      maxBytes: config.spool_max_bytes,
      fsync: config.spool_fsync,
      logger,
    });
    const destination = describe(config);
    const tracing = this.tracing();
    return new AuditPipeline(
      config.queue,
      spool,
      writer,
      logger,
      (_batch, _res, ms) => this.metrics.writeSeconds.observe({ destination }, ms / 1000),
      tracing ? { tracing, destination: { ...immudbAddresses(config)[0]!, database: config.immudb_database } } : undefined,
    );
  }

  all(): AuditPipeline[] {
    return [...this.pipelines.values()];
  }

  async shutdown(): Promise<number> {
    // Each prefix's `stopping` lifecycle entry first, so the flush below writes it too.
    await Promise.all(this.all().map((p) => stopCoverage(p)));
    const left = await Promise.all(this.all().map((p) => p.shutdown(this.settings.shutdownTimeoutMs)));
    await Promise.all(this.all().map((p) => p.writer.close().catch(() => undefined)));
    await this.tracer?.shutdown();
    return left.reduce((a, b) => a + b, 0);
  }

  private startMetrics() {
    const port = this.settings.metricsPort;
    if (this.metricsStarted || port === null) return;
    this.metricsStarted = true;
    this.metrics.listen(port, this.settings.metricsHost, this.logger).catch(() => undefined);
  }

  /**
   * Flush before exit on SIGTERM/SIGINT. Signals reach the main thread only; in the audit
   * thread the main thread asks for shutdown() instead (plugin/thread/audit-thread-client.ts).
   */
  private hookShutdown() {
    if (this.hooked || !isMainThread) return;
    this.hooked = true;
    flushThenExitOnSignal(this.logger, () => this.shutdown());
  }
}

/**
 * Where a configuration's entries go: one pipeline, spool and writer per destination, named as
 * its spool is (the first address and the database). Neither the user nor the other addresses
 * are part of it: a new user or another replica list for the same database is a new setting of
 * the same writer, never a second writer on the same trusted state.
 */
function destinationKey(c: PluginConfig): string {
  const [first] = immudbAddresses(c);
  return [`${first!.host}:${first!.port}`, c.immudb_database].join('\u0000');
}

/** The audit log (trusted state) a configuration writes to. */
function logName(c: PluginConfig): string {
  return c.immudb_log_name ?? c.immudb_database;
}

/** The settings of a configuration that the writer's replica handling is made of. */
function replicaSettings(c: PluginConfig): Array<[string, unknown]> {
  return [
    ['immudb_addresses', immudbAddresses(c)],
    ['immudb_replica_acks', c.immudb_replica_acks],
    ['immudb_replica_ack_timeout', c.immudb_replica_ack_timeout],
  ];
}

function replicaOptions(c: PluginConfig) {
  return { addresses: immudbAddresses(c), replicaAcks: c.immudb_replica_acks, replicaAckTimeoutMs: c.immudb_replica_ack_timeout * 1000 };
}

/** The settings of a configuration that a writer's connection is made of (secrets compared, never logged). */
function connectionSettings(c: PluginConfig): Array<[string, unknown]> {
  return [
    ['immudb_username', c.immudb_username],
    ['immudb_password', c.immudb_password],
    ['create_database', c.create_database],
    ['tls', c.tls],
    ['server_public_key', c.server_public_key],
  ];
}

/** The first address names the destination (immudb_host:immudb_port unless immudb_addresses is set). */
function describe(c: PluginConfig): string {
  const [a] = immudbAddresses(c);
  return `${a!.host}:${a!.port}/${c.immudb_database}`;
}

function safeDirName(s: string): string {
  return s.replace(/[^A-Za-z0-9_.-]/g, '_');
}

let shared: PipelineRegistry | undefined;

/** The registry of this process (created on first use, not at module load). */
export function sharedRegistry(): PipelineRegistry {
  shared ??= new PipelineRegistry();
  return shared;
}
