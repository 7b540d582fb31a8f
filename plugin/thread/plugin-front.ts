// The Plugin class kong-js-pluginserver instantiates. By default it makes the one PDK call on
// the thread that answers Kong and hands the rest to the audit thread (docs/decisions.md #13):
// that thread is where capture, the spool, proofs and spans cost CPU, not the event loop that
// serves Kong's RPCs. IMMUDB_AUDIT_THREAD=off runs the handler in process instead.
import { createRequire } from 'node:module';
import { redactSecretFields } from '../capture/secret-refs.js';
import { serializeLog, type KongLogPdk } from '../capture/kong-log.js';
import { auditThread } from './audit-thread-client.js';
import { createLogger } from '../log.js';
import { processSettings, readSettings } from '../settings.js';

const logger = createLogger('plugin');

interface Handler {
  log(kong: KongLogPdk): Promise<void>;
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

  constructor(rawConfig: Record<string, unknown>) {
    try {
      auditThread().startInstance(this.instance, structuredClone(rawConfig));
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

export class Plugin {
  private readonly handler: Handler;

  constructor(rawConfig: Record<string, unknown>) {
    try {
      this.handler = auditThreadEnabled() ? new ThreadedInstance(rawConfig) : new (inProcessPlugin())(rawConfig);
    } catch (e) {
      // Kong logs "starting instance" too, but lets the route's requests through (Kong#8546):
      // say it here as well, once per reason (reasons name fields, never values).
      const msg = e instanceof Error ? e.message : String(e);
      logger.once('error', `start:${msg}`, `instance not started, the requests of its route are not audited until the configuration is fixed: ${msg}`);
      throw e;
    }
  }

  log(kong: KongLogPdk): Promise<void> {
    return this.handler.log(kong);
  }
}
