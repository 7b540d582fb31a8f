// The key layout: every key the product writes or reads, and the trace index computed from the
// entry object (its top-level trace_id), not from text inside the JSON.
import test from 'ava';
import { buildAuditEntry } from '../../plugin/capture/build-entry.js';
import { encodeEntry } from '../../plugin/capture/encode.js';
import { compilePrivacy, DEFAULT_PRIVACY } from '../../plugin/capture/privacy-policy.js';
import type { KongSerializedLog } from '../../plugin/capture/kong-log.js';
import { entryKey, lossKey, parseKey, traceIndexKey, traceIndexOf } from '../../plugin/store/key-layout.js';

const ctx = { id: '019ab2c3-d4e5-7f60-8a1b-2c3d4e5f6a7b', now: Date.UTC(2026, 10, 24, 12, 0, 0, 5), nodeId: null, hostname: 'gw-1' };
const ownTrace = '4bf92f3577b34da6a3ce929d0e0e4736';
const chosen = 'c'.repeat(32);

function log(responseHeaders: Record<string, string>, traceparent?: string): KongSerializedLog {
  return {
    request: { id: 'b1c7d7a2f0b3a94e1c2d3e4f50617283', uri: '/x', method: 'GET', headers: traceparent ? { traceparent } : {}, size: 1 },
    response: { status: 200, headers: responseHeaders, size: 2 },
    started_at: Date.UTC(2026, 10, 24, 11, 59, 59, 123),
    client_ip: '203.0.113.9',
  } as KongSerializedLog;
}

const headerPolicy = compilePrivacy({ ...DEFAULT_PRIVACY, response_headers: ['trace_id'] });

test('a response header named trace_id does not file the entry under the trace it names', (t) => {
  const entry = buildAuditEntry(log({ trace_id: chosen }, `00-${ownTrace}-00f067aa0ba902b7-01`), ctx, [], headerPolicy);
  t.is(entry.outcome.response_headers?.trace_id, chosen, 'the header is stored (allow-listed)');
  t.is(entry.trace_id, ownTrace);
  const r = encodeEntry('audit', entry);
  const idx = traceIndexOf(r.key, r.value);
  t.is(idx?.key.toString(), `audit:trace:${ownTrace}:${ctx.id}`);
  t.is(idx?.value.toString(), `audit:entry:${ctx.id}`);
});

test('an entry without a trace id has no index key, whatever its headers say', (t) => {
  const entry = buildAuditEntry(log({ trace_id: chosen }), ctx, [], headerPolicy);
  entry.trace_id = null;
  const r = encodeEntry('audit', entry);
  t.is(traceIndexOf(r.key, r.value), undefined);
});

test('a replayed record (new buffers, read back from the spool) gets the same index from its JSON', (t) => {
  const entry = buildAuditEntry(log({ trace_id: chosen }, `00-${ownTrace}-00f067aa0ba902b7-01`), ctx, [], headerPolicy);
  const r = encodeEntry('audit', entry);
  const replayed = traceIndexOf(Buffer.from(r.key), Buffer.from(r.value));
  t.deepEqual(replayed, traceIndexOf(r.key, r.value));
  t.is(replayed?.key.toString(), `audit:trace:${ownTrace}:${ctx.id}`);
  t.is(traceIndexOf(Buffer.from('audit:entry:' + ctx.id), Buffer.from(`{"outcome":{"response_headers":{"trace_id":"${chosen}"}},"trace_id":null}`)), undefined);
  t.is(traceIndexOf(Buffer.from('audit:entry:' + ctx.id), Buffer.from('not json')), undefined);
  t.is(traceIndexOf(Buffer.from('audit:loss:1'), r.value), undefined, 'only entry keys are indexed');
});

test('a trace the plugin started itself (no traceparent, no Kong trace id) gets no index key; a replay agrees', (t) => {
  // The handler sets trace_id to its root audit span's trace id: that trace holds only the
  // audit span, which names the entry (audit.key), so an index key would add nothing (decision #38).
  for (const source of ['none', 'invalid'] as const) {
    const entry = buildAuditEntry(log({}), ctx, [], headerPolicy);
    entry.trace_source = source;
    entry.trace_id = ownTrace;
    const r = encodeEntry('audit', entry);
    t.is(traceIndexOf(r.key, r.value), undefined, source);
    t.is(traceIndexOf(Buffer.from(r.key), Buffer.from(r.value)), undefined, `${source}, replayed`);
  }
  const kong = buildAuditEntry(log({}), ctx, [], headerPolicy);
  kong.trace_source = 'kong';
  kong.trace_id = ownTrace;
  const r = encodeEntry('audit', kong);
  t.is(traceIndexOf(r.key, r.value)?.key.toString(), `audit:trace:${ownTrace}:${ctx.id}`);
  t.is(traceIndexOf(Buffer.from(r.key), Buffer.from(r.value))?.key.toString(), `audit:trace:${ownTrace}:${ctx.id}`);
});

test('every key kind is built and parsed in one place', (t) => {
  const id = ctx.id;
  t.deepEqual(parseKey(entryKey('a.b-c_1', id)), { kind: 'entry', prefix: 'a.b-c_1', id });
  t.deepEqual(parseKey(traceIndexKey('audit', ownTrace, id)), { kind: 'trace', prefix: 'audit', traceId: ownTrace, id });
  t.deepEqual(parseKey(lossKey('audit', 'x1')), { kind: 'loss', prefix: 'audit', id: 'x1' });
  for (const bad of ['audit:entry:nope', 'audit:trace:xyz:' + id, `audit:trace:${ownTrace}:nope`, 'a:b:entry:' + id, 'audit:other:' + id, `:entry:${id}`]) {
    t.is(parseKey(bad), undefined, bad);
  }
});
