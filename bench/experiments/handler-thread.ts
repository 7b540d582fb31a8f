// A proposal: everything after the one PDK call runs in a worker thread. The plugin server's
// main thread (which answers Kong's HandleEvent/Step calls) only receives the serialized log
// and hands the string to the thread; the thread runs the plugin's own handler (capture,
// encode, spool with group-committed fsync, batching, verified writes, tracing) and says when
// the entry is durable, which is when the main thread's log() returns, as today. Exports the
// same face as plugin/handler.ts; the configuration is validated on the main thread so that a
// bad one still fails StartInstance with the reason.
import { Worker } from 'node:worker_threads';
import { parseConfig } from '../../plugin/config/config.js';
import type { KongLogPdk } from '../../plugin/handler.js';

export { Name, Version, Priority, Schema, readSerialized } from '../../plugin/handler.js';
export type { KongLogPdk };

let worker: Worker | undefined;
let nextInstance = 0;
let nextCall = 0;
const pending = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();

function thread(): Worker {
  if (worker) return worker;
  const w = new Worker(new URL('./handler-thread-worker.js', import.meta.url));
  w.unref();
  w.on('message', (m: { call: number; error?: string }) => {
    const p = pending.get(m.call);
    if (!p) return;
    pending.delete(m.call);
    if (m.error) p.reject(new Error(m.error));
    else p.resolve();
  });
  w.on('error', (e) => {
    for (const p of pending.values()) p.reject(e);
    pending.clear();
    worker = undefined;
  });
  worker = w;
  return w;
}

function call(msg: Record<string, unknown>): Promise<void> {
  const id = ++nextCall;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject });
    thread().postMessage({ ...msg, call: id });
  });
}

export class Plugin {
  private readonly id = ++nextInstance;
  private readonly started: Promise<void>;

  constructor(rawConfig: Record<string, unknown>) {
    parseConfig(rawConfig); // throws ConfigError for StartInstance, as the real constructor does
    this.started = call({ op: 'start', instance: this.id, config: structuredClone(rawConfig) });
    this.started.catch(() => undefined);
    // kong-pdk echoes the config back to Kong: keep the secret out of it, as the real plugin does.
    if (rawConfig && typeof rawConfig === 'object' && 'immudb_password' in rawConfig) rawConfig.immudb_password = '<redacted>';
  }

  async log(kong: KongLogPdk): Promise<void> {
    let raw: unknown;
    let failure: string | undefined;
    try {
      raw = await kong.log.serialize();
    } catch (e) {
      failure = (e as Error).message;
    }
    await this.started;
    await call({ op: 'log', instance: this.id, raw, failure });
  }
}
