// Privacy end to end, through the real plugin server into the real immudb: a corpus of requests
// carrying secrets in every place we know of (none reaches immudb, whatever is allow-listed),
// allow-lists, keyed pseudonyms with a key given by reference and rotated, address truncation,
// and identity as Kong resolved it.
import test from 'ava';
import { createHmac } from 'node:crypto';
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { simulateWorkers, type KongInstance } from '../helpers/kong-driver.js';
import { generateFixtures, createRng, type KongSerializedLog } from '../fixtures/serialized-logs.js';
import { PLUGIN_NAME, mapLimit, scanAll, startAuditStack, waitForEntries, type AuditStack } from '../helpers/audit-stack.js';
import type { AuditEntry } from '../../plugin/capture/audit-entry.js';

const require = createRequire(import.meta.url);
const validate = new Ajv2020({ allErrors: true }).compile(JSON.parse(readFileSync(require.resolve('../../../schemas/audit-entry.v1.json'), 'utf8')));

/** Every planted secret contains this marker, and nothing else in the inputs does. */
const MARK = 'zqS3CR3T';
const KEY_Q1 = 'q1-' + 'a7Hk29fLw0pXv3Rt8YbN4cQe6ZuJ1sDm';
const KEY_Q2 = 'q2-' + 'Lm5Xc8Vb2Nq7Wk4Rj9Tf3Hg6Yd1Ps0Ze';
const hmac = (key: string, domain: string, value: string) => createHmac('sha256', key).update(`${domain}\u0000${value}`).digest('hex');

let stack: AuditStack;
test.before(async () => {
  stack = await startAuditStack({ env: { KIA_TEST_PSEUDONYM_KEY: KEY_Q1 } });
});
test.after.always(async () => {
  await stack?.dispose();
});

// --- the corpus -----------------------------------------------------------------------------

interface Planted {
  place: string;
  value: string;
}

/**
 * A Kong-like serialized log with a distinct secret in every place we know secrets travel:
 * credentials and API keys in headers (also unredacted, as a misconfigured or hostile source
 * would send them), custom key-auth names, cookies, tokens in query strings (raw uri/url and
 * decoded table), URL userinfo, matrix parameters, JWTs and secret segments in the path, URLs in
 * Referer/Origin/Location, response cookies and tokens, bodies and custom serializer fields,
 * credential and service objects, TLS details, trace state.
 */
function plantSecrets(base: KongSerializedLog, seed: number): { log: KongSerializedLog; planted: Planted[] } {
  const rng = createRng(seed, 99);
  const planted: Planted[] = [];
  const s = (place: string) => {
    const value = `${MARK}${seed}x${planted.length}${rng.hex(6)}`;
    planted.push({ place, value });
    return value;
  };
  const log = JSON.parse(JSON.stringify(base)) as KongSerializedLog & Record<string, unknown>;
  const req = log.request as KongSerializedLog['request'] & Record<string, unknown>;
  const h = req.headers as Record<string, string | string[]>;
  h.authorization = `Bearer ${s('authorization')}`;
  h['proxy-authorization'] = `Basic ${s('proxy-authorization')}`;
  h.cookie = [`session=${s('cookie')}; theme=dark`, `remember=${s('cookie 2')}`];
  h.apikey = s('apikey');
  h['x-api-key'] = s('x-api-key');
  h['x-partner-key'] = s('key-auth key_names header');
  h['x-auth-token'] = s('x-auth-token');
  h['x-csrf-token'] = s('x-csrf-token');
  h['x-amz-security-token'] = s('x-amz-security-token');
  h.referer = `https://app.example.com/page?token=${s('referer query')}#access_token=${s('referer fragment')}`;
  h.origin = `https://user:${s('origin userinfo')}@app.example.com`;
  h['x-original-url'] = `/orders?password=${s('x-original-url query')}`;
  h['x-custom'] = `app=web; token=${s('x-custom pair')}`;
  h['x-jwt'] = `eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ${s('x-jwt header')}.c2ln`;
  h['x-upstream-info'] = `v1 eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ${s('JWT in a header value')}.c2ln`;
  h.tracestate = `vendor=${s('tracestate')}`;
  const qs: Record<string, string> = {
    token: s('query token'), access_token: s('query access_token'), id_token: s('query id_token'), refresh_token: s('query refresh_token'),
    code: s('query code'), api_key: s('query api_key'), apikey: s('query apikey'), password: s('query password'),
    client_secret: s('query client_secret'), signature: s('query signature'), 'X-Amz-Signature': s('query X-Amz-Signature'),
    'X-Amz-Credential': s('query X-Amz-Credential'), sig: s('query sig'), jsessionid: s('query jsessionid'), 'x-partner-key': s('query key-auth name'),
  };
  req.querystring = { ...(req.querystring as Record<string, string>), ...qs, status: 'open' };
  const rawQuery = Object.entries(qs).map(([k, v]) => `${k}=${v}`).join('&');
  const path = rng.bool() ? `/api/password-reset/${s('path template segment')}` : `/api/orders;jsessionid=${s('matrix parameter')}/eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ${s('path JWT')}.c2ln/items`;
  req.uri = `${path}?${rawQuery}`;
  req.url = `https://svc:${s('url userinfo')}@api.example.com:8443${path}?${rawQuery}`;
  req.body = `{"password":"${s('request body')}"}`;
  req.tls = { version: 'TLSv1.3', cipher: 'TLS_AES_128_GCM_SHA256', client_verify: 'NONE', client_cert: s('client certificate') } as never;
  log.upstream_uri = `/orders?token=${s('upstream_uri')}`;
  const rh = log.response.headers as Record<string, string | string[]>;
  rh['set-cookie'] = [`sid=${s('set-cookie')}; HttpOnly`, `csrf=${s('set-cookie 2')}`];
  rh['x-amz-security-token'] = s('response token header');
  rh.location = `https://app.example.com/cb#access_token=${s('location fragment')}`;
  (log.response as Record<string, unknown>).body = s('response body');
  log.authenticated_entity = { ...(log.authenticated_entity ?? { id: 'cred-x' }), key: s('credential key') } as never;
  if (log.consumer) (log.consumer as unknown as Record<string, unknown>).tags = [s('consumer tag')];
  if (log.service) (log.service as unknown as Record<string, unknown>).url = `https://u:${s('service url')}@orders.internal`;
  log.custom_field = s('custom serializer field');
  return { log, planted };
}

function corpus(n: number, seed: number) {
  return generateFixtures(n, { seed }).map((f, i) => ({ fixture: f, ...plantSecrets(f.log, seed + i) }));
}

async function run(config: Record<string, unknown>, db: string, prefix: string, items: Array<{ log: KongSerializedLog }>, extra: string[] = []) {
  const [worker] = (await simulateWorkers(stack.rpc, 1, PLUGIN_NAME, stack.config({ immudb_database: db, create_database: true, key_prefix: prefix, queue: { max_batch_size: 64, max_coalescing_delay: 0.02 }, ...config }))) as [KongInstance];
  const answers = [...items.map((c) => JSON.stringify(c.log)), ...extra];
  await mapLimit(answers, 8, (json) => worker.runLogEvent({ 'kong.log.serialize': json }));
  const client = await stack.client(db);
  const stored = await waitForEntries(client, `${prefix}:entry:`, answers.length);
  return { worker, stored, entries: stored.map((s) => JSON.parse(s.value.toString()) as AuditEntry) };
}

/** Invalid JSON whose parse error would quote the secrets next to it. */
const brokenJson = (i: number) => [`{"request": {"headers": {"apikey": "${MARK}broken${i}a"}}, x ${MARK}broken${i}b`, `{"a": ${MARK}broken${i}c}`];

const ALLOW_ALL_WE_CAN = {
  privacy: {
    // Denied names are listed on purpose: "never, even if allow-listed".
    request_headers: ['user-agent', 'referer', 'origin', 'x-original-url', 'x-custom', 'x-upstream-info', 'x-jwt', 'authorization', 'proxy-authorization', 'cookie', 'apikey', 'x-api-key', 'x-partner-key', 'x-auth-token', 'x-csrf-token', 'x-amz-security-token'],
    response_headers: ['content-type', 'location', 'set-cookie', 'x-amz-security-token'],
    query_params: ['status', 'token', 'access_token', 'id_token', 'code', 'api_key', 'apikey', 'password', 'client_secret', 'signature', 'X-Amz-Signature', 'sig', 'jsessionid', 'x-partner-key'],
    key_names: ['x-partner-key'],
    path_redactions: ['/api/password-reset/:redact'],
  },
};

// A secret in a plain path segment (a reset link) is only known by its route: both runs carry the
// path_redactions template for it; everything else is the default.
const DEFAULTS = { privacy: { path_redactions: ['/api/password-reset/:redact'] } };

for (const [name, config] of [['the defaults', DEFAULTS], ['allow-lists naming every secret place', ALLOW_ALL_WE_CAN]] as const) {
  test.serial(`corpus of secrets in every known place, ${name}: none reaches immudb or the log`, async (t) => {
    const db = name.startsWith('the') ? 'privdefault' : 'privallow';
    const items = corpus(40, name.startsWith('the') ? 100 : 200);
    const extra = [0, 1, 2].flatMap(brokenJson);
    const { stored, entries } = await run(config, db, 'p', items, extra);
    t.is(stored.length, items.length + extra.length, 'every request audited');
    const planted = items.flatMap((c) => c.planted);
    t.true(planted.length >= 40 * 40, `${planted.length} secrets planted`);
    const places = new Set(planted.map((p) => p.place));
    for (const s of stored) {
      const text = s.value.toString();
      const leak = planted.find((p) => text.includes(p.value));
      t.is(leak, undefined, leak ? `secret from ${leak.place} reached immudb` : '');
      t.false(text.includes(MARK), 'no secret marker at all');
    }
    // Raw scan of the database: keys and values, whatever prefix.
    const client = await stack.client(db);
    for (const s of await scanAll(client, '')) t.false(s.key.toString().includes(MARK) || s.value.toString().includes(MARK));
    t.false(stack.server.logs().includes(MARK), 'no secret in the plugin server log');
    for (const e of entries) t.true(validate(e), JSON.stringify(validate.errors));
    const broken = entries.filter((e) => e.capture_problems.some((p) => p.startsWith('kong.log.serialize returned invalid JSON')));
    t.is(broken.length, extra.length, 'invalid JSON audited, its problem recorded without quoting the input');
    t.log(`${stored.length} entries, ${planted.length} secrets in ${places.size} places, none stored`);

    const normal = entries.filter((e) => e.request_id && items.some((c) => c.fixture.expected.requestId === e.request_id));
    t.is(normal.length, items.length);
    if (name.startsWith('the')) {
      for (const e of normal) {
        t.is(e.what.request_headers, null);
        t.is(e.what.query, null);
        t.is(e.outcome.response_headers, null);
      }
    } else {
      for (const e of normal) {
        const rh = e.what.request_headers!;
        t.deepEqual(Object.keys(rh).sort(), ['origin', 'referer', 'user-agent', 'x-custom', 'x-original-url', 'x-upstream-info']);
        t.is(rh['x-original-url'], '/orders');
        t.is(rh.referer, 'https://app.example.com/page');
        t.is(rh.origin, 'https://app.example.com');
        t.is(rh['x-custom'], 'app=web; token=[redacted]');
        t.is(rh['x-upstream-info'], 'v1 [redacted]');
        t.deepEqual(Object.keys(e.outcome.response_headers!).sort(), ['content-type', 'location']);
        const q = e.what.query!;
        t.is(q.status, 'open');
        for (const k of ['token', 'access_token', 'id_token', 'code', 'api_key', 'apikey', 'password', 'client_secret', 'signature', 'X-Amz-Signature', 'sig', 'jsessionid', 'x-partner-key']) t.is(q[k], '[redacted]', k);
        t.regex(e.what.path!, /^\/api\/(password-reset\/\{redacted\}|orders\/\{redacted\}\/items)$/);
      }
      t.regex(stack.server.logs(), /privacy\.request_headers: x-jwt, authorization, proxy-authorization, cookie, apikey, x-api-key, x-partner-key, x-auth-token, x-csrf-token, x-amz-security-token never stored/);
    }
  });
}

test.serial('keyed pseudonyms: key by env: reference, key id in every entry, rotation to a new key, truncation', async (t) => {
  const fixtures = generateFixtures(14, { seed: 300, kinds: ['key-auth-consumer'] });
  const subjectOf = (i: number) => `user-${i}@example.com`;
  const logs = fixtures.map((f, i) => ({
    log: {
      ...f.log,
      client_ip: i % 2 ? '203.0.113.77' : '2001:db8:aa:bb::77',
      request: { ...f.log.request, headers: { ...f.log.request.headers, 'x-authenticated-userid': subjectOf(i), 'x-forwarded-for': '198.51.100.23, 10.1.2.3' } },
    } as KongSerializedLog,
  }));
  const privacy = (key: string, id: string) => ({
    pseudonymize: ['consumer_username', 'consumer_custom_id', 'client_ip', 'forwarded_for', 'subject'],
    pseudonym_key: key,
    pseudonym_key_id: id,
    subject_headers: ['x-authenticated-userid'],
    record_forwarded_for: true,
  });
  // Q1: the key by env: reference, resolved in the plugin server. Q2: a literal value, which is
  // what the plugin receives when Kong resolved a {vault://...} reference.
  const q1 = await run({ privacy: privacy('env:KIA_TEST_PSEUDONYM_KEY', 'k2026-q1') }, 'pseudo1', 'q1', logs);
  const q2 = await run({ privacy: privacy(KEY_Q2, 'k2026-q2') }, 'pseudo2', 'q2', logs);
  for (const [run_, key, id] of [[q1, KEY_Q1, 'k2026-q1'], [q2, KEY_Q2, 'k2026-q2']] as const) {
    for (const e of run_.entries) {
      t.true(validate(e), JSON.stringify(validate.errors));
      const i = fixtures.findIndex((f) => f.expected.requestId === e.request_id);
      const f = fixtures[i]!;
      t.is(e.privacy.pseudonym_key_id, id);
      t.is(e.who.consumer!.id, f.expected.consumer!.id);
      t.is(e.who.consumer!.username, `hmac:${id}:${hmac(key, 'username', f.expected.consumer!.username!)}`);
      if (f.expected.consumer!.custom_id) t.is(e.who.consumer!.custom_id, `hmac:${id}:${hmac(key, 'custom_id', f.expected.consumer!.custom_id)}`);
      const ip = i % 2 ? '203.0.113.77' : '2001:db8:aa:bb::77';
      t.is(e.who.client_ip, `hmac:${id}:${hmac(key, 'ip', ip)}`);
      t.deepEqual(e.who.forwarded_for, [`hmac:${id}:${hmac(key, 'ip', '198.51.100.23')}`, `hmac:${id}:${hmac(key, 'ip', '10.1.2.3')}`]);
      t.deepEqual(e.who.subject, { value: `hmac:${id}:${hmac(key, 'subject', subjectOf(i))}`, source: 'header:x-authenticated-userid' });
      const text = JSON.stringify(e);
      for (const personal of [f.expected.consumer!.username!, subjectOf(i), '203.0.113.77', '2001:db8:aa:bb::77', '198.51.100.23']) t.false(text.includes(personal), personal);
    }
  }
  // Rotation: the same person under another key is another pseudonym (unlinkable without both keys).
  const u1 = new Set(q1.entries.map((e) => e.who.consumer!.username));
  t.false(q2.entries.some((e) => u1.has(e.who.consumer!.username)));
  t.false(stack.server.logs().includes(KEY_Q1) || stack.server.logs().includes(KEY_Q2), 'keys never logged');

  const tr = await run({ privacy: { ipv4_prefix: 24, ipv6_prefix: 48, record_forwarded_for: true } }, 'trunc', 't', logs.slice(0, 4));
  for (const e of tr.entries) {
    t.true(['203.0.113.0/24', '2001:db8:aa::/48'].includes(e.who.client_ip!), e.who.client_ip!);
    t.deepEqual(e.who.forwarded_for, ['198.51.100.0/24', '10.1.2.0/24']);
    t.deepEqual(e.privacy, { pseudonym_key_id: null, pseudonymized: [], ip_prefix: { v4: 24, v6: 48 } });
  }
});

test.serial('identity as Kong resolved it: client_ip not X-Forwarded-For; the subject only when Kong verified a credential', async (t) => {
  const [authed, anon] = [generateFixtures(1, { seed: 400, kinds: ['key-auth-consumer'] })[0]!, generateFixtures(1, { seed: 401, kinds: ['anonymous'] })[0]!];
  const spoof = { 'x-forwarded-for': '1.2.3.4', 'x-real-ip': '1.2.3.4', forwarded: 'for=1.2.3.4' };
  // On the authenticated request the header is the auth plugin's (it sets or clears it); on the
  // anonymous one only the client can have sent it.
  const subject = (f: typeof authed, v: string) => ({ log: { ...f.log, request: { ...f.log.request, headers: { ...f.log.request.headers, ...spoof, 'x-authenticated-userid': v } } } as KongSerializedLog });
  const logs = [subject(authed, 'alice-verified'), subject(anon, 'forged-admin')];
  const { entries } = await run({ privacy: { subject_headers: ['x-authenticated-userid'] } }, 'identity', 'id', logs);
  const a = entries.find((e) => e.request_id === authed.expected.requestId)!;
  const n = entries.find((e) => e.request_id === anon.expected.requestId)!;
  t.is(a.who.client_ip, authed.expected.clientIp, "Kong's client_ip");
  t.is(n.who.client_ip, anon.expected.clientIp);
  t.is(a.who.forwarded_for, null, 'forwarded addresses only when asked for');
  t.is(a.who.consumer!.id, authed.expected.consumer!.id);
  t.is(a.who.credential_id, authed.expected.credentialId!);
  t.deepEqual(a.who.subject, { value: 'alice-verified', source: 'header:x-authenticated-userid' }, 'authenticated: the subject, marked by its source');
  t.is(n.who.subject, null, 'unauthenticated: a client-sent subject header is ignored');
  t.false(n.who.authenticated);
});
