// The workbench's pure parts: the OCSF 1.8.0 API Activity mapping checked attribute by attribute
// against the schema's required attributes, the filters' parsers and SQL, time specs, CSV.
import test from 'ava';
import { DatabaseSync } from 'node:sqlite';
import { buildAuditEntry } from '../../plugin/capture/build-entry.js';
import { encodeEntry } from '../../plugin/capture/encode.js';
import type { KongSerializedLog } from '../../plugin/capture/kong-log.js';
import { compilePrivacy, DEFAULT_PRIVACY } from '../../plugin/capture/privacy-policy.js';
import { pseudonym } from '../../plugin/capture/pseudonyms.js';
import type { StoredRow } from '../../plugin/workbench/audit-index.js';
import { filterCondition, parseStatus, timeParser } from '../../plugin/workbench/filters.js';
import { csvField, csvRecord } from '../../plugin/workbench/formats.js';
import { indexRow } from '../../plugin/workbench/index-row.js';
import { activityOf, severityOf, toOcsf } from '../../plugin/workbench/ocsf.js';
import { candidates, storedIpText } from '../../plugin/workbench/pseudonym-search.js';
import { parseTimeSpec } from '../../plugin/workbench/time-spec.js';
import { generateFixtures, SCENARIO_KINDS } from '../fixtures/serialized-logs.js';

const KEY = { id: 'k1', secret: Buffer.from('unit-test-pseudonym-key-0123456789abc') };
const ctx = { serverUuid: 'srv-uuid', database: 'audit', prefix: 'audit', productVersion: '0.1.0' };

function row(log: KongSerializedLog | null, policy = compilePrivacy(DEFAULT_PRIVACY), n = 0): StoredRow {
  const entry = buildAuditEntry(log, { id: `0190c8e2-7b1a-7c3d-9e4f-${String(n).padStart(12, '0')}`, now: 1_767_225_600_000, nodeId: 'node-1', hostname: 'kong-1' }, [], policy);
  const rec = encodeEntry('audit', entry);
  const json = rec.value.toString();
  return { ...indexRow(rec.key.toString(), json, 42), tx_time: 1_767_225_601_000, json };
}

const pseudoPolicy = compilePrivacy({ ...DEFAULT_PRIVACY, pseudonymize: ['consumer_username', 'client_ip', 'subject'], pseudonym_key: KEY.secret.toString(), pseudonym_key_id: KEY.id, subject_headers: ['x-user'] });
const ROWS: Array<[string, StoredRow]> = [
  ...generateFixtures(SCENARIO_KINDS.length * 2, { seed: 11 }).map((f, i): [string, StoredRow] => [`${f.kind} #${i}`, row(JSON.parse(f.json) as KongSerializedLog, undefined, i)]),
  ...generateFixtures(SCENARIO_KINDS.length, { seed: 40 }).map((f, i): [string, StoredRow] => {
    const log = JSON.parse(f.json) as KongSerializedLog & { request: { headers: Record<string, string> } };
    log.request.headers['x-user'] = 'carol@example.com';
    return [`${f.kind} pseudonymised`, row(log, pseudoPolicy, 100 + i)];
  }),
  ['malformed input (no log at all)', row(null, undefined, 999)],
];

type Json = Record<string, any>;
const present = (v: unknown) => v !== undefined && v !== null && v !== '';
const atLeastOne = (o: Json, names: string[]) => names.some((n) => present(o[n]));

// Required attributes of OCSF 1.8.0 API Activity, from ocsf/ocsf-schema at tag 1.8.0:
//   events/base_event.json: activity_id, category_uid, class_uid, metadata, severity_id, time, type_uid
//   events/application/api_activity.json: actor, api, src_endpoint (class uid 3 in category 6,
//     categories.json "application" uid 6: class_uid 6003); profiles trace (profiles/trace.json)
//   objects/metadata.json: product, version;  objects/product.json -> objects/_entity.json: at least one of name, uid
//   objects/actor.json: at least one of process, user, invoked_by, session, app_name, app_uid
//   objects/user.json: at least one of account, name, uid
//   objects/api.json: operation;  objects/request.json: uid;  objects/service.json (_entity): name or uid
//   objects/network_endpoint.json: at least one of ip, uid, name, hostname, svc_name, instance_uid,
//     interface_uid, interface_name, domain; ip is an ip_t (dictionary.json)
//   objects/http_response.json: code;  objects/url.json: at least one of url_string, path
//   objects/trace.json: uid;  objects/span.json: uid, start_time, end_time
//   dictionary.json: time, start_time, end_time, logged_time are timestamp_t (ms since the epoch)
function checkRequired(t: import('ava').ExecutionContext, ev: Json, what: string) {
  for (const a of ['activity_id', 'category_uid', 'class_uid', 'metadata', 'severity_id', 'time', 'type_uid', 'actor', 'api', 'src_endpoint']) {
    t.true(present(ev[a]), `${what}: ${a} is required`);
  }
  t.is(ev.class_uid, 6003, what);
  t.is(ev.category_uid, 6, what);
  t.true([1, 2, 3, 4, 99].includes(ev.activity_id), what);
  t.is(ev.type_uid, 6003 * 100 + ev.activity_id, what);
  t.true([0, 1, 2, 3].includes(ev.severity_id), what);
  t.true(Number.isSafeInteger(ev.time) && ev.time > 0, `${what}: time in ms`);
  t.true([0, 1, 2].includes(ev.status_id), what);

  t.is(ev.metadata.version, '1.8.0', what);
  t.true(atLeastOne(ev.metadata.product, ['name', 'uid']), `${what}: metadata.product`);
  t.like(ev.metadata.product, { name: 'kong-immudb-audit', vendor_name: 'kong-immudb-audit', version: '0.1.0' });
  t.true(atLeastOne(ev.actor, ['process', 'user', 'invoked_by', 'session', 'app_name', 'app_uid']), `${what}: actor`);
  t.true(atLeastOne(ev.actor.user, ['account', 'name', 'uid']), `${what}: actor.user`);
  t.true(present(ev.api.operation), `${what}: api.operation`);
  if (ev.api.request) t.true(present(ev.api.request.uid), `${what}: api.request.uid`);
  if (ev.api.service) t.true(atLeastOne(ev.api.service, ['name', 'uid']), `${what}: api.service`);
  t.true(atLeastOne(ev.src_endpoint, ['ip', 'uid', 'name', 'hostname', 'svc_name', 'instance_uid', 'interface_uid', 'interface_name', 'domain']), `${what}: src_endpoint`);
  if (ev.src_endpoint.ip !== undefined) t.regex(ev.src_endpoint.ip, /^[0-9a-f.:]+$/, `${what}: src_endpoint.ip is an address`);
  if (ev.dst_endpoint) t.true(atLeastOne(ev.dst_endpoint, ['ip', 'uid', 'name', 'hostname']), `${what}: dst_endpoint`);
  if (ev.http_response) t.true(Number.isInteger(ev.http_response.code), `${what}: http_response.code`);
  if (ev.http_request?.url) t.true(atLeastOne(ev.http_request.url, ['url_string', 'path']), `${what}: url`);
  if (ev.trace) {
    t.true(present(ev.trace.uid), `${what}: trace.uid`);
    t.deepEqual(ev.metadata.profiles, ['trace'], `${what}: the trace profile is named`);
    if (ev.trace.span) for (const a of ['uid', 'start_time', 'end_time']) t.true(present(ev.trace.span[a]), `${what}: trace.span.${a}`);
  }
  // Nothing null: absent data is left out.
  t.false(JSON.stringify(ev).includes('null'), `${what}: no nulls`);
}

test('OCSF 1.8.0 API Activity: every required attribute, for every kind of entry', (t) => {
  for (const [what, r] of ROWS) checkRequired(t, toOcsf(r, ctx), what);
});

test('OCSF mapping of one entry, field by field', (t) => {
  const [, r] = ROWS.find(([w, x]) => w.startsWith('w3c-trace') && x.trace_id)!;
  const e = JSON.parse(r.json) as Json;
  const ev = toOcsf(r, ctx) as Json;
  t.is(ev.activity_id, activityOf(e.what.method));
  t.is(ev.time, Date.parse(e.time));
  t.is(ev.api.operation, e.what.method);
  t.is(ev.src_endpoint.ip, e.who.client_ip);
  t.deepEqual(ev.http_request.url, { path: e.what.path, hostname: e.what.host, scheme: e.what.scheme });
  t.is(ev.http_request.http_method, e.what.method);
  t.deepEqual(ev.http_response, { code: e.outcome.status });
  t.is(ev.metadata.uid, e.id);
  t.is(ev.metadata.logged_time, r.tx_time);
  t.is(ev.trace.uid, e.trace_id);
  t.is(ev.trace.span.uid, e.span_id ?? e.parent_span_id);
  t.deepEqual(ev.unmapped, { immudb: { tx_id: 42, server_uuid: 'srv-uuid', database: 'audit', key: `audit:entry:${e.id}` } });

  const anon = toOcsf(ROWS.find(([w]) => w.startsWith('anonymous'))![1], ctx) as Json;
  t.deepEqual(anon.actor, { user: { name: 'anonymous', type_id: 0, type: 'Unknown' } });
  const pseudo = toOcsf(ROWS.find(([w, x]) => w.endsWith('pseudonymised') && x.client_ip)![1], ctx) as Json;
  t.regex(pseudo.src_endpoint.uid, /^hmac:k1:/, 'a pseudonymised address is not an ip_t');
  t.is(pseudo.src_endpoint.ip, undefined);
});

test('activity and severity', (t) => {
  t.deepEqual(['POST', 'GET', 'HEAD', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', null].map(activityOf), [1, 2, 2, 3, 3, 4, 99, 99]);
  t.deepEqual([['success', 200], ['failure', 401], ['failure', 403], ['failure', 407], ['failure', 404], ['failure', 502], ['unknown', null]].map(([r, s]) => severityOf(r as string, s as number | null)), [1, 3, 3, 3, 2, 2, 0]);
});

test('time specs: RFC 3339 and durations back from now', (t) => {
  const now = Date.parse('2026-12-02T12:00:00Z');
  t.is(parseTimeSpec('24h', now), now - 86_400_000);
  t.is(parseTimeSpec('30m', now), now - 1_800_000);
  t.is(parseTimeSpec('7d', now), now - 7 * 86_400_000);
  t.is(parseTimeSpec('2026-12-01T09:30:00Z', now), Date.parse('2026-12-01T09:30:00Z'));
  t.is(parseTimeSpec('2026-12-01T09:30:00.250+02:00', now), Date.parse('2026-12-01T07:30:00.250Z'));
  t.is(parseTimeSpec('2026-12-01', now), Date.parse('2026-12-01T00:00:00Z'));
  for (const bad of ['yesterday', '2026-02-30', '2026-12-01T25:00:00Z', '2026-12-01T09:30:00', '-1h', '1y', '']) t.true(parseTimeSpec(bad, now) instanceof Error, bad);
  t.throws(() => timeParser(now)('soon'), { message: /expected an RFC 3339 time/ });
});

test('filters: status classes, path prefixes taken literally, pseudonym candidates', (t) => {
  t.deepEqual(parseStatus('401,4xx'), [{ code: 401 }, { from: 400, to: 499 }]);
  for (const bad of ['600', '4x', '40', 'abc', '401,']) t.throws(() => parseStatus(bad), undefined, bad);
  const db = new DatabaseSync(':memory:');
  db.exec('CREATE TABLE entries (path TEXT, status INTEGER, consumer_id TEXT, consumer_username TEXT, consumer_custom_id TEXT, client_ip TEXT, time INTEGER)');
  const ins = db.prepare('INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?)');
  for (const p of ['/api/pay', '/api/payments', '/api/payments/1', '/api/pay*ments', '/api/pay[x]', '/API/payments']) ins.run(p, 200, null, null, null, null, 0);
  const paths = (prefix: string) => {
    const c = filterCondition({ path: prefix });
    return (db.prepare(`SELECT path FROM entries WHERE ${c.where} ORDER BY path`).all(...c.params) as Array<{ path: string }>).map((r) => r.path);
  };
  t.deepEqual(paths('/api/payments'), ['/api/payments', '/api/payments/1']);
  t.deepEqual(paths('/api/pay*'), ['/api/pay*ments']);
  t.deepEqual(paths('/api/pay['), ['/api/pay[x]']);
  t.deepEqual(candidates(undefined, 'consumer_username', 'alice'), ['alice']);
  t.deepEqual(candidates(KEY, 'consumer_username', 'alice'), ['alice', pseudonym(KEY, 'username', 'alice')]);
  t.deepEqual(candidates(KEY, 'client_ip', '2001:0DB8::0001'), ['2001:0DB8::0001', pseudonym(KEY, 'ip', '2001:db8::1')]);
  t.is(storedIpText('203.0.113.77/24'), '203.0.113.0/24');
  t.is(storedIpText('::ffff:10.0.0.1'), '10.0.0.1');
  t.is(storedIpText('example.com'), null);
  t.is(storedIpText('10.0.0.1/33'), null);
});

test('CSV fields are quoted as RFC 4180 says', (t) => {
  t.is(csvField('plain'), 'plain');
  t.is(csvField(null), '');
  t.is(csvField(401), '401');
  t.is(csvField('a,b'), '"a,b"');
  t.is(csvField('say "hi"'), '"say ""hi"""');
  t.is(csvField('two\nlines'), '"two\nlines"');
  t.is(csvRecord(['a', 'b,c', null]), 'a,"b,c",\r\n');
});
