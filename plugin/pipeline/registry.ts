// Process-wide sharing: one pipeline per configuration and one writer per immudb target
// (host, port, database, user), so all pipelines that write to one database chain their proofs
// through one trusted state. Also the process shutdown hook that flushes everything.
import { homedir, hostname } from 'node:os';
import { join } from 'node:path';
import { configKey, type PluginConfig } from '../config/config.js';
import { createLogger, type Logger } from '../log.js';
import { AuditWriter } from '../store/audit-writer.js';
import { AuditPipeline } from './audit-pipeline.js';

export interface ProcessSettings {
  /** Where trusted state (and later the spool) lives. */
  dataDir: string;
  nodeId: string | null;
  hostname: string;
  shutdownTimeoutMs: number;
}

/** Process-wide settings come from the environment, read once. */
export function readProcessSettings(env: NodeJS.ProcessEnv = process.env): ProcessSettings {
  return {
    dataDir: env.IMMUDB_AUDIT_DATA_DIR || join(homedir(), '.kong-immudb-audit'),
    nodeId: env.IMMUDB_AUDIT_NODE_ID || env.KONG_NODE_ID || null,
    hostname: hostname(),
    shutdownTimeoutMs: Number(env.IMMUDB_AUDIT_SHUTDOWN_TIMEOUT_MS || 10_000),
  };
}

export class PipelineRegistry {
  private readonly pipelines = new Map<string, AuditPipeline>();
  private readonly writers = new Map<string, AuditWriter>();
  private hooked = false;
  readonly logger: Logger = createLogger('pipeline');

  constructor(readonly settings: ProcessSettings = readProcessSettings()) {}

  get(config: PluginConfig): AuditPipeline {
    const key = configKey(config);
    let p = this.pipelines.get(key);
    if (!p) {
      p = new AuditPipeline(config, this.writerFor(config), this.logger);
      this.pipelines.set(key, p);
      this.hookShutdown();
    }
    return p;
  }

  private writerFor(config: PluginConfig): AuditWriter {
    const key = [config.immudb_host, config.immudb_port, config.immudb_database, config.immudb_username].join('\u0000');
    let w = this.writers.get(key);
    if (!w) {
      w = new AuditWriter({
        connection: {
          host: config.immudb_host,
          port: config.immudb_port,
          username: config.immudb_username,
          password: config.immudb_password,
          database: config.immudb_database,
          createDatabase: config.create_database,
        },
        stateDir: join(this.settings.dataDir, 'trusted-state'),
        logger: createLogger(`writer ${config.immudb_host}:${config.immudb_port}/${config.immudb_database}`),
      });
      this.writers.set(key, w);
    }
    return w;
  }

  all(): AuditPipeline[] {
    return [...this.pipelines.values()];
  }

  async flushAll(): Promise<void> {
    await Promise.all(this.all().map((p) => p.flush()));
  }

  async shutdown(): Promise<number> {
    const left = await Promise.all(this.all().map((p) => p.shutdown(this.settings.shutdownTimeoutMs)));
    await Promise.all([...this.writers.values()].map((w) => w.close().catch(() => undefined)));
    return left.reduce((a, b) => a + b, 0);
  }

  /** Kong stops the plugin server with SIGTERM (or SIGINT when run by hand): flush first. */
  private hookShutdown() {
    if (this.hooked) return;
    this.hooked = true;
    let stopping = false;
    const onSignal = (sig: NodeJS.Signals) => {
      if (stopping) return;
      stopping = true;
      this.logger.info(`${sig}: flushing audit entries before exit`);
      this.shutdown().finally(() => process.exit(0));
    };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
  }
}

let shared: PipelineRegistry | undefined;

/** The registry of this process (created on first use, not at module load). */
export function sharedRegistry(): PipelineRegistry {
  shared ??= new PipelineRegistry();
  return shared;
}
