// Process-wide sharing: one pipeline per configuration and one writer per immudb target
// (host, port, database, user), so all pipelines that write to one database chain their proofs
// through one trusted state. Also the process shutdown hook that flushes everything.
import { join } from 'node:path';
import { isMainThread } from 'node:worker_threads';
import { canonicalJson } from '../capture/canonical-json.js';
import type { PluginConfig } from '../config/config.js';
import { createLogger, type Logger } from '../log.js';
import { flushThenExitOnSignal } from '../exit-on-signal.js';
import { readProcessSettings, type ProcessSettings } from './process-settings.js';
import { AuditWriter } from '../store/audit-writer.js';
import { immudbTlsOptions } from '../config/fields/tls.js';
import { immudbAddresses } from '../config/fields/connection.js';
import { AuditPipeline } from './audit-pipeline.js';
import { Spool } from './spool.js';
import { AuditMetrics } from '../telemetry/metrics.js';
import { AuditTracing } from '../telemetry/tracing.js';

export class PipelineRegistry {
  private readonly pipelines = new Map<string, AuditPipeline>();
  private readonly firstConfigs = new Map<string, PluginConfig>();
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
   * The pipeline of this configuration's destination, created on first use: opening it
   * replays whatever the spool still holds. Throws when the spool cannot be opened.
   */
  get(config: PluginConfig): AuditPipeline {
    const key = destinationKey(config);
    let p = this.pipelines.get(key);
    if (!p) {
      p = this.create(config);
      this.pipelines.set(key, p);
      this.firstConfigs.set(key, config);
      this.metrics.track(describe(config), p);
      this.hookShutdown();
      this.startMetrics();
    } else {
      // Settings of the pipeline itself come from the first configuration of a destination.
      const first = this.firstConfigs.get(key)!;
      for (const [what, a, b] of [
        ['queue', first.queue, config.queue],
        ['spool', [first.spool_dir, first.spool_max_bytes, first.spool_fsync], [config.spool_dir, config.spool_max_bytes, config.spool_fsync]],
        ['tls', first.tls, config.tls],
        ['server_public_key', first.server_public_key, config.server_public_key],
      ] as const) {
        if (canonicalJson(a) !== canonicalJson(b)) {
          this.logger.once('warn', `${what}-settings-${key}`, `configurations writing to ${describe(config)} differ in their ${what} settings; the first one's apply to all of them`);
        }
      }
    }
    return p;
  }

  private create(config: PluginConfig): AuditPipeline {
    const logger = createLogger(`pipeline ${describe(config)}`);
    // The writer first: a bad setting (e.g. a malformed key) must fail before the spool is locked.
    const writer = new AuditWriter({
      connection: {
        ...immudbAddresses(config)[0]!,
        username: config.immudb_username,
        password: config.immudb_password,
        database: config.immudb_database,
        createDatabase: config.create_database,
        tls: immudbTlsOptions(config),
      },
      addresses: immudbAddresses(config),
      log: config.immudb_log_name ?? config.immudb_database,
      replicaAcks: config.immudb_replica_acks,
      replicaAckTimeoutMs: config.immudb_replica_ack_timeout * 1000,
      stateDir: join(this.settings.dataDir, 'trusted-state'),
      serverPublicKey: config.server_public_key,
      logger,
    });
    const spoolRoot = config.spool_dir ?? this.settings.spoolDir;
    const spool = Spool.open({
      dir: join(spoolRoot, safeDirName(`${immudbAddresses(config)[0]!.host}_${immudbAddresses(config)[0]!.port}_${config.immudb_database}_${config.immudb_username}`)),
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

  async flushAll(): Promise<void> {
    await Promise.all(this.all().map((p) => p.flush()));
  }

  async shutdown(): Promise<number> {
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

/** Where a configuration's entries go: one pipeline, spool and writer per destination. */
function destinationKey(c: PluginConfig): string {
  return [...immudbAddresses(c).map((a) => `${a.host}:${a.port}`), c.immudb_database, c.immudb_username].join('\u0000');
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
