// Process-wide sharing: one pipeline (spool, writer) per immudb destination (host, port,
// database), shared by every configuration that writes there, so their proofs chain through
// one trusted state with one writer. A configuration whose connection settings (credentials,
// TLS, server key) differ from the writer's replaces them: Kong starts an instance with the new
// configuration before closing the old one, so the newest is the one the operator wants.
// Also the process shutdown hook that flushes everything.
import { join } from 'node:path';
import { isMainThread } from 'node:worker_threads';
import { canonicalJson } from '../capture/canonical-json.js';
import type { PluginConfig } from '../config/config.js';
import { createLogger, type Logger } from '../log.js';
import { flushThenExitOnSignal } from '../exit-on-signal.js';
import { readProcessSettings, type ProcessSettings } from './process-settings.js';
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
  /** Per destination: the first configuration (pipeline settings) and the one whose connection the writer uses. */
  private readonly firstConfigs = new Map<string, PluginConfig>();
  private readonly connectionConfigs = new Map<string, PluginConfig>();
  /** Directories that passed the path check (plugin/pipeline/path-check.ts). */
  private readonly checked = new Set<string>();
  private hooked = false;
  readonly logger: Logger = createLogger('pipeline');
  readonly metrics = new AuditMetrics();
  private metricsStarted = false;
  private tracer: AuditTracing | null | undefined;

  /** The process's tracing (created on first use; null when OTEL_SDK_DISABLED=true). */
  tracing(): AuditTracing | null {
    if (this.tracer === undefined) this.tracer = AuditTracing.fromEnv(process.env, createLogger('tracing'));
    return this.tracer;
  }

  constructor(readonly settings: ProcessSettings = readProcessSettings()) {}

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
      p = this.create(config);
      this.pipelines.set(key, p);
      this.firstConfigs.set(key, config);
      this.connectionConfigs.set(key, config);
      this.metrics.track(describe(config), p);
      this.hookShutdown();
      this.startMetrics();
    } else {
      // Settings of the pipeline itself come from the first configuration of a destination.
      const first = this.firstConfigs.get(key)!;
      for (const [what, a, b] of [
        ['queue', first.queue, config.queue],
        ['spool', [first.spool_dir, first.spool_max_bytes, first.spool_fsync], [config.spool_dir, config.spool_max_bytes, config.spool_fsync]],
      ] as const) {
        if (canonicalJson(a) !== canonicalJson(b)) {
          this.logger.once('warn', `${what}-settings-${key}`, `configurations writing to ${describe(config)} differ in their ${what} settings; the first one's apply to all of them`);
        }
      }
      this.reconnectIfChanged(key, p, config);
    }
    return p;
  }

  /**
   * The newest configuration's connection settings replace the writer's when they differ; the
   * writer applies them between two writes and reconnects. Entries stay in the spool, in order.
   */
  private reconnectIfChanged(key: string, p: AuditPipeline, config: PluginConfig) {
    const current = this.connectionConfigs.get(key)!;
    const changed = connectionSettings(current).filter(([, v], i) => canonicalJson(v) !== canonicalJson(connectionSettings(config)[i]![1])).map(([name]) => name);
    if (!changed.length) return;
    // Throws on a malformed server key: the new instance fails, the writer keeps its settings.
    void p.writer.reconfigure(immudbConnection(config), config.server_public_key).catch(() => undefined);
    this.connectionConfigs.set(key, config);
    this.logger.info(`configuration of ${describe(config)} changed (${changed.join(', ')}): the writer reconnects with the new settings`);
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
      addresses: immudbAddresses(config),
      log: config.immudb_log_name ?? config.immudb_database,
      replicaAcks: config.immudb_replica_acks,
      replicaAckTimeoutMs: config.immudb_replica_ack_timeout * 1000,
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
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      this.logger.error(`IMMUDB_AUDIT_METRICS_PORT must be a port number, got ${JSON.stringify(process.env.IMMUDB_AUDIT_METRICS_PORT)}; no metrics endpoint`);
      return;
    }
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
 * Where a configuration's entries go: one pipeline, spool and writer per destination. The user
 * is not part of it: a new user for the same database is a new connection of the same writer,
 * never a second writer on the same trusted state.
 */
function destinationKey(c: PluginConfig): string {
  return [...immudbAddresses(c).map((a) => `${a.host}:${a.port}`), c.immudb_database].join('\u0000');
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
