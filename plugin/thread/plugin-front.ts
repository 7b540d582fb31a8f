// The Plugin class kong-js-pluginserver instantiates. By default it makes the one PDK call on
// the thread that answers Kong and hands the rest to the audit thread (docs/decisions.md #13):
// that thread is where capture, the spool, proofs and spans cost CPU, not the event loop that
// serves Kong's RPCs. IMMUDB_AUDIT_THREAD=off runs the handler in process instead.
// With IMMUDB_AUDIT_FAIL_CLOSED=on the class has an access phase too (decisions #32): a fail-closed
// route is answered 503 from a flag the audit side keeps current; nothing else happens there.
import { createRequire } from 'node:module';
import { redactSecretFields } from '../capture/secret-refs.js';
import { serializeLog, type KongLogPdk } from '../capture/kong-log.js';
import { auditThread } from './audit-thread-client.js';
import { createLogger } from '../log.js';
import { GATE_OPEN } from '../pipeline/fail-closed-gate.js';
import { failClosedSwitch, processSettings, readSettings } from '../settings.js';

const logger = createLogger('plugin');

interface Handler {
  log(kong: KongLogPdk): Promise<void>;
  /** A fail-closed route's gate: non-zero while its requests must be answered 503. */
  readonly gate?: Int32Array | undefined;
}

/** The PDK call a refused request makes (kong-pdk does not wait for an answer: Kong never sends one). */
export interface KongAccessPdk {
  response: { exit(status: number, body?: unknown, headers?: Record<string, string>): Promise<unknown> };
}

/**
 * What a refused request gets: no reason (it would tell an attacker which part of the audit path
 * failed; operators have the log, /status and metrics), and a hint when to come back.
 */
export const FAIL_CLOSED_STATUS = 503;
export const FAIL_CLOSED_BODY = Object.freeze({ message: 'Service temporarily unavailable: requests to this route cannot be audited right now' });
export const FAIL_CLOSED_HEADERS = Object.freeze({ 'Retry-After': '5' });

/** Whether the plugin declares Kong's access phase: IMMUDB_AUDIT_FAIL_CLOSED on, or off (default). */
export const failClosedEnabled = failClosedSwitch;

/** Log events of a fail-closed instance without any access event before the mismatch is reported. */
const NO_ACCESS_WARNING_AFTER = 100;

/** Kong validated the configuration: `fail_closed.enabled` is a boolean when present. */
function failClosedRequested(rawConfig: Record<string, unknown>): boolean {
  const fc = rawConfig.fail_closed;
  return typeof fc === 'object' && fc !== null && (fc as { enabled?: unknown }).enabled === true;
}

/** Whether instances run in the audit thread: IMMUDB_AUDIT_THREAD on (default) or off. */
export function auditThreadEnabled(env?: NodeJS.ProcessEnv): boolean {
  return (env ? readSettings(env) : processSettings()).auditThread;
}

let nextInstance = 0;
// An instance Kong dropped (CloseInstance, expiry) is dropped in the thread too.
const closed = new FinalizationRegistry<number>((instance) => auditThread().closeInstance(instance));

/** One plugin instance whose handler lives in the audit thread. */
class ThreadedInstance implements Handler {
  private readonly instance = ++nextInstance;
  readonly gate: Int32Array | undefined;

  constructor(rawConfig: Record<string, unknown>) {
    const gate = failClosedRequested(rawConfig) ? new SharedArrayBuffer(4) : undefined;
    this.gate = gate && new Int32Array(gate);
    try {
      auditThread().startInstance(this.instance, structuredClone(rawConfig), gate);
    } finally {
      // kong-pdk echoes this object back to Kong: no secret in it, as in process.
      redactSecretFields(rawConfig);
    }
    closed.register(this, this.instance);
  }

  async log(kong: KongLogPdk): Promise<void> {
    const { raw, failure } = await serializeLog(kong);
    await auditThread().log(this.instance, raw, failure);
  }
}

/** The in-process handler, loaded only when asked for (it pulls in gRPC and OpenTelemetry). */
function inProcessPlugin(): new (config: Record<string, unknown>) => Handler {
  return (createRequire(import.meta.url)('../handler.js') as { Plugin: new (config: Record<string, unknown>) => Handler }).Plugin;
}

/** The plugin without an access phase: what Kong gets unless IMMUDB_AUDIT_FAIL_CLOSED=on. */
export class LogPlugin {
  protected readonly handler: Handler;
  /** A fail-closed route Kong has called the access phase for (see log()). */
  protected sawAccess = false;
  /** Log events of a fail-closed route before its first access event. */
  private logsWithoutAccess = 0;

  constructor(rawConfig: Record<string, unknown>) {
    const failClosed = failClosedRequested(rawConfig);
    try {
      this.handler = auditThreadEnabled() ? new ThreadedInstance(rawConfig) : new (inProcessPlugin())(rawConfig);
    } catch (e) {
      // Kong logs "starting instance" too, but lets the route's requests through (Kong#8546):
      // say it here as well, once per reason (reasons name fields, never values).
      const msg = e instanceof Error ? e.message : String(e);
      logger.once('error', `start:${msg}`, `instance not started, the requests of its route are not audited until the configuration is fixed: ${msg}`);
      throw e;
    }
    if (failClosed && !(this instanceof AccessPlugin)) {
      logger.once('error', 'fail-closed-off', 'fail_closed.enabled is set on a route but the plugin server runs without IMMUDB_AUDIT_FAIL_CLOSED=on, so Kong never calls the access phase: the route is served while auditing fails (fail-open). Set IMMUDB_AUDIT_FAIL_CLOSED=on for Kong and the plugin server and restart Kong');
    }
  }

  log(kong: KongLogPdk): Promise<void> {
    if (this.handler.gate && !this.sawAccess && ++this.logsWithoutAccess === NO_ACCESS_WARNING_AFTER) {
      // Kong read the plugin's phases once, at its start, from the query command: if that ran
      // without IMMUDB_AUDIT_FAIL_CLOSED=on, Kong does not know this plugin has an access phase.
      // (A request that a plugin running before this one answered, say a 401, has a log phase
      // and no access phase here: hence a count, not the first one.)
      logger.once('error', 'fail-closed-no-access', `a fail-closed route had ${NO_ACCESS_WARNING_AFTER} requests in the log phase and none in the access phase: Kong most likely read the plugin's phases without IMMUDB_AUDIT_FAIL_CLOSED=on (pluginserver query command) and serves the route fail-open; set it where Kong runs and restart Kong`);
    }
    return this.handler.log(kong);
  }
}

/** The plugin with an access phase, for fail-closed routes (IMMUDB_AUDIT_FAIL_CLOSED=on). */
export class AccessPlugin extends LogPlugin {
  /**
   * Every request of every route with the plugin passes here (one RPC from Kong): one atomic read
   * of a flag the audit side keeps current, never a wait for the audit thread.
   */
  async access(kong: KongAccessPdk): Promise<void> {
    const gate = this.handler.gate;
    if (gate === undefined) return;
    this.sawAccess = true;
    if (Atomics.load(gate, 0) === GATE_OPEN) return;
    await kong.response.exit(FAIL_CLOSED_STATUS, FAIL_CLOSED_BODY, FAIL_CLOSED_HEADERS);
  }
}

/** What kong-pdk loads: its phases (the class's methods) are what Kong calls. */
export const Plugin: typeof LogPlugin = failClosedEnabled() ? AccessPlugin : LogPlugin;
