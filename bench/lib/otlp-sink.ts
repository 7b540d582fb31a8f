// A minimal OTLP/HTTP receiver for the plugin servers under benchmark: accepts every export
// (HTTP 200) and counts requests and bytes, so the plugin's tracing (on by default) runs its
// real export path against a collector that keeps up, without a collector installed.
import { createServer, type Server } from 'node:http';

export interface OtlpSink {
  endpoint: string;
  requests: number;
  bytes: number;
  close(): Promise<void>;
}

let shared: Promise<OtlpSink> | undefined;

export function startOtlpSink(): Promise<OtlpSink> {
  return new Promise((resolve, reject) => {
    const stats = { requests: 0, bytes: 0 };
    const server: Server = createServer((req, res) => {
      req.on('data', (c: Buffer) => {
        stats.bytes += c.length;
      });
      req.on('end', () => {
        stats.requests++;
        res.writeHead(200, { 'content-type': req.headers['content-type'] === 'application/x-protobuf' ? 'application/x-protobuf' : 'application/json' });
        res.end(req.headers['content-type'] === 'application/x-protobuf' ? undefined : '{}');
      });
    });
    server.keepAliveTimeout = 60_000;
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const addr = server.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      server.unref();
      resolve({
        endpoint: `http://127.0.0.1:${port}`,
        get requests() {
          return stats.requests;
        },
        get bytes() {
          return stats.bytes;
        },
        close: () => new Promise<void>((r) => server.close(() => r())),
      });
    });
  });
}

/** One sink for the whole benchmark run. */
export function sharedOtlpSink(): Promise<OtlpSink> {
  shared ??= startOtlpSink();
  return shared;
}
