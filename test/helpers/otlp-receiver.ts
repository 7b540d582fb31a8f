// A minimal OTLP/HTTP trace receiver on loopback for tests: accepts what the real
// OTLPTraceExporter sends (JSON, POST /v1/traces) and keeps the spans, flattened.
import { createServer, type Server } from 'node:http';
import { gunzipSync } from 'node:zlib';
import type { AddressInfo } from 'node:net';

export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string | undefined;
  name: string;
  kind: number;
  startMs: number;
  endMs: number;
  attributes: Record<string, string | number | boolean>;
  links: Array<{ traceId: string; spanId: string; attributes: Record<string, string | number | boolean> }>;
  events: Array<{ name: string; attributes: Record<string, string | number | boolean> }>;
  status: { code?: number; message?: string };
  resource: Record<string, string | number | boolean>;
}

interface OtlpValue {
  stringValue?: string;
  intValue?: string | number;
  boolValue?: boolean;
  doubleValue?: number;
}

function attrs(list: Array<{ key: string; value: OtlpValue }> | undefined): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const a of list ?? []) {
    const v = a.value;
    out[a.key] = v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : undefined) ?? v.boolValue ?? v.doubleValue ?? '';
  }
  return out;
}

const nanosToMs = (n: string | number) => Number(BigInt(n) / 1000000n);

export class OtlpReceiver {
  readonly spans: ReceivedSpan[] = [];
  requests = 0;
  private server: Server | undefined;
  port = 0;

  async start(port = 0): Promise<this> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        this.requests++;
        if (req.method !== 'POST' || req.url !== '/v1/traces') {
          res.writeHead(404).end();
          return;
        }
        let body = Buffer.concat(chunks);
        if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
        try {
          this.collect(JSON.parse(body.toString()));
          res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
        } catch (e) {
          res.writeHead(400).end(String(e));
        }
      });
    });
    await new Promise<void>((r) => this.server!.listen(port, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  private collect(body: { resourceSpans?: Array<{ resource?: { attributes?: Array<{ key: string; value: OtlpValue }> }; scopeSpans?: Array<{ spans?: Array<Record<string, unknown>> }> }> }) {
    for (const rs of body.resourceSpans ?? []) {
      const resource = attrs(rs.resource?.attributes);
      for (const ss of rs.scopeSpans ?? []) {
        for (const s of ss.spans ?? []) {
          const span = s as {
            traceId: string; spanId: string; parentSpanId?: string; name: string; kind: number;
            startTimeUnixNano: string; endTimeUnixNano: string; attributes?: Array<{ key: string; value: OtlpValue }>;
            links?: Array<{ traceId: string; spanId: string; attributes?: Array<{ key: string; value: OtlpValue }> }>;
            events?: Array<{ name: string; attributes?: Array<{ key: string; value: OtlpValue }> }>;
            status?: { code?: number; message?: string };
          };
          this.spans.push({
            traceId: span.traceId,
            spanId: span.spanId,
            parentSpanId: span.parentSpanId || undefined,
            name: span.name,
            kind: span.kind,
            startMs: nanosToMs(span.startTimeUnixNano),
            endMs: nanosToMs(span.endTimeUnixNano),
            attributes: attrs(span.attributes),
            links: (span.links ?? []).map((l) => ({ traceId: l.traceId, spanId: l.spanId, attributes: attrs(l.attributes) })),
            events: (span.events ?? []).map((e) => ({ name: e.name, attributes: attrs(e.attributes) })),
            status: span.status ?? {},
            resource,
          });
        }
      }
    }
  }

  /** Waits until `pred` holds over the received spans. */
  async waitFor(pred: (spans: ReceivedSpan[]) => boolean, timeoutMs = 30_000): Promise<ReceivedSpan[]> {
    const deadline = Date.now() + timeoutMs;
    while (!pred(this.spans)) {
      if (Date.now() > deadline) throw new Error(`OTLP receiver: condition not met after ${timeoutMs} ms (${this.spans.length} spans received)`);
      await new Promise((r) => setTimeout(r, 100));
    }
    return this.spans;
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (s) await new Promise<void>((r) => s.close(() => r()));
    s?.closeAllConnections();
  }
}
