import test from 'ava';
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { buildAuditEntry } from '../../plugin/capture/build-entry.js';
import { encodeEntry } from '../../plugin/capture/encode.js';
import { readSerialized } from '../../plugin/handler.js';
import type { KongSerializedLog } from '../../plugin/capture/kong-log.js';

const require = createRequire(import.meta.url);
const schemaPath = require.resolve('../../../schemas/audit-entry.v1.json');
const ajv = new Ajv2020({ allErrors: true });
const validate = ajv.compile(JSON.parse(readFileSync(schemaPath, 'utf8')));

const ctx = { id: '019ab2c3-d4e5-7f60-8a1b-2c3d4e5f6a7b', now: Date.UTC(2026, 10, 24, 12, 0, 0, 5), nodeId: 'node-1', hostname: 'gw-1' };

const consumerLog: KongSerializedLog = {
  request: {
    id: 'b1c7d7a2f0b3a94e1c2d3e4f50617283',
    uri: '/orders/42?token=secret-token&x=1',
    url: 'https://api.example.com:8443/orders/42?token=secret-token&x=1',
    querystring: { token: 'secret-token', x: '1' },
    method: 'POST',
    headers: { host: 'api.example.com', apikey: 'my-secret-key', authorization: 'REDACTED', traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' },
    size: 512,
  },
  upstream_uri: '/orders/42',
  upstream_status: '201',
  response: { status: 201, headers: { 'set-cookie': 'sid=abc' }, size: 1024 },
  latencies: { kong: 3, proxy: 20, request: 25, receive: 2 },
  authenticated_entity: { id: 'cred-123', consumer_id: 'cons-1' },
  route: { id: 'route-1', name: 'orders', paths: ['/orders'] },
  service: { id: 'svc-1', name: 'orders-svc', host: 'orders.internal' },
  consumer: { id: 'cons-1', username: 'alice', custom_id: 'emp-7' },
  client_ip: '203.0.113.9',
  started_at: Date.UTC(2026, 10, 24, 11, 59, 59, 123),
  source: 'upstream',
  workspace: 'ws-0',
  workspace_name: 'default',
};

test('an authenticated request becomes a complete entry', (t) => {
  const e = buildAuditEntry(consumerLog, ctx);
  t.is(e.time, '2026-11-24T11:59:59.123Z');
  t.is(e.time_source, 'kong');
  t.is(e.request_id, 'b1c7d7a2f0b3a94e1c2d3e4f50617283');
  t.deepEqual(e.who, { consumer: { id: 'cons-1', username: 'alice', custom_id: 'emp-7' }, credential_id: 'cred-123', authenticated: true, client_ip: '203.0.113.9', forwarded_for: null, subject: null });
  t.deepEqual(e.what, {
    method: 'POST', scheme: 'https', host: 'api.example.com', path: '/orders/42',
    route: { id: 'route-1', name: 'orders' }, service: { id: 'svc-1', name: 'orders-svc' }, upstream_status: 201,
    query: null, request_headers: null,
  });
  t.deepEqual(e.outcome, { status: 201, source: 'upstream', result: 'success', response_headers: null });
  t.deepEqual(e.privacy, { pseudonym_key_id: null, pseudonymized: [], ip_prefix: null });
  t.deepEqual(e.latencies, { kong: 3, proxy: 20, request: 25, receive: 2 });
  t.deepEqual(e.sizes, { request: 512, response: 1024 });
  t.deepEqual(e.where, { client_ip: '203.0.113.9', node_id: 'node-1', hostname: 'gw-1', workspace: { id: 'ws-0', name: 'default' } });
  t.is(e.trace_id, '4bf92f3577b34da6a3ce929d0e0e4736');
  t.is(e.parent_span_id, '00f067aa0ba902b7');
  t.is(e.trace_source, 'traceparent');
  t.deepEqual(e.capture_problems, []);
  t.true(validate(e), JSON.stringify(validate.errors));
});

test('no query string, header or cookie reaches the stored value', (t) => {
  const rec = encodeEntry('audit', buildAuditEntry(consumerLog, ctx));
  const text = rec.value.toString();
  for (const secret of ['secret-token', 'my-secret-key', 'sid=abc', 'REDACTED', 'token=']) t.false(text.includes(secret), secret);
});

test('a 401 from Kong itself: anonymous, kong source, failure', (t) => {
  const e = buildAuditEntry({
    request: { id: 'r2', uri: '/orders', method: 'GET', url: 'http://api.example.com/orders', size: 80 },
    response: { status: 401, size: 60 },
    latencies: { kong: 1, request: 1, receive: 0 },
    route: { id: 'route-1', name: 'orders' },
    service: { id: 'svc-1', name: 'orders-svc' },
    client_ip: '198.51.100.7',
    started_at: 1_795_000_000_000,
    source: 'kong',
  }, ctx);
  t.deepEqual(e.who, { consumer: null, credential_id: null, authenticated: false, client_ip: '198.51.100.7', forwarded_for: null, subject: null });
  t.deepEqual(e.outcome, { status: 401, source: 'kong', result: 'failure', response_headers: null });
  t.is(e.what.upstream_status, null);
  t.is(e.latencies.proxy, null);
  t.is(e.trace_source, 'none');
  t.true(validate(e), JSON.stringify(validate.errors));
});

test('an upstream 502 keeps the last upstream status of several tries', (t) => {
  const e = buildAuditEntry({ ...consumerLog, upstream_status: '503, 502', response: { status: 502, size: 10 } }, ctx);
  t.is(e.what.upstream_status, 502);
  t.deepEqual(e.outcome, { status: 502, source: 'upstream', result: 'failure', response_headers: null });
});

test('nothing usable still gives a valid entry that says what went wrong', (t) => {
  const problems: string[] = [];
  const log = readSerialized('{not json', problems);
  const e = buildAuditEntry(log, ctx, problems);
  t.is(e.time, '2026-11-24T12:00:00.005Z');
  t.is(e.time_source, 'plugin');
  t.regex(e.capture_problems[0]!, /^kong.log.serialize returned invalid JSON/);
  t.true(validate(e), JSON.stringify(validate.errors));
});

test('readSerialized accepts JSON strings and objects, and names other shapes', (t) => {
  const p: string[] = [];
  t.deepEqual(readSerialized('{"a":1}', p), { a: 1 });
  t.deepEqual(readSerialized({ b: 2 }, p), { b: 2 });
  t.is(readSerialized('[1]', p), null);
  t.is(readSerialized(42, p), null);
  t.deepEqual(p, ['kong.log.serialize returned JSON that is not an object', 'kong.log.serialize returned number']);
});

test('hostile values: wrong types, control characters, lone surrogates, huge strings', (t) => {
  const e = buildAuditEntry({
    request: { id: 12345 as unknown as string, method: { x: 1 } as unknown as string, uri: '/a\u0000b\ud800c' + 'x'.repeat(10_000), size: -5 },
    response: { status: '200' as unknown as number },
    consumer: { username: 'bob\u001b[31m' } as never,
    client_ip: ['1.2.3.4'] as unknown as string,
    started_at: 'yesterday' as unknown as number,
    __proto__: { polluted: true },
  } as KongSerializedLog, ctx);
  t.is(e.request_id, '12345');
  t.is(e.what.method, null);
  t.true(e.what.path!.startsWith('/a\ufffdb\ufffdc'));
  t.true(e.what.path!.length <= 2049);
  t.is(e.sizes.request, null);
  t.is(e.outcome.status, 200);
  t.is(e.who.consumer!.username, 'bob\ufffd[31m');
  t.is(e.who.client_ip, null);
  t.is(e.time_source, 'plugin');
  t.is(({} as Record<string, unknown>).polluted, undefined);
  t.true(validate(e), JSON.stringify(validate.errors));
});

test('invalid traceparent: recorded as invalid, no trace id taken from it', (t) => {
  for (const tp of [
    'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
    '00-00000000000000000000000000000000-00f067aa0ba902b7-01',
    '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01',
    '00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01',
    '00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01',
  ]) {
    const e = buildAuditEntry({ ...consumerLog, request: { ...consumerLog.request, headers: { traceparent: tp } } }, ctx, []);
    t.is(e.trace_source, 'invalid', tp);
    t.is(e.trace_id, null, tp);
    t.regex(e.capture_problems.join(), /invalid traceparent/, tp);
  }
});

test("Kong's own trace id is used when there is no traceparent", (t) => {
  const e = buildAuditEntry({ ...consumerLog, request: { ...consumerLog.request, headers: {} }, trace_id: { w3c: '0af7651916cd43dd8448eb211c80319c' } }, ctx);
  t.is(e.trace_id, '0af7651916cd43dd8448eb211c80319c');
  t.is(e.parent_span_id, null);
  t.is(e.trace_source, 'kong');
});

test('encoding is canonical: same entry, same bytes, sorted keys', (t) => {
  const e = buildAuditEntry(consumerLog, ctx);
  const a = encodeEntry('audit', e);
  const b = encodeEntry('audit', JSON.parse(JSON.stringify(e)));
  t.true(a.value.equals(b.value));
  t.is(a.key.toString(), `audit:entry:${ctx.id}`);
  t.true(a.value.toString().startsWith('{"capture_problems":[],"id":'));
});

test('bounded strings never end in half a surrogate pair (canonical JSON refuses lone surrogates)', (t) => {
  const emoji = '🙂'.repeat(1100); // 2,200 UTF-16 code units, more than a path keeps
  for (const uri of [`/${emoji}`, `/x${emoji}`]) {
    const e = buildAuditEntry({ request: { uri, headers: { 'user-agent': emoji } }, started_at: 1 }, ctx);
    t.notThrows(() => encodeEntry('audit', e), uri.slice(0, 3));
    t.false(/[\ud800-\udbff](?![\udc00-\udfff])/.test(e.what.path!));
  }
  t.notThrows(() => encodeEntry('audit', buildAuditEntry({ request: { id: 'a'.repeat(127) + '🙂' } }, ctx)));
});
