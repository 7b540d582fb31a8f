// Privacy rules, unit by unit: addresses, pseudonyms, redaction of names/values/paths, secret
// references, the compiled policy, and entries built under a policy (checked against the schema).
import test from 'ava';
import { createHmac } from 'node:crypto';
import { createRequire } from 'node:module';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { formatIp, parseIp, truncatedIp } from '../../plugin/capture/ip-address.js';
import { pseudonym, PSEUDONYM_PATTERN } from '../../plugin/capture/pseudonyms.js';
import { isDeniedHeader, isSecretParam, scrubPath, scrubValue, parsePathTemplate } from '../../plugin/capture/redaction.js';
import { compilePrivacy, DEFAULT_PRIVACY, type PrivacySettings } from '../../plugin/capture/privacy-policy.js';
import { redactSecretFields, resolveSecretRefs, unresolvedVaultRefs, withoutSecrets } from '../../plugin/capture/secret-refs.js';
import { boundProblems, safeProblem } from '../../plugin/capture/safe-read.js';
import { buildAuditEntry } from '../../plugin/capture/build-entry.js';
import { encodeEntry } from '../../plugin/capture/encode.js';
import type { KongSerializedLog } from '../../plugin/capture/kong-log.js';
import { parseConfig } from '../../plugin/config/config.js';
import { ConfigError, type KongField, type KongFieldList } from '../../plugin/config/kong-schema.js';
import { privacyFields } from '../../plugin/config/fields/privacy.js';
import { tlsFields, tlsProblems } from '../../plugin/config/fields/tls.js';
import { immudbTlsOptions } from '../../plugin/pipeline/connection.js';
/** No default credentials (docs/decisions.md #17): every config names its user and password. */
const CREDS = { immudb_username: 'audit_writer', immudb_password: 'pw' };

const require = createRequire(import.meta.url);
const validate = new Ajv2020({ allErrors: true }).compile(JSON.parse(readFileSync(require.resolve('../../../schemas/audit-entry.v1.json'), 'utf8')));

const KEY = 'k'.repeat(16) + '0123456789abcdef0123456789';
const ctx = { id: '019ab2c3-d4e5-7f60-8a1b-2c3d4e5f6a7b', now: Date.UTC(2026, 10, 24), nodeId: 'n1', hostname: 'gw' };
const hmac = (domain: string, value: string, key = KEY) => createHmac('sha256', key).update(`${domain}\u0000${value}`).digest('hex');

function policy(over: Partial<PrivacySettings> = {}) {
  return compilePrivacy({ ...DEFAULT_PRIVACY, ...over });
}

// --- addresses ------------------------------------------------------------------------------

test('IP addresses: strict parsing, canonical text, truncation', (t) => {
  t.is(formatIp(parseIp('203.0.113.9')!), '203.0.113.9');
  t.is(formatIp(parseIp('2001:DB8:0:0:0:0:0:1')!), '2001:db8::1');
  t.is(formatIp(parseIp('2001:db8::0abc:0')!), '2001:db8::abc:0');
  t.is(formatIp(parseIp('2001:0:0:1:0:0:0:1')!), '2001:0:0:1::1', 'longest zero run');
  t.is(formatIp(parseIp('::ffff:198.51.100.7')!), '198.51.100.7', 'IPv4-mapped becomes IPv4');
  t.is(formatIp(parseIp('[2001:db8::1]')!), '2001:db8::1');
  t.is(formatIp(parseIp('fe80::1%eth0')!), 'fe80::1', 'zone id dropped');
  t.is(formatIp(parseIp('::')!), '::');
  for (const bad of ['', 'localhost', '1.2.3', '1.2.3.256', '01.2.3.4', '1.2.3.4:80', '2001:db8::1::1', '12345::', 'unix:', 'x'.repeat(100), '::1.2.3.4.5', '1.2.3.4::']) {
    t.is(parseIp(bad), null, bad);
  }
  t.is(truncatedIp(parseIp('203.0.113.9')!, 24, 48), '203.0.113.0/24');
  t.is(truncatedIp(parseIp('203.0.113.9')!, 32, 48), '203.0.113.9');
  t.is(truncatedIp(parseIp('2001:db8:1234:5678::9')!, 24, 48), '2001:db8:1234::/48');
  t.is(truncatedIp(parseIp('2001:db8:1234:5678::9')!, 24, 56), '2001:db8:1234:5600::/56');
  t.is(truncatedIp(parseIp('10.1.2.3')!, 12, 128), '10.0.0.0/12');
});

// --- pseudonyms -----------------------------------------------------------------------------

test('pseudonyms are HMAC-SHA256 under the key, with the key id, separated by kind', (t) => {
  const key = { id: 'k2026-q1', secret: Buffer.from(KEY) };
  const p = pseudonym(key, 'username', 'alice');
  t.regex(p, PSEUDONYM_PATTERN);
  t.is(p, `hmac:k2026-q1:${hmac('username', 'alice')}`);
  t.is(pseudonym(key, 'username', 'alice'), p, 'deterministic: linkable by the key holder');
  t.not(pseudonym(key, 'subject', 'alice'), p, 'another kind of identifier, another pseudonym');
  t.not(pseudonym({ id: 'k2026-q2', secret: Buffer.from(KEY.replace('k', 'j')) }, 'username', 'alice').split(':')[2], p.split(':')[2], 'another key, unlinkable');
  // Why a key: an unkeyed hash of an IPv4 address is reversed by hashing all 2^32 of them; the
  // keyed one cannot be computed without the key.
  t.false(p.includes(createHmac('sha256', '').update('username\u0000alice').digest('hex')));
});

// --- redaction rules ------------------------------------------------------------------------

test('never-stored headers: credentials, API keys, key-auth names, secret-looking names', (t) => {
  const keyNames = new Set(['x-partner-key', 'partner']);
  for (const h of ['authorization', 'Proxy-Authorization', 'cookie', 'set-cookie', 'apikey', 'x-api-key', 'partner', 'x-auth-token', 'x-csrf-token', 'x-amz-security-token', 'x-session-id', 'x-client-secret', 'x-signature', 'sec-websocket-key', 'x-jwt-assertion', 'x-password']) {
    t.true(isDeniedHeader(h, keyNames), h);
  }
  for (const h of ['user-agent', 'referer', 'content-type', 'x-request-id', 'accept-language', 'x-forwarded-for', 'origin']) t.false(isDeniedHeader(h, keyNames), h);
  for (const q of ['token', 'access_token', 'api_key', 'apikey', 'password', 'client_secret', 'signature', 'X-Amz-Signature', 'X-Amz-Credential', 'sig', 'code', 'partner', 'sessionid', 'jsessionid']) {
    t.true(isSecretParam(q, keyNames), q);
  }
  for (const q of ['status', 'page', 'limit', 'sort', 'q', 'redirect', 'state']) t.false(isSecretParam(q, keyNames), q);
});

test('stored values are cleaned of credentials, JWTs, URL queries and secret pairs', (t) => {
  const jwt = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXNlY3JldA';
  t.is(scrubValue('Bearer abc.def'), '[redacted]');
  t.is(scrubValue('Basic dXNlcjpwYXNz'), '[redacted]');
  t.is(scrubValue(`x ${jwt} y`), 'x [redacted] y');
  t.is(scrubValue('https://user:pw@app.example.com/cb?token=SECRET#frag'), 'https://app.example.com/cb');
  t.is(scrubValue('/login?next=/a&password=SECRET'), '/login');
  t.is(scrubValue('app=mobile; session=SECRET; v=2'), 'app=mobile; session=[redacted]; v=2');
  t.is(scrubValue('Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0'), 'Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0');
  t.is(scrubValue('application/json; charset=utf-8'), 'application/json; charset=utf-8');
});

test('paths: matrix parameters dropped, JWT segments and template segments redacted', (t) => {
  const jwt = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln';
  const templates = ['/password-reset/:redact', '/hooks/*/*/:redact', '/users/*/tokens/:redact'].map(parsePathTemplate);
  t.is(scrubPath('/app;jsessionid=SECRET/orders;v=1/42', templates), '/app/orders/42');
  t.is(scrubPath(`/magic/${jwt}/x`, templates), '/magic/{redacted}/x');
  t.is(scrubPath('/password-reset/SECRET', templates), '/password-reset/{redacted}');
  t.is(scrubPath('/password-reset/SECRET/confirm', templates), '/password-reset/{redacted}/confirm');
  t.is(scrubPath('/hooks/T01/B02/SECRET', templates), '/hooks/T01/B02/{redacted}');
  t.is(scrubPath('/hooks/T01', templates), '/hooks/T01', 'a shorter path does not match');
  t.is(scrubPath('/users/42/tokens/SECRET', templates), '/users/42/tokens/{redacted}');
  t.is(scrubPath('/orders/42', templates), '/orders/42');
});

// --- secret references ----------------------------------------------------------------------

test('secret references: env:, file:, unresolved vault; errors name fields, never values', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kia-ref-'));
  try {
    writeFileSync(join(dir, 'key'), 'from-a-file\n');
    const env = { AUDIT_KEY: 'from-the-env-0123456789-0123456789' };
    const cfg = parseConfig({ ...CREDS, immudb_password: `file:${join(dir, 'key')}`, privacy: { pseudonym_key: 'env:AUDIT_KEY' } });
    const r = resolveSecretRefs(cfg, { env });
    t.is(r.immudb_password, 'from-a-file');
    t.is(r.privacy.pseudonym_key, env.AUDIT_KEY);
    t.is(cfg.privacy.pseudonym_key, 'env:AUDIT_KEY', 'the input is not changed');

    const bad = parseConfig({ ...CREDS, immudb_password: '{vault://env/immudb-pw}', privacy: { pseudonym_key: 'env:MISSING_VAR' } });
    const err = t.throws(() => resolveSecretRefs(bad, { env }), { instanceOf: ConfigError })!;
    t.deepEqual(err.problems, [
      'immudb_password: the vault reference was not resolved by Kong (is the vault configured, and is Kong\'s schema for this plugin up to date?)',
      "privacy.pseudonym_key: environment variable MISSING_VAR is not set in the plugin server's environment",
    ]);
    // The shape of a reference needs no I/O: the schema refuses it (so does Kong, decisions #21).
    const shape = t.throws(() => parseConfig({ ...CREDS, privacy: { pseudonym_key: 'env:NOT-A-NAME' }, tls: { client_cert: 'file:relative/cert', client_key: 'file:relative/path' } }), { instanceOf: ConfigError })!;
    t.deepEqual(shape.problems, [
      'privacy.pseudonym_key: invalid environment variable name in env: reference',
      'tls.client_cert: file: reference must be an absolute path',
      'tls.client_key: file: reference must be an absolute path',
    ]);
    const missing = t.throws(() => resolveSecretRefs(parseConfig({ ...CREDS, immudb_password: `file:${join(dir, 'nope')}` }), { env }), { instanceOf: ConfigError })!;
    t.regex(missing.message, /immudb_password: cannot read .*nope \(ENOENT\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('secret fields are redacted in place, nested ones too; withoutSecrets copies', (t) => {
  const raw: Record<string, unknown> = { immudb_password: 'pw-SECRET', privacy: { pseudonym_key: 'hmac-SECRET', request_headers: ['a'] }, tls: { client_key: 'pem-SECRET', ca_cert: 'ca' } };
  const copy = withoutSecrets(raw);
  t.false(JSON.stringify(copy).includes('SECRET'));
  t.true(JSON.stringify(raw).includes('SECRET'), 'withoutSecrets leaves the original');
  redactSecretFields(raw);
  t.false(JSON.stringify(raw).includes('SECRET'));
  t.deepEqual(raw.tls, { client_key: '<redacted>', ca_cert: 'ca' });
  t.notThrows(() => redactSecretFields(null));
  t.notThrows(() => redactSecretFields({ privacy: 'not a record' }));
});

// --- policy ---------------------------------------------------------------------------------

test('policy: denied names leave the allow-lists; pseudonyms need a long key and a key id', (t) => {
  const p = policy({ request_headers: ['User-Agent', 'Authorization', 'cookie', 'X-API-Key', 'x-partner'], key_names: ['X-Partner'], response_headers: ['set-cookie', 'content-type'] });
  t.deepEqual(p.requestHeaders, ['user-agent']);
  t.deepEqual(p.refused.request_headers, ['authorization', 'cookie', 'x-api-key', 'x-partner']);
  t.deepEqual(p.responseHeaders, ['content-type']);
  t.deepEqual(t.throws(() => policy({ pseudonymize: ['client_ip'] }), { instanceOf: ConfigError })!.problems, [
    'privacy.pseudonym_key: required when privacy.pseudonymize is set',
    'privacy.pseudonym_key_id: required when privacy.pseudonymize is set (it is stored in every entry)',
  ]);
  const short = t.throws(() => policy({ pseudonymize: ['client_ip'], pseudonym_key: 'short-SECRET', pseudonym_key_id: 'k1' }), { instanceOf: ConfigError })!;
  t.false(short.message.includes('short-SECRET'));
  t.is(policy({ pseudonymize: ['client_ip'], pseudonym_key: KEY, pseudonym_key_id: 'k1' }).key?.id, 'k1');
});

test('config: the privacy and tls groups follow Kong schema conventions and default to minimal', (t) => {
  const c = parseConfig({ ...CREDS, ...CREDS });
  t.deepEqual(c.privacy, DEFAULT_PRIVACY);
  t.deepEqual(c.tls, { enabled: false, ca_cert: null, client_cert: null, client_key: null, server_name: null });
  const check = (fields: KongFieldList, path: string) => {
    for (const entry of fields) {
      for (const [name, f] of Object.entries(entry) as Array<[string, KongField]>) {
        t.regex(name, /^[a-z][a-z0-9_]*$/, `${path}${name} is snake_case`);
        t.truthy(f.description, `${path}${name} has a description`);
        if ('referenceable' in f) t.is(f.type, 'string', `${path}${name}: only strings are referenceable`);
        if (f.type === 'record') check(f.fields, `${path}${name}.`);
      }
    }
  };
  check(privacyFields, '');
  check(tlsFields, '');
  const err = t.throws(() => parseConfig({ ...CREDS, privacy: { pseudonymize: ['email'], request_headers: ['bad header'], ipv4_prefix: 4 } }), { instanceOf: ConfigError })!;
  // one_of, match, between, and the two entity checks of pseudonymize (Kong runs them with invalid fields)
  t.is(err.problems.length, 5, err.problems.join('\n'));
});

test('TLS settings: material is checked at start without being quoted', (t) => {
  t.is(immudbTlsOptions(parseConfig({ ...CREDS })), undefined);
  // Not PEM at all: the schema refuses it, without quoting it.
  const notPem = t.throws(() => parseConfig({ ...CREDS, tls: { enabled: true, ca_cert: 'not-a-pem-SECRET' } }), { instanceOf: ConfigError })!;
  t.regex(notPem.message, /tls\.ca_cert: expected certificates in PEM/);
  t.false(notPem.message.includes('SECRET'));
  // PEM-shaped but not parseable: found at start, by the plugin server.
  const bad = parseConfig({ ...CREDS, tls: { enabled: true, ca_cert: '-----BEGIN CERTIFICATE-----\nSECRET\n-----END CERTIFICATE-----', client_cert: 'BEGIN CERTIFICATE SECRET', client_key: '-----BEGIN PRIVATE KEY-----\nSECRET\n-----END PRIVATE KEY-----' } });
  const problems = tlsProblems(bad);
  t.deepEqual(problems, [
    'tls.ca_cert: a certificate in it cannot be parsed',
    'tls.client_cert: not a PEM certificate',
    'tls.client_key: not a PEM private key (or an encrypted one, which is not supported)',
  ]);
  // One without the other is refused by the schema (Kong's mutually_required), before any I/O.
  const half = t.throws(() => parseConfig({ ...CREDS, tls: { enabled: true, client_key: 'env:KEY' } }), { instanceOf: ConfigError })!;
  t.deepEqual(half.problems, ["tls: all or none of these fields must be set: 'tls.client_cert', 'tls.client_key'"]);
  t.false(problems.join().includes('SECRET'));
});

// --- problems -------------------------------------------------------------------------------

test('capture problems never quote the input (V8 JSON.parse messages do)', (t) => {
  for (const text of ['{"a": SECRETabc}', '{"apikey": "SECRETabc", x', '{"a":"SECRET', '{"a":"b"} SECRET']) {
    let msg = '';
    try {
      JSON.parse(text);
    } catch (e) {
      msg = (e as Error).message;
    }
    const p = safeProblem(`kong.log.serialize returned invalid JSON: ${msg}`);
    t.regex(p, /^kong\.log\.serialize returned invalid JSON: [A-Za-z -]+( at position \d+)?$/, p);
    t.false(p.includes('SECRET'), p);
  }
  const many = Array.from({ length: 100 }, (_, i) => `p${i}`);
  boundProblems(many);
  t.is(many.length, 32);
  t.is(many[31], '69 more problems');
});

// --- entries under a policy -----------------------------------------------------------------

const jwt = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.SECRETsig';
const log: KongSerializedLog = {
  request: {
    id: 'r1',
    uri: '/app;jsessionid=SECRET1/password-reset/SECRET2?token=SECRET3&status=open',
    url: 'https://user:SECRET4@api.example.com:8443/app?token=SECRET3',
    querystring: { token: 'SECRET3', status: 'open', tag: ['a', 'b'], verbose: true, redirect: 'https://x.example/cb?code=SECRET5', api_key: 'SECRET6', partner: 'SECRET7' },
    method: 'GET',
    headers: {
      authorization: 'Bearer SECRET8', cookie: 'sid=SECRET9', apikey: 'SECRET10', 'x-api-key': 'SECRET11', partner: 'SECRET12',
      'user-agent': 'curl/8.5.0', referer: 'https://app.example.com/page?session=SECRET13', 'x-custom': ['a=1; token=SECRET14', 'b'],
      'x-forwarded-for': '198.51.100.1, 10.0.0.7:8080, garbage-SECRET15, 2001:db8::7',
      forwarded: 'for="[2001:db8::8]:4711";proto=https, for=unknown',
      'x-authenticated-userid': 'alice@example.com',
    },
  },
  response: { status: 200, headers: { 'set-cookie': 'sid=SECRET16', 'content-type': 'application/json', location: `/next?t=${jwt}` } },
  authenticated_entity: { id: 'cred-1' },
  consumer: { id: 'c1', username: 'alice', custom_id: 'emp-7' },
  client_ip: '203.0.113.9',
  started_at: Date.UTC(2026, 10, 24, 11),
  source: 'upstream',
};

const fullPolicy = () => policy({
  request_headers: ['user-agent', 'referer', 'x-custom', 'authorization', 'cookie', 'apikey', 'x-api-key', 'partner'],
  response_headers: ['content-type', 'location', 'set-cookie'],
  query_params: ['status', 'tag', 'verbose', 'redirect', 'token', 'api_key', 'partner', 'absent'],
  key_names: ['partner'],
  path_redactions: ['/app/password-reset/:redact'],
  subject_headers: ['x-authenticated-userid'],
  record_forwarded_for: true,
});

test('allow-listed headers and parameters are stored, cleaned; secrets never', (t) => {
  const e = buildAuditEntry(log, ctx, [], fullPolicy());
  t.deepEqual(e.what.request_headers, { 'user-agent': 'curl/8.5.0', referer: 'https://app.example.com/page', 'x-custom': 'a=1; token=[redacted], b' });
  t.deepEqual(e.outcome.response_headers, { 'content-type': 'application/json', location: '/next' });
  t.deepEqual(e.what.query, { status: 'open', tag: ['a', 'b'], verbose: true, redirect: 'https://x.example/cb', token: '[redacted]', api_key: '[redacted]', partner: '[redacted]' });
  t.is(e.what.path, '/app/password-reset/{redacted}');
  t.is(e.what.host, 'api.example.com', 'userinfo skipped');
  t.deepEqual(e.who.forwarded_for, ['198.51.100.1', '10.0.0.7', '2001:db8::7', '2001:db8::8']);
  t.deepEqual(e.who.subject, { value: 'alice@example.com', source: 'header:x-authenticated-userid' });
  t.is(e.who.client_ip, '203.0.113.9');
  t.deepEqual(e.capture_problems, []);
  t.true(validate(e), JSON.stringify(validate.errors));
  const text = encodeEntry('a', e).value.toString();
  t.notRegex(text, /SECRET/);
});

test('the minimal default stores none of it', (t) => {
  const e = buildAuditEntry(log, ctx, []);
  t.is(e.what.request_headers, null);
  t.is(e.what.query, null);
  t.is(e.outcome.response_headers, null);
  t.is(e.who.forwarded_for, null);
  t.is(e.who.subject, null);
  t.true(validate(e), JSON.stringify(validate.errors));
  // SECRET2 sits in a plain path segment: only a path_redactions template can know it is one.
  t.is(e.what.path, '/app/password-reset/SECRET2');
  t.notRegex(encodeEntry('a', e).value.toString().replace('/SECRET2', ''), /SECRET|alice@example|198\.51\.100\.1/);
});

test('the subject is taken only when Kong verified a credential', (t) => {
  const anonymous = { ...log, authenticated_entity: undefined, consumer: { id: 'anon' } } as KongSerializedLog;
  t.is(buildAuditEntry(anonymous, ctx, [], fullPolicy()).who.subject, null, 'a client-sent header on an unauthenticated request is ignored');
});

test('pseudonyms and truncation: HMACs under the key, key id and treatment recorded, schema-checked', (t) => {
  const p = policy({ pseudonymize: ['consumer_username', 'consumer_custom_id', 'client_ip', 'forwarded_for', 'subject'], pseudonym_key: KEY, pseudonym_key_id: 'k1', subject_headers: ['x-authenticated-userid'], record_forwarded_for: true });
  const e = buildAuditEntry(log, ctx, [], p);
  t.is(e.who.consumer!.username, `hmac:k1:${hmac('username', 'alice')}`);
  t.is(e.who.consumer!.custom_id, `hmac:k1:${hmac('custom_id', 'emp-7')}`);
  t.is(e.who.consumer!.id, 'c1', "Kong's consumer id is kept (it is the link to Kong's database, which is erasable)");
  t.is(e.who.client_ip, `hmac:k1:${hmac('ip', '203.0.113.9')}`);
  t.is(e.where.client_ip, e.who.client_ip);
  t.is(e.who.forwarded_for![0], `hmac:k1:${hmac('ip', '198.51.100.1')}`);
  t.is(e.who.subject!.value, `hmac:k1:${hmac('subject', 'alice@example.com')}`);
  t.deepEqual(e.privacy, { pseudonym_key_id: 'k1', pseudonymized: ['who.consumer.username', 'who.consumer.custom_id', 'who.client_ip', 'where.client_ip', 'who.forwarded_for', 'who.subject.value'], ip_prefix: null });
  t.true(validate(e), JSON.stringify(validate.errors));
  const text = encodeEntry('a', e).value.toString();
  for (const personal of ['alice', 'emp-7', '203.0.113.9', '198.51.100.1']) t.false(text.includes(personal), personal);

  // Same address, other spelling: same pseudonym.
  const v6 = (ip: string) => buildAuditEntry({ ...log, client_ip: ip }, ctx, [], p).who.client_ip;
  t.is(v6('2001:DB8:0::1'), v6('2001:db8::1'));

  const tr = buildAuditEntry({ ...log, client_ip: '2001:db8:1234:5678::9' }, ctx, [], policy({ ipv4_prefix: 24, ipv6_prefix: 48, record_forwarded_for: true }));
  t.is(tr.who.client_ip, '2001:db8:1234::/48');
  t.deepEqual(tr.who.forwarded_for, ['198.51.100.0/24', '10.0.0.0/24', '2001:db8::/48', '2001:db8::/48']);
  t.deepEqual(tr.privacy.ip_prefix, { v4: 24, v6: 48 });
  t.true(validate(tr), JSON.stringify(validate.errors));

  const both = buildAuditEntry(log, ctx, [], policy({ ipv4_prefix: 24, pseudonymize: ['client_ip'], pseudonym_key: KEY, pseudonym_key_id: 'k1' }));
  t.is(both.who.client_ip, `hmac:k1:${hmac('ip', '203.0.113.0/24')}`, 'truncated, then pseudonymised: groups by network');
});

test('the schema rejects an entry that claims pseudonyms it does not hold', (t) => {
  const e = buildAuditEntry(log, ctx, []);
  t.true(validate(e));
  const lying = { ...e, privacy: { pseudonym_key_id: 'k1', pseudonymized: ['who.consumer.username'], ip_prefix: null } };
  t.false(validate(lying), 'username must be a pseudonym when the entry says so');
  const noKey = { ...e, who: { ...e.who, consumer: { ...e.who.consumer!, username: `hmac:k1:${'0'.repeat(64)}` } }, privacy: { pseudonym_key_id: null, pseudonymized: ['who.consumer.username'], ip_prefix: null } };
  t.false(validate(noKey), 'pseudonyms need their key id');
  t.false(validate({ ...e, what: { ...e.what, request_headers: { cookie: 'x' } } }), 'credential headers are outside the format');
  t.false(validate({ ...e, what: { ...e.what, path: '/a;jsessionid=x' } }), 'matrix parameters are outside the format');
});

test('client_ip that is not an address is not stored; prototype keys stay data', (t) => {
  const problems: string[] = [];
  const hostile = JSON.parse('{"client_ip":"SECRET-not-an-ip","request":{"headers":{"__proto__":{"x":1},"constructor":"c","user-agent":"u"},"querystring":{"__proto__":"p","status":"s"}}}') as KongSerializedLog;
  const e = buildAuditEntry(hostile, ctx, problems, policy({ request_headers: ['__proto__', 'constructor', 'user-agent'], query_params: ['__proto__', 'status'] }));
  t.is(e.who.client_ip, null);
  t.true(e.capture_problems.includes('client_ip is not an IP address; not stored'));
  t.deepEqual(Object.keys(e.what.request_headers!), ['constructor', 'user-agent']);
  t.is(Object.getPrototypeOf(e.what.query), Object.prototype);
  t.deepEqual(Object.keys(e.what.query!), ['__proto__', 'status']);
  t.is(({} as Record<string, unknown>).x, undefined);
  t.false(encodeEntry('a', e).value.toString().includes('SECRET'));
});

test('cleaning is linear on hostile values and catches secrets cut by truncation', (t) => {
  // Capture cleans at most 16 values of SCRUB_WINDOW (4 KiB) per header: 64 KiB.
  const n = 64 * 1024;
  for (const unit of ['eyJ', 'a', 'a=', '//', ' /a', 'x"', 'eyJabcd.', 'a="', ' /a?', 'a:b ']) {
    const hostile = unit.repeat(Math.ceil(n / unit.length));
    // CPU time of this process, not wall-clock time: other processes' load does not count. A
    // quadratic scan of 64 KiB takes seconds; the linear one a few ms.
    const t0 = process.cpuUsage();
    scrubValue(hostile);
    scrubPath(hostile.slice(0, 4096), [parsePathTemplate('/a/:redact')]);
    const used = process.cpuUsage(t0);
    const ms = (used.user + used.system) / 1000;
    t.true(ms < 500, `${unit} x ${n / unit.length}: ${ms.toFixed(0)} ms of CPU`);
  }
  // A JWT cut before its signature (a bounded field) is still recognised.
  t.is(scrubValue('id eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ6cVMzQ1IzVA'), 'id [redacted]');
  // An allow-listed header longer than the stored length: the query string beyond the cut is cleaned first.
  const e = buildAuditEntry({ request: { headers: { referer: `https://app.example.com/${'p'.repeat(1000)}?token=zqS3CR3T-cut` } } }, ctx, [], policy({ request_headers: ['referer'] }));
  t.false(JSON.stringify(e).includes('zqS3CR3T'));
  t.true(e.what.request_headers!.referer!.length <= 1025);
});

test("Kong's $refs: ignored by validation, and used to name a vault reference Kong could not resolve", (t) => {
  // What Kong sends after resolving references (kong/db/schema/init.lua process_auto_fields).
  const sent = { immudb_username: 'audit_writer', immudb_password: 'resolved', $refs: { immudb_password: '{vault://env/pw}' }, privacy: { pseudonym_key: '', $refs: { pseudonym_key: '{vault://hcv/audit-key}' } } };
  t.notThrows(() => parseConfig({ ...CREDS, ...sent, privacy: { $refs: {} } }));
  t.deepEqual(unresolvedVaultRefs(sent), ['privacy.pseudonym_key: Kong could not resolve the vault reference {vault://hcv/audit-key} (it sent an empty value)']);
  t.deepEqual(unresolvedVaultRefs({ immudb_password: 'x', $refs: { immudb_password: '{vault://env/pw}' } }), []);
});
