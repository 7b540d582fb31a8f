// A gRPC-aware fault proxy in front of a real immudb: every method of our ImmuService subset
// (proto/immudb.proto) is passed through byte for byte, with the metadata both ways (sessionid,
// authorization; immudb-uuid and the other response headers), unless a test hooks the method.
// A hook sees the decoded request and may forward it (changed or not), then alter the answer,
// answer itself (a forged response or a forged error), delay, drop (never answer) or replay an
// earlier answer. Point the plugin's immudb_host/port or the CLI's --address at the proxy.
//
// Forged answers carry the response headers last seen from the real server (its identity),
// as a man in the middle would; pass `headers` to send others.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { join } from 'node:path';
import { projectRoot } from './kong-driver.js';

/** What the real server answered to a forwarded call. */
export type Upstream =
  | { response: any; error?: undefined; headers: grpc.Metadata }
  | { error: grpc.ServiceError; response?: undefined; headers: grpc.Metadata };

/** What the proxy answers: a response, an error, or nothing at all (the call hangs until its deadline). */
export type ProxyAnswer =
  | { response: unknown; error?: undefined; headers?: grpc.Metadata }
  | { error: { code: grpc.status; details: string; metadata?: grpc.Metadata }; response?: undefined; headers?: grpc.Metadata }
  | { drop: true };

export interface ProxyCall {
  method: string;
  /** The decoded request (proto-loader objects as our client uses them: longs as strings, bytes as Buffers). */
  request: any;
  metadata: grpc.Metadata;
  /** Sends `request` (default: the original, unchanged) to the real server. */
  forward(request?: unknown): Promise<Upstream>;
}

/** A hook per method; returning undefined passes the call through unchanged. */
export type ProxyHook = (call: ProxyCall) => ProxyAnswer | Upstream | undefined | Promise<ProxyAnswer | Upstream | undefined>;

interface MethodDef {
  path: string;
  requestSerialize: (v: unknown) => Buffer;
  requestDeserialize: (b: Buffer) => unknown;
  responseSerialize: (v: unknown) => Buffer;
  responseDeserialize: (b: Buffer) => unknown;
}

function serviceMethods(): Record<string, MethodDef> {
  const def = protoLoader.loadSync(join(projectRoot(), 'proto', 'immudb.proto'), {
    keepCase: true, longs: String, enums: Number, bytes: Buffer, defaults: true, arrays: true, oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { immudb: { schema: { ImmuService: { service: Record<string, MethodDef> } } } };
  return pkg.immudb.schema.ImmuService.service;
}

const identity = (b: Buffer) => b;

export interface ImmudbProxy {
  host: string;
  port: number;
  /** Sets (or, with undefined, removes) the hook of a method, e.g. 'VerifiableSet'. */
  hook(method: string, fn: ProxyHook | undefined): void;
  /** Removes every hook: the proxy passes everything through again. */
  clearHooks(): void;
  /** Calls received per method, hooked or not. */
  readonly calls: Record<string, number>;
  /** The real server's answer headers last seen (carries immudb-uuid). */
  lastHeaders(): grpc.Metadata;
  close(): Promise<void>;
}

export async function startImmudbProxy(upstream: { host: string; port: number }): Promise<ImmudbProxy> {
  const methods = serviceMethods();
  const client = new grpc.Client(`${upstream.host}:${upstream.port}`, grpc.credentials.createInsecure(), {
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
    'grpc.max_send_message_length': 64 * 1024 * 1024,
  });
  const hooks = new Map<string, ProxyHook>();
  const calls: Record<string, number> = {};
  let lastHeaders = new grpc.Metadata();

  /** One raw call to the real server, with the caller's metadata; resolves with its answer and headers. */
  const rawForward = (path: string, body: Buffer, md: grpc.Metadata, deadline: grpc.Deadline): Promise<{ body?: Buffer; error?: grpc.ServiceError; headers: grpc.Metadata }> =>
    new Promise((resolve) => {
      let headers = new grpc.Metadata();
      const call = client.makeUnaryRequest(path, identity, identity, body, md, { deadline }, (error, res) => {
        if (error) resolve({ error, headers });
        else resolve({ body: res!, headers });
      });
      call.on('metadata', (m) => {
        headers = m;
        lastHeaders = m;
      });
    });

  const server = new grpc.Server({
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
    'grpc.max_send_message_length': 64 * 1024 * 1024,
  });
  const impl: grpc.UntypedServiceImplementation = {};
  const rawService: Record<string, grpc.MethodDefinition<Buffer, Buffer>> = {};
  for (const [name, m] of Object.entries(methods)) {
    rawService[name] = {
      path: m.path, requestStream: false, responseStream: false, originalName: name,
      requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity,
    };
    impl[name] = (async (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
      calls[name] = (calls[name] ?? 0) + 1;
      const md = call.metadata.clone();
      const deadline = call.getDeadline();
      const answer = (a: { body?: Buffer; error?: { code: grpc.status; details: string; metadata?: grpc.Metadata }; headers?: grpc.Metadata }) => {
        if (a.headers) call.sendMetadata(a.headers);
        if (a.error) callback({ code: a.error.code, details: a.error.details, metadata: a.error.metadata ?? new grpc.Metadata() } as grpc.ServiceError);
        else callback(null, a.body!);
      };
      const hook = hooks.get(name);
      try {
        if (!hook) {
          const up = await rawForward(m.path, call.request, md, deadline);
          return answer({ ...(up.body ? { body: up.body } : {}), ...(up.error ? { error: errorOf(up.error) } : {}), headers: up.headers });
        }
        const request = m.requestDeserialize(call.request);
        const forward = async (req?: unknown): Promise<Upstream> => {
          const up = await rawForward(m.path, req === undefined ? call.request : m.requestSerialize(req), md, deadline);
          return up.error ? { error: up.error, headers: up.headers } : { response: m.responseDeserialize(up.body!), headers: up.headers };
        };
        const out = await hook({ method: name, request, metadata: md, forward });
        if (out === undefined) {
          const up = await rawForward(m.path, call.request, md, deadline);
          return answer({ ...(up.body ? { body: up.body } : {}), ...(up.error ? { error: errorOf(up.error) } : {}), headers: up.headers });
        }
        if ('drop' in out) return; // never answered: the caller's deadline ends the call
        const headers = out.headers ?? lastHeaders;
        if (out.error) return answer({ error: errorOf(out.error), headers });
        return answer({ body: m.responseSerialize(out.response), headers });
      } catch (e) {
        answer({ error: { code: grpc.status.INTERNAL, details: `immudb proxy hook failed: ${(e as Error).message}` } });
      }
    }) as grpc.handleUnaryCall<Buffer, Buffer>;
  }
  server.addService(rawService as grpc.ServiceDefinition, impl);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p)));
  });

  return {
    host: '127.0.0.1',
    port,
    hook(method, fn) {
      if (!methods[method]) throw new Error(`no method ${method} in proto/immudb.proto`);
      if (fn) hooks.set(method, fn);
      else hooks.delete(method);
    },
    clearHooks: () => hooks.clear(),
    calls,
    lastHeaders: () => lastHeaders,
    close: () =>
      new Promise<void>((resolve) => {
        client.close();
        server.tryShutdown(() => resolve());
        // Calls left hanging by a drop would hold the shutdown: end them after a moment.
        setTimeout(() => server.forceShutdown(), 1_000).unref();
      }),
  };
}

function errorOf(e: { code: grpc.status; details?: string; message?: string; metadata?: grpc.Metadata }): { code: grpc.status; details: string; metadata?: grpc.Metadata } {
  return { code: e.code, details: e.details ?? e.message ?? '', ...(e.metadata ? { metadata: e.metadata } : {}) };
}
