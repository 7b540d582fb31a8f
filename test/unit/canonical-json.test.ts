// canonicalJson (plugin/capture/canonical-json.ts) gives exactly what the canonicalize package,
// the reference implementation of RFC 8785, gives: on realistic audit entries (by both of its
// paths) and on awkward values, with the same refusals. And the records encodeEntry makes hold
// the canonical JSON in one exact-size allocation.
import test from 'ava';
import canonicalize from 'canonicalize';
import { buildAuditEntry } from '../../plugin/capture/build-entry.js';
import { compilePrivacy, DEFAULT_POLICY, DEFAULT_PRIVACY } from '../../plugin/capture/privacy-policy.js';
import { canonicalJson, inCanonicalOrder, isCanonicalOrder } from '../../plugin/capture/canonical-json.js';
import { encodeEntry } from '../../plugin/capture/encode.js';
import { auditId } from '../../plugin/capture/audit-id.js';
import type { KongSerializedLog } from '../../plugin/capture/kong-log.js';
import { generateFixtures } from '../fixtures/serialized-logs.js';
import { reverseMembers } from '../helpers/reverse-members.js';

// Every fixture kind, under the default policy and under one that stores as much as the policy
// allows (header and query allow-lists given out of order, pseudonyms, truncated addresses).
const widePolicy = compilePrivacy({
  ...DEFAULT_PRIVACY,
  request_headers: ['x-request-id', 'User-Agent', 'accept', 'content-type', 'x-zz', 'a-first', 'x-b3-traceid'],
  response_headers: ['x-ratelimit-remaining', 'content-type', 'server', 'age', 'via'],
  query_params: ['page', 'limit', 'q', 'a', 'Z', 'sort'],
  subject_headers: ['x-authenticated-userid', 'user-agent'],
  record_forwarded_for: true,
  pseudonymize: ['consumer_username', 'consumer_custom_id', 'client_ip', 'forwarded_for', 'subject'],
  pseudonym_key: 'k'.repeat(40),
  pseudonym_key_id: 'k1',
  ipv4_prefix: 24,
  ipv6_prefix: 48,
});
const entries = generateFixtures(300, { seed: 4242 }).map((f, i) =>
  buildAuditEntry(JSON.parse(f.json) as KongSerializedLog, { id: auditId(), now: 1_700_000_000_000 + i, nodeId: 'n1', hostname: 'h' }, i % 7 === 0 ? ['a problem'] : [], i % 2 ? widePolicy : DEFAULT_POLICY));

test('build-entry emits members in canonical order, so canonicalJson is one JSON.stringify', (t) => {
  t.true(entries.some((e) => e.what.request_headers && Object.keys(e.what.request_headers).length > 1), 'some entries store several headers');
  t.true(entries.some((e) => e.what.query && Object.keys(e.what.query).length > 1), 'some entries store several query parameters');
  t.true(entries.some((e) => e.who.subject && e.who.consumer), 'some entries have a subject and a consumer');
  for (const e of entries) t.true(isCanonicalOrder(e), JSON.stringify(e));
});

test('canonicalJson equals canonicalize on realistic audit entries, both paths', (t) => {
  for (const e of entries) {
    t.is(canonicalJson(e), canonicalize(e));
    const shuffled = reverseMembers(e);
    t.false(isCanonicalOrder(shuffled));
    t.is(canonicalJson(shuffled), canonicalize(e), 'the sorted-copy path');
    t.true(isCanonicalOrder(inCanonicalOrder(shuffled)));
  }
});

test('canonicalJson equals canonicalize on awkward values', (t) => {
  const values: unknown[] = [
    { b: 1, a: [3, { d: null, c: 'x' }], '10': 1, '9': 2, é: 'é', '\u00e9\u0301': 1, A: true },
    { x: undefined, y: () => 1, z: [undefined, 1e21, 1e-7, -0, 0.1 + 0.2] },
    ['a', 'b\n"\\', '\u2028\u2029', '\u{1F600}', { '': 0 }],
    'plain', 42, null, true, [],
    { nested: { deeper: { deepest: { k2: 1, k1: 2 } } } },
    { date: new Date(0) },
    { '\u{1F600}': 1, '\uFFFF': 2, z: 3 },
  ];
  for (const v of values) t.is(canonicalJson(v), canonicalize(v), JSON.stringify(v));
  for (const bad of [{ a: NaN }, { a: Infinity }, ['\ud800'], { '\udc00': 1 }]) {
    t.throws(() => canonicalize(bad));
    t.throws(() => canonicalJson(bad));
  }
});

test('encodeEntry: key and canonical JSON value in one exact-size allocation of their own', (t) => {
  for (const e of entries) {
    const r = encodeEntry('audit', e);
    t.is(r.id, e.id);
    t.is(r.key.toString(), `audit:entry:${e.id}`);
    t.is(r.value.toString(), canonicalize(e)!);
    t.is(r.key.buffer, r.value.buffer);
    t.is(r.key.buffer.byteLength, r.key.length + r.value.length);
  }
});
