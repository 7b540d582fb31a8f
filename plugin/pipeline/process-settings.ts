// Process-wide settings of the plugin server, from its environment (read once). Light on
// purpose: the thread that answers Kong reads them without loading the pipeline.
import { homedir, hostname } from 'node:os';
import { join } from 'node:path';

export interface ProcessSettings {
  /** Where the writer's trusted state (and, by default, the spool) lives. */
  dataDir: string;
  /** Default spool root when a configuration sets no spool_dir, and the variable that set it. */
  spoolDir: string;
  spoolDirFrom: 'IMMUDB_AUDIT_SPOOL_DIR' | 'IMMUDB_AUDIT_DATA_DIR';
  nodeId: string | null;
  hostname: string;
  /** Opt-in Prometheus endpoint. */
  metricsPort: number | null;
  metricsHost: string;
  shutdownTimeoutMs: number;
}

/** Process-wide settings come from the environment, read once. */
export function readProcessSettings(env: NodeJS.ProcessEnv = process.env): ProcessSettings {
  const dataDir = env.IMMUDB_AUDIT_DATA_DIR || join(homedir(), '.kong-immudb-audit');
  return {
    dataDir,
    spoolDir: env.IMMUDB_AUDIT_SPOOL_DIR || join(dataDir, 'spool'),
    spoolDirFrom: env.IMMUDB_AUDIT_SPOOL_DIR ? 'IMMUDB_AUDIT_SPOOL_DIR' : 'IMMUDB_AUDIT_DATA_DIR',
    nodeId: env.IMMUDB_AUDIT_NODE_ID || env.KONG_NODE_ID || null,
    metricsPort: env.IMMUDB_AUDIT_METRICS_PORT ? Number(env.IMMUDB_AUDIT_METRICS_PORT) : null,
    metricsHost: env.IMMUDB_AUDIT_METRICS_HOST || '127.0.0.1',
    hostname: hostname(),
    shutdownTimeoutMs: Number(env.IMMUDB_AUDIT_SHUTDOWN_TIMEOUT_MS || 10_000),
  };
}

