// The worker thread of bench/experiments/handler-thread.ts: the plugin's real handler, with a
// PDK whose kong.log.serialize() returns what the main thread received from Kong.
import { parentPort } from 'node:worker_threads';
import { Plugin } from '../../plugin/handler.js';

const plugins = new Map<number, Plugin>();

parentPort!.on('message', (m: { op: 'start' | 'log'; call: number; instance: number; config?: Record<string, unknown>; raw?: unknown; failure?: string }) => {
  const reply = (error?: unknown) => parentPort!.postMessage({ call: m.call, ...(error ? { error: (error as Error).message ?? String(error) } : {}) });
  try {
    if (m.op === 'start') {
      plugins.set(m.instance, new Plugin(m.config!));
      reply();
      return;
    }
    const p = plugins.get(m.instance);
    if (!p) throw new Error(`no plugin instance ${m.instance} in the worker`);
    const kong = {
      log: {
        serialize: () => (m.failure !== undefined ? Promise.reject(new Error(m.failure)) : Promise.resolve(m.raw)),
      },
    };
    p.log(kong).then(() => reply(), reply);
  } catch (e) {
    reply(e);
  }
});
