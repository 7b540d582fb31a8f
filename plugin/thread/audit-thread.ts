// The audit thread: a worker thread of the plugin server that runs the plugin's real handler
// (plugin/handler.ts: capture, encode, spool, batching, verified writes, tracing, metrics) for
// the instances the main thread started. The main thread only makes the PDK call and posts what
// Kong returned here; a log call settles once its entry is durable in the spool, as in process.
import { parentPort } from 'node:worker_threads';
import { Plugin } from '../handler.js';
import { createLogger } from '../log.js';
import { sharedRegistry } from '../pipeline/registry.js';
import type { FromAuditThread, StartResult, ToAuditThread } from './protocol.js';

if (!parentPort) throw new Error('plugin/thread/audit-thread.js runs as a worker thread of the plugin server');
const port = parentPort;
const logger = createLogger('audit-thread');

const plugins = new Map<number, Plugin>();
/** Instances being started (their directories checked): log events for them wait. */
const starting = new Map<number, Promise<Plugin | undefined>>();

// Settled calls go back in one message per turn of the event loop: the spool's group commit
// settles many entries at once, and each message costs the main thread a wake-up.
let done: number[] = [];
let failed: Array<[number, string]> = [];
let flushScheduled = false;

function settle(call: number, error?: unknown) {
  if (error === undefined) done.push(call);
  else failed.push([call, error instanceof Error ? error.message : String(error)]);
  if (flushScheduled) return;
  flushScheduled = true;
  setImmediate(() => {
    flushScheduled = false;
    const msg: FromAuditThread = { op: 'settled', done, failed };
    done = [];
    failed = [];
    port.postMessage(msg);
  });
}

function start(m: Extract<ToAuditThread, { op: 'start' }>) {
  const started = Plugin.start(m.config, undefined, m.gate).then(
    (p): [Plugin | undefined, StartResult] => [p, {}],
    (e: unknown): [Plugin | undefined, StartResult] => {
      const err = e instanceof Error ? e : new Error(String(e));
      return [undefined, { error: { name: err.name, message: err.message } }];
    },
  ).then(([plugin, result]) => {
    // Closed meanwhile (or started again): this start is void.
    if (starting.get(m.instance) === started) {
      starting.delete(m.instance);
      if (plugin) plugins.set(m.instance, plugin);
    } else {
      plugin?.close();
    }
    if (m.reply && m.signal) {
      m.reply.postMessage(result);
      m.reply.close();
      const flag = new Int32Array(m.signal);
      Atomics.store(flag, 0, 1);
      Atomics.notify(flag, 0);
    } else if (result.error) {
      // A restart of an instance that started before (after this thread failed): log calls for
      // it will fail with "no plugin instance" until Kong starts it again.
      logger.error(`instance ${m.instance} did not restart: ${result.error.message}`);
    }
    return plugin;
  });
  starting.set(m.instance, started);
}

function record(p: Plugin, call: number, raw: unknown, failure: string | undefined) {
  p.record(raw, failure).then(() => settle(call), (e: unknown) => settle(call, e ?? 'failed'));
}

port.on('message', (m: ToAuditThread) => {
  switch (m.op) {
    case 'log':
      for (const [instance, call, raw, failure] of m.events) {
        const p = plugins.get(instance);
        if (p) {
          record(p, call, raw, failure);
          continue;
        }
        const pending = starting.get(instance);
        if (!pending) settle(call, new Error(`no plugin instance ${instance} in the audit thread`));
        else void pending.then((q) => (q ? record(q, call, raw, failure) : settle(call, new Error(`no plugin instance ${instance} in the audit thread`))));
      }
      return;
    case 'start':
      start(m);
      return;
    case 'close':
      plugins.get(m.instance)?.close();
      plugins.delete(m.instance);
      starting.delete(m.instance);
      return;
    case 'shutdown':
      sharedRegistry()
        .shutdown()
        .catch(() => -1)
        .then((left) => port.postMessage({ op: 'shutdown-done', call: m.call, left } satisfies FromAuditThread));
      return;
  }
});
