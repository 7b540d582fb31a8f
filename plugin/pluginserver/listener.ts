// The plugin server's Unix-socket listener: kong-pdk 0.6.0's listener.js with two fixes.
// 1. Framing: requests are cut out of the byte stream by FrameSplitter, so a chunk boundary
//    anywhere and pipelined requests no longer end the process.
// 2. The per-RPC debug line (it JSON-stringifies the arguments, the 2 KB serialized log of every
//    event) is built only when the log level is debug: ~10 µs per event on the main thread.
// Answers are encoded by the same @msgpack/msgpack Encoder kong-pdk uses, as [1, msgid, err, ret].
import * as fs from 'node:fs';
import * as net from 'node:net';
import { FrameSplitter } from './frames.js';
import type { KongPdkLogger, KongPdkServer, Msgpack } from './kong-pdk.js';

const ERR_UNKNOWN = 'Unknown plugin listener error encountered';

function errToString(err: unknown): string {
  if (typeof err === 'string') return err;
  if (err !== null && typeof err === 'object' && 'message' in err) return String((err as { message: unknown }).message);
  if (err !== null && err !== undefined && typeof (err as { toString?: unknown }).toString === 'function') return String(err);
  return ERR_UNKNOWN;
}

function typeOf(value: unknown): string {
  if (!value) return '';
  return Object.prototype.toString.call(value).slice(8, -1).toLowerCase();
}

function isThenable(v: unknown): v is Promise<unknown> {
  return !!v && typeof (v as { then?: unknown }).then === 'function' && typeof (v as { catch?: unknown }).catch === 'function';
}

export interface ListenerOptions {
  /** Build the `rpc: #id method: ... args: <JSON>` line (only at debug level). */
  debug: boolean;
}

export class Listener {
  private readonly logger: KongPdkLogger;

  constructor(
    private readonly ps: KongPdkServer,
    private readonly socketPath: string,
    private readonly msgpack: Msgpack,
    private readonly opts: ListenerOptions,
  ) {
    this.logger = ps.getLogger();
  }

  serve(): net.Server {
    try {
      fs.unlinkSync(this.socketPath);
    } catch (ex) {
      if ((ex as NodeJS.ErrnoException).code !== 'ENOENT') throw ex;
    }
    const server = net.createServer((client) => this.connection(client));
    server.listen(this.socketPath);
    this.logger.info('server started at', this.socketPath);
    return server;
  }

  private connection(client: net.Socket): void {
    const encoder = new this.msgpack.Encoder();
    const decoder = new this.msgpack.Decoder();
    const frames = new FrameSplitter();
    const reply = (msgid: unknown, err: unknown, ret: unknown) => {
      if (!client.destroyed) client.write(encoder.encode([1, msgid, err, ret]));
    };
    client.on('error', (e) => this.logger.error(`rpc: connection error: ${e.message}`));
    client.on('data', (chunk: Buffer) => {
      let requests: Buffer[];
      try {
        requests = frames.push(chunk);
      } catch (ex) {
        // Not MessagePack: nothing later on this stream can be trusted. Drop the connection only.
        this.logger.error(`rpc: ${errToString(ex)}; closing the connection`);
        client.destroy();
        return;
      }
      for (const req of requests) {
        let decoded: unknown;
        try {
          decoded = decoder.decode(req);
        } catch (ex) {
          this.logger.error(`rpc: undecodable request: ${errToString(ex)}; closing the connection`);
          client.destroy();
          return;
        }
        this.request(decoded, reply);
      }
    });
  }

  private request(decoded: unknown, reply: (msgid: unknown, err: unknown, ret: unknown) => void): void {
    const [, msgid, method, args] = Array.isArray(decoded) ? decoded : [];
    if (typeof method !== 'string') {
      this.logger.error(`rpc: #${String(msgid)} request without a method name`);
      reply(msgid, 'request without a method name', undefined);
      return;
    }
    const [ns, cmd] = method.split('.');
    if (ns !== 'plugin') {
      reply(msgid, `RPC for ${ns} is not supported`, undefined);
      return;
    }
    if (this.opts.debug) this.logger.debug(`rpc: #${msgid} method: ${method} args: ${JSON.stringify(args)}`);
    const fn = cmd === undefined ? undefined : (this.ps as unknown as Record<string, unknown>)[cmd];
    if (typeof fn !== 'function') {
      const err = `method ${cmd} not implemented`;
      this.logger.error(`rpc: #${msgid} ${err}`);
      reply(msgid, err, undefined);
      return;
    }
    let promise: unknown;
    try {
      promise = (fn as (...a: unknown[]) => unknown).apply(this.ps, Array.isArray(args) ? args : []);
    } catch (ex) {
      this.logger.error((ex as Error | undefined)?.stack ?? errToString(ex));
      reply(msgid, errToString(ex), undefined);
      return;
    }
    if (!isThenable(promise)) {
      const err = `${cmd} should return a Promise or thenable object, got ${typeOf(promise)}`;
      this.logger.error(`rpc: #${msgid} ${err}`);
      reply(msgid, err, undefined);
      return;
    }
    promise.then(
      (ret) => reply(msgid, undefined, ret),
      (err: unknown) => {
        this.logger.error(`rpc: # ${msgid} ${String(err)}`);
        reply(msgid, errToString(err), undefined);
      },
    );
  }
}
