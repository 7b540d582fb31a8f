// The spans AuditTracing hands to its exporter (an in-memory exporter here; the OTLP path is
// test/integration/tracing.test.ts): a batch span links every sampled entry span of its batch,
// however large the batch (queue.max_batch_size allows 512).
import test from 'ava';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace';
import { AuditTracing, MAX_BATCH_LINKS, type EntrySpanRef } from '../../plugin/telemetry/tracing.js';
import { queueFields } from '../../plugin/config/fields/queue.js';
import { createLogger } from '../../plugin/log.js';

function capture(): { exporter: SpanExporter; spans: ReadableSpan[] } {
  const spans: ReadableSpan[] = [];
  return {
    spans,
    exporter: {
      export(batch, done) {
        spans.push(...batch);
        done({ code: 0 });
      },
      shutdown: async () => {},
      forceFlush: async () => {},
    },
  };
}

test('a batch span of 512 entries links all 512 sampled entry spans', async (t) => {
  const { exporter, spans } = capture();
  const tracing = AuditTracing.fromEnv(createLogger('test'), exporter)!;
  const refs: EntrySpanRef[] = Array.from({ length: 512 }, (_, i) => ({
    traceId: (i + 1).toString(16).padStart(32, '0'),
    spanId: (i + 1).toString(16).padStart(16, '0'),
    traceFlags: 1,
    auditId: `019ab2c3-d4e5-7f60-8a1b-${String(i).padStart(12, '0')}`,
  }));
  refs.push({ ...refs[0]!, spanId: 'f'.repeat(16), traceFlags: 0, auditId: 'not-sampled' });
  tracing.batchSpan({ host: 'immudb', port: 3322, database: 'audit' }, refs).ok(7, 513, 0);
  await tracing.forceFlush();
  const batch = spans.find((s) => s.name === 'audit.write');
  if (!batch) return t.fail('no batch span exported');
  t.is(batch.links.length, 512);
  t.deepEqual(batch.links.map((l) => l.attributes?.['audit.id']), refs.slice(0, 512).map((r) => r.auditId));
  t.is(batch.attributes['audit.write.entries'], 513);
  await tracing.shutdown();
});

test('a batch span links as many entries as the largest batch the schema allows', (t) => {
  const q = (queueFields[0] as unknown as { queue: { fields: Array<Record<string, { between?: [number, number] }>> } }).queue;
  const max = q.fields.find((f) => f.max_batch_size)?.max_batch_size?.between?.[1];
  t.is(max, MAX_BATCH_LINKS);
});
