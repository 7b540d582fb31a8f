// The plugin server's process-wide settings: the one module that reads its environment
// (IMMUDB_AUDIT_*, KONG_NODE_ID). Each variable is parsed and checked here, once, with a message
// that names the variable, the value and what is expected. The OTEL_* variables are not here:
// the OpenTelemetry SDK reads them itself (plugin/telemetry/tracing.ts). The auditor's CLI reads
// its own variables as defaults of its flags.
//
// Light on purpose (node: built-ins only): log.ts and hardening.ts read it when the plugin module
// loads, and the thread that answers Kong reads it without loading the pipeline.
import { homedir, hostname } from 'node:os';
import { join } from 'node:path';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface ProcessSettings {
  /** Where the writer's trusted state (and, by default, the spool) lives. */
  dataDir: string;
  /** Default spool root when a configuration sets no spool_dir, and the variable that set it. */
  spoolDir: string;
  spoolDirFrom: 'IMMUDB_AUDIT_SPOOL_DIR' | 'IMMUDB_AUDIT_DATA_DIR';
  /** where.node_id of every entry: IMMUDB_AUDIT_NODE_ID, else KONG_NODE_ID. */
  nodeId: string | null;
  hostname: string;
  /** Opt-in Prometheus endpoint. */
  metricsPort: number | null;
  metricsHost: string;
  shutdownTimeoutMs: number;
  logLevel: LogLevel;
  /** IMMUDB_AUDIT_THREAD: instances run in the audit thread (decisions #13). */
  auditThread: boolean;
  /** IMMUDB_AUDIT_UMASK: a mask to apply (tightening only), or keep the inherited one. */
  umask: number | 'inherit';
  /** IMMUDB_AUDIT_FAIL_CLOSED: the plugin declares Kong's access phase (decisions #32, #33). */
  failClosed: boolean;
}

/** One or more variables have values that mean nothing; every problem is in the message. */
export class SettingsError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join('; '));
    this.name = 'SettingsError';
  }
}

export const DEFAULT_UMASK = 0o077;
const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];

/**
 * Parses the environment. A variable whose value means nothing gets its default and a problem
 * (`problems`); unset and empty variables get their defaults silently.
 */
export function parseSettings(env: NodeJS.ProcessEnv): { settings: ProcessSettings; problems: string[] } {
  const problems: string[] = [];
  const value = (name: string): string | undefined => {
    const v = env[name]?.trim();
    return v ? v : undefined;
  };
  const bad = (name: string, expected: string) => problems.push(`${name} must be ${expected}, got ${JSON.stringify(env[name])}`);

  const dataDir = value('IMMUDB_AUDIT_DATA_DIR') ?? join(homedir(), '.kong-immudb-audit');
  const spoolDirSet = value('IMMUDB_AUDIT_SPOOL_DIR');

  let metricsPort: number | null = null;
  const port = value('IMMUDB_AUDIT_METRICS_PORT');
  if (port !== undefined) {
    if (/^\d+$/.test(port) && Number(port) >= 1 && Number(port) <= 65535) metricsPort = Number(port);
    else bad('IMMUDB_AUDIT_METRICS_PORT', 'a port number (1 to 65535)');
  }

  let shutdownTimeoutMs = 10_000;
  const timeout = value('IMMUDB_AUDIT_SHUTDOWN_TIMEOUT_MS');
  if (timeout !== undefined) {
    if (/^\d+$/.test(timeout) && Number(timeout) <= 3_600_000) shutdownTimeoutMs = Number(timeout);
    else bad('IMMUDB_AUDIT_SHUTDOWN_TIMEOUT_MS', 'a whole number of milliseconds (0 to 3600000)');
  }

  let logLevel: LogLevel = 'info';
  const level = value('IMMUDB_AUDIT_LOG_LEVEL')?.toLowerCase();
  if (level !== undefined) {
    if ((LOG_LEVELS as readonly string[]).includes(level)) logLevel = level as LogLevel;
    else bad('IMMUDB_AUDIT_LOG_LEVEL', 'one of debug, info, warn, error');
  }

  let auditThread = true;
  const thread = value('IMMUDB_AUDIT_THREAD')?.toLowerCase();
  if (thread !== undefined) {
    if (['off', 'false', '0'].includes(thread)) auditThread = false;
    else if (!['on', 'true', '1'].includes(thread)) bad('IMMUDB_AUDIT_THREAD', '"on" or "off"');
  }

  const onOff = (name: string, fallback: boolean): boolean => {
    const v = value(name)?.toLowerCase();
    if (v === undefined) return fallback;
    if (['off', 'false', '0'].includes(v)) return false;
    if (['on', 'true', '1'].includes(v)) return true;
    bad(name, '"on" or "off"');
    return fallback;
  };
  const failClosed = onOff('IMMUDB_AUDIT_FAIL_CLOSED', false);

  let umask: number | 'inherit' = DEFAULT_UMASK;
  const mask = value('IMMUDB_AUDIT_UMASK');
  if (mask !== undefined) {
    if (mask === 'inherit') umask = 'inherit';
    else if (/^0?[0-7]{3}$/.test(mask)) umask = parseInt(mask, 8);
    else bad('IMMUDB_AUDIT_UMASK', 'an octal mask such as 077, or "inherit"');
  }

  return {
    settings: {
      dataDir,
      spoolDir: spoolDirSet ?? join(dataDir, 'spool'),
      spoolDirFrom: spoolDirSet ? 'IMMUDB_AUDIT_SPOOL_DIR' : 'IMMUDB_AUDIT_DATA_DIR',
      nodeId: value('IMMUDB_AUDIT_NODE_ID') ?? value('KONG_NODE_ID') ?? null,
      hostname: hostname(),
      metricsPort,
      metricsHost: value('IMMUDB_AUDIT_METRICS_HOST') ?? '127.0.0.1',
      shutdownTimeoutMs,
      logLevel,
      auditThread,
      umask,
      failClosed,
    },
    problems,
  };
}

/** Throws SettingsError with every problem of `env`; the settings otherwise. */
export function readSettings(env: NodeJS.ProcessEnv): ProcessSettings {
  const { settings, problems } = parseSettings(env);
  if (problems.length) throw new SettingsError(problems);
  return settings;
}

let parsed: ReturnType<typeof parseSettings> | undefined;

/**
 * This process's settings, read once. Throws SettingsError when a variable is invalid: an
 * instance then fails to start with the reason (in Kong's error log), never runs on a guess.
 */
export function processSettings(): ProcessSettings {
  parsed ??= parseSettings(process.env);
  if (parsed.problems.length) throw new SettingsError(parsed.problems);
  return parsed.settings;
}

/**
 * The same settings, never throwing (defaults where a value is invalid): for what must happen
 * when the module loads (log level, umask), before any instance could report a problem.
 */
export function processSettingsLenient(): ProcessSettings {
  parsed ??= parseSettings(process.env);
  return parsed.settings;
}

/**
 * IMMUDB_AUDIT_FAIL_CLOSED alone, read when the plugin module loads (it decides the phases Kong
 * sees): a bad value fails the load with its message; other variables fail instances instead.
 */
export function failClosedSwitch(env: NodeJS.ProcessEnv = process.env): boolean {
  const { settings, problems } = parseSettings(env);
  const problem = problems.find((p) => p.startsWith('IMMUDB_AUDIT_FAIL_CLOSED '));
  if (problem) throw new Error(problem);
  return settings.failClosed;
}

/**
 * The plugin server's whole environment, for its exec of itself with its memory settings
 * (pluginserver/memory-flags.ts, decision #43): passed on as it is, with what that adds;
 * `IMMUDB_AUDIT_PLUGINSERVER_TUNED` set means done already, or the operator keeps V8's and
 * glibc's defaults.
 */
export function environmentForExec(): NodeJS.ProcessEnv {
  return process.env;
}
