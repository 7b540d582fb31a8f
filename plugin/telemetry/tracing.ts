// OpenTelemetry for audit entries, once per process and shared by every instance: an audit span
// per entry (child of the request's trace) and an `audit.write` span per immudb batch linked to
// its entries' spans. Configured by the standard OTEL_* variables, read by OpenTelemetry's own
// code: the OTLP/HTTP exporter reads its endpoint, headers and timeout; resources' envDetector
// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; core's environment readers (the SDK's parsing
// and warnings) the OTEL_BSP_* options, the sampler and OTEL_SDK_DISABLED (decisions #10 and
// #34: the trace SDK, not sdk-node). No auto-instrumentation: the plugin server is not traced.
import {
  ROOT_CONTEXT, SamplingDecision, SpanKind, SpanStatusCode, TraceFlags, diag, trace, createTraceState, type Attributes, type Link, type Span,
  type SpanContext, type Tracer, type DiagLogger,
} from '@opentelemetry/api';
import { getBooleanFromEnv, getNumberFromEnv, getStringFromEnv, getStringListFromEnv, setGlobalErrorHandler } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { detectResources, envDetector, resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOffSampler, AlwaysOnSampler, BatchSpanProcessor, ParentBasedSampler, RandomIdGenerator, TraceIdRatioBasedSampler, TracerProvider,
  type Sampler, type SpanExporter, type SpanProcessor,
} from '@opentelemetry/sdk-trace';
import { EntrySpanRecord, type SpanOrigin } from './entry-span.js';
import type { AuditEntry } from '../capture/audit-entry.js';
import type { RequestTrace } from '../capture/request-trace.js';
import type { Logger } from '../log.js';

/** What links a batch span to an entry's span. */
export interface EntrySpanRef {
  traceId: string;
  spanId: string;
  traceFlags: number;
  auditId: string;
}

/** A variable as OpenTelemetry reads it: unset or blank is undefined. */
export type EnvLookup = (name: string) => string | undefined;

/** The sampler OTEL_TRACES_SAMPLER(_ARG) name (the specification's names and default). */
export function samplerFromEnv(): Sampler {
  const arg = getNumberFromEnv('OTEL_TRACES_SAMPLER_ARG') ?? 1;
  const ratio = arg >= 0 && arg <= 1 ? arg : 1;
  switch ((getStringFromEnv('OTEL_TRACES_SAMPLER') ?? 'parentbased_always_on').trim().toLowerCase()) {
    case 'always_on':
      return new AlwaysOnSampler();
    case 'always_off':
      return new AlwaysOffSampler();
    case 'traceidratio':
      return new TraceIdRatioBasedSampler(ratio);
    case 'parentbased_always_off':
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'parentbased_traceidratio':
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) });
    default:
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
  }
}

/**
 * Where spans go. OTLP/HTTP only when the environment says where (an OTLP endpoint, or
 * OTEL_TRACES_EXPORTER=otlp for the exporter's own default of localhost:4318); otherwise
 * nowhere: an audit plugin must not send spans to a port nobody configured, nor warn about it.
 * OTEL_TRACES_EXPORTER=none turns export off even with an endpoint.
 */
export function exporterFromEnv(get: EnvLookup = getStringFromEnv): 'otlp' | 'none' {
  const named = (get === getStringFromEnv ? getStringListFromEnv('OTEL_TRACES_EXPORTER') : get('OTEL_TRACES_EXPORTER')?.split(','))?.map((s) => s.trim().toLowerCase()) ?? [];
  if (named.includes('none')) return 'none';
  if (named.includes('otlp')) return 'otlp';
  return get('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT') || get('OTEL_EXPORTER_OTLP_ENDPOINT') ? 'otlp' : 'none';
}

/**
 * The batch span processor's options from OTEL_BSP_* (the specification's variables, read by
 * core's environment reader). Unset: the specification's defaults, except a 1 s schedule delay
 * (5 s by the specification) so that audit spans show up soon after their request. Bounded
 * memory when the collector is down: at most OTEL_BSP_MAX_QUEUE_SIZE (2,048) spans queued,
 * beyond that spans are dropped, never entries.
 */
export function batchOptionsFromEnv() {
  return {
    maxQueueSize: getNumberFromEnv('OTEL_BSP_MAX_QUEUE_SIZE') ?? 2048,
    maxExportBatchSize: getNumberFromEnv('OTEL_BSP_MAX_EXPORT_BATCH_SIZE') ?? 512,
    scheduledDelayMillis: getNumberFromEnv('OTEL_BSP_SCHEDULE_DELAY') ?? 1000,
    exportTimeoutMillis: getNumberFromEnv('OTEL_BSP_EXPORT_TIMEOUT') ?? 30_000,
  };
}

const SCOPE = 'kong-immudb-audit';
/**
 * Links a batch span may carry: one per entry of the batch, up to queue.max_batch_size's upper
 * bound (plugin/config/fields/queue.ts). The SDK's default (128) dropped the rest.
 */
export const MAX_BATCH_LINKS = 512;

export class AuditTracing {
  private readonly provider: TracerProvider;
  private readonly tracer: Tracer;
  private readonly ids = new RandomIdGenerator();
  private readonly sampler: Sampler;
  /** Where entry spans go (none without an exporter: they are then never recorded). */
  private readonly processor: SpanProcessor | undefined;
  private readonly origin: SpanOrigin;

  /** `exporterOverride` replaces the one the environment names (benchmarks, tests). */
  private constructor(private readonly logger: Logger, exporterOverride?: SpanExporter) {
    // Exporter problems (collector down, rejected payloads) are reported once.
    const report = (msg: string) => logger.once('warn', 'otel-export', `tracing: ${msg}; audit entries are not affected`);
    setGlobalErrorHandler((e) => report(e instanceof Error ? e.message : String(e)));
    const diagLogger: DiagLogger = {
      error: (m) => report(m),
      warn: (m) => report(m),
      info: () => {},
      debug: () => {},
      verbose: () => {},
    };
    diag.setLogger(diagLogger);
    const exporter = exporterOverride ? 'otlp' : exporterFromEnv();
    if (exporter === 'none') {
      logger.info('tracing: no OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_TRACES_EXPORTER=otlp): audit spans are not exported; entries still carry trace ids');
    }
    // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES over our default service name.
    const resource = resourceFromAttributes({ 'service.name': SCOPE }).merge(detectResources({ detectors: [envDetector] }));
    this.sampler = samplerFromEnv();
    // At most two exports in flight (see batchOptionsFromEnv for the queue's bound).
    this.processor = exporter === 'none' ? undefined : new BatchSpanProcessor({
      exporter: exporterOverride ?? new OTLPTraceExporter({ concurrencyLimit: 2 }),
      ...batchOptionsFromEnv(),
    });
    this.provider = new TracerProvider({
      resource,
      sampler: this.sampler,
      idGenerator: this.ids,
      spanLimits: { linkCountLimit: MAX_BATCH_LINKS },
      spanProcessors: this.processor ? [this.processor] : [],
    });
    this.tracer = this.provider.getTracer(SCOPE);
    // Entry spans join the provider's spans in one export request: same resource, same scope.
    this.origin = { resource, instrumentationScope: { name: SCOPE, version: undefined, schemaUrl: undefined } };
  }

  /** null when OTEL_SDK_DISABLED=true. */
  static fromEnv(logger: Logger, exporterOverride?: SpanExporter): AuditTracing | null {
    if (getBooleanFromEnv('OTEL_SDK_DISABLED')) return null;
    return new AuditTracing(logger, exporterOverride);
  }

  /**
   * The audit span of one entry, backdated to the request's start and end. Returns its ids
   * (even when not sampled: the entry stores them either way). The span is born ended, so it is
   * built as a finished record (entry-span.ts) with the SDK's own sampler and ids, as
   * Tracer.startSpan would: a child of the caller's span (W3C traceparent), else a root in Kong's
   * trace when Kong named one, else a new root trace.
   */
  entrySpan(entry: AuditEntry, req: RequestTrace, key: string, recordClientAddress: boolean): EntrySpanRef {
    let ctx = ROOT_CONTEXT;
    let parent: SpanContext | undefined;
    if (req.parent) {
      parent = {
        traceId: req.parent.traceId,
        spanId: req.parent.spanId,
        traceFlags: req.parent.sampled ? TraceFlags.SAMPLED : TraceFlags.NONE,
        isRemote: true,
        ...(req.parent.traceState ? { traceState: safeTraceState(req.parent.traceState) } : {}),
      };
      if (trace.isSpanContextValid(parent)) ctx = trace.setSpanContext(ROOT_CONTEXT, parent);
      else parent = undefined;
    }
    const traceId = parent?.traceId ?? req.kongTraceId ?? this.ids.generateTraceId();
    const spanId = this.ids.generateSpanId();
    const parsed = Date.parse(entry.time);
    const start = Number.isFinite(parsed) ? parsed : Date.now();
    const duration = entry.latencies.request ?? entry.latencies.kong ?? 0;
    const method = entry.what.method ?? 'UNKNOWN';
    const route = entry.what.route?.name ?? req.route ?? 'unknown route';
    const attributes: Attributes = {
      'http.request.method': method,
      'audit.id': entry.id,
      'audit.key': key,
      'audit.trace_source': entry.trace_source,
    };
    if (req.route) attributes['http.route'] = req.route;
    if (entry.what.path) attributes['url.path'] = entry.what.path;
    if (entry.outcome.status !== null) attributes['http.response.status_code'] = entry.outcome.status;
    if (entry.request_id) attributes['kong.request_id'] = entry.request_id;
    if (entry.what.route?.name) attributes['kong.route.name'] = entry.what.route.name;
    if (entry.what.service?.name) attributes['kong.service.name'] = entry.what.service.name;
    if (recordClientAddress && entry.who.client_ip) attributes['client.address'] = entry.who.client_ip;
    const name = `audit ${method} ${route}`;
    const decision = this.sampler.shouldSample(ctx, traceId, name, SpanKind.INTERNAL, attributes, []);
    const traceFlags = decision.decision === SamplingDecision.RECORD_AND_SAMPLED ? TraceFlags.SAMPLED : TraceFlags.NONE;
    // Only sampled spans are exported (a span recorded but not sampled goes nowhere either).
    if (traceFlags === TraceFlags.SAMPLED && this.processor) {
      const traceState = decision.traceState ?? parent?.traceState;
      const context: SpanContext = traceState ? { traceId, spanId, traceFlags, traceState } : { traceId, spanId, traceFlags };
      Object.assign(attributes, decision.attributes);
      this.processor.onEnd(new EntrySpanRecord(name, context, parent, start, start + duration, attributes, this.origin));
    }
    return { traceId, spanId, traceFlags, auditId: entry.id };
  }

  /** A span for one immudb batch write, linked to its entries' (sampled) spans. */
  batchSpan(destination: { host: string; port: number; database: string }, refs: readonly (EntrySpanRef | undefined)[]): BatchSpan {
    const links: Link[] = [];
    for (const r of refs) {
      if (r && r.traceFlags & TraceFlags.SAMPLED) {
        links.push({ context: { traceId: r.traceId, spanId: r.spanId, traceFlags: r.traceFlags }, attributes: { 'audit.id': r.auditId } });
      }
    }
    const span = this.tracer.startSpan('audit.write', {
      kind: SpanKind.CLIENT,
      links,
      attributes: {
        'db.system.name': 'immudb',
        'db.namespace': destination.database,
        'db.operation.name': 'VerifiableSet',
        'server.address': destination.host,
        'server.port': destination.port,
        'audit.write.entries': refs.length,
      },
    }, ROOT_CONTEXT);
    return new BatchSpan(span);
  }

  /**
   * Flushes the spans still queued, for at most `timeoutMs`: with the trace backend down the
   * exporter would retry for its whole timeout (10 s by default) and hold up Kong's shutdown.
   * Spans are best effort; the audit entries keep their trace and span ids either way.
   */
  async shutdown(timeoutMs = 2_000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((r) => {
      timer = setTimeout(() => r('timeout'), timeoutMs);
    });
    try {
      const r = await Promise.race([this.provider.shutdown(), timedOut]);
      if (r === 'timeout') this.logger.warn(`tracing: spans not exported within ${timeoutMs} ms of shutdown were dropped (the audit entries keep their trace ids)`);
    } catch (e) {
      this.logger.warn(`tracing: flushing spans on shutdown failed: ${(e as Error).message}`);
    } finally {
      clearTimeout(timer);
    }
  }

  forceFlush(): Promise<void> {
    return this.provider.forceFlush();
  }
}

/** The life of one batch write: retries as events, the outcome as status. */
export class BatchSpan {
  constructor(private readonly span: Span) {}

  retry(err: unknown, attempt: number) {
    this.span.addEvent('retry', { 'audit.write.attempt': attempt, 'error.message': (err as Error).message ?? String(err) });
  }

  ok(txId: number, written: number, duplicates: number) {
    this.span.setAttributes({ 'immudb.tx_id': txId, 'audit.write.written': written, 'audit.write.duplicates': duplicates, 'audit.write.verified': true });
    this.span.end();
  }

  fail(err: unknown) {
    this.span.setAttributes({ 'audit.write.verified': false });
    this.span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message ?? String(err) });
    this.span.end();
  }
}

function safeTraceState(v: string) {
  try {
    return createTraceState(v);
  } catch {
    return undefined;
  }
}
