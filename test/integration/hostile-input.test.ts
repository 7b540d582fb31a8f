// Hostile input, fuzz style, through the real plugin server into the real immudb: thousands of
// generated serialized logs (random types, deep nesting, huge strings, control characters,
// invalid UTF-8, prototype-pollution keys, invalid JSON, non-string PDK answers), deterministic
// from a seed, most of them carrying secrets in the places secrets travel. Checked: the server
// never crashes, its memory stays bounded, every request is audited (or counted as refused with
// a reason), every entry is a valid v1 entry, and no secret reaches immudb or the log.
//
// KIA_FUZZ_SEED and KIA_FUZZ_EVENTS change the seed (printed) and the number of events.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { pdkError, RawStep, simulateWorkers, type KongInstance, type PdkAnswer } from '../helpers/kong-driver.js';
import { createRng, generateFixtures, type Rng, type KongSerializedLog } from '../fixtures/serialized-logs.js';
import { PLUGIN_NAME, mapLimit, scanAll, startAuditStack, waitForEntries, type AuditStack } from '../helpers/audit-stack.js';
import type { AuditEntry } from '../../plugin/capture/audit-entry.js';

const require = createRequire(import.meta.url);
const validate = new Ajv2020({ allErrors: true }).compile(JSON.parse(readFileSync(require.resolve('../../../schemas/audit-entry.v1.json'), 'utf8')));

const SEED = Number(process.env.KIA_FUZZ_SEED ?? 20261124);
const EVENTS = Number(process.env.KIA_FUZZ_EVENTS ?? 3000);
/** Every secret contains the marker; the random junk cannot (its alphabet has no 'z'... see junkString). */
const MARK = 'zqS3CR3T';
const KEY = 'fuzz-key-' + 'Xq81mZ0pLw7Rt3Vb6Nc9Ke2Hs5Jd4Fa';
const HEAP_CAP_MIB = 192;

let stack: AuditStack;
let workers: KongInstance[];
test.before(async () => {
  // A capped V8 heap: memory that grew with the number of requests would end in an
  // out-of-memory crash, which the test detects.
  stack = await startAuditStack({ env: { KIA_FUZZ_KEY: KEY, NODE_OPTIONS: `--max-old-space-size=${HEAP_CAP_MIB}` } });
  workers = await simulateWorkers(stack.rpc, 2, PLUGIN_NAME, stack.config({
    immudb_database: 'hostile',
    create_database: true,
    key_prefix: 'h',
    queue: { max_batch_size: 512, max_coalescing_delay: 0.05 },
    privacy: {
      request_headers: ['user-agent', 'referer', 'x-custom', 'x-note', 'authorization', 'cookie'],
      response_headers: ['content-type', 'location', 'set-cookie'],
      query_params: ['status', 'token', 'redirect', 'page'],
      key_names: ['x-partner-key'],
      path_redactions: ['/api/password-reset/:redact'],
      subject_headers: ['x-authenticated-userid'],
      record_forwarded_for: true,
      pseudonymize: ['consumer_username', 'consumer_custom_id', 'client_ip', 'forwarded_for', 'subject'],
      pseudonym_key: 'env:KIA_FUZZ_KEY',
      pseudonym_key_id: 'fuzz1',
      ipv4_prefix: 24,
    },
  }));
});
test.after.always(async () => {
  await stack?.dispose();
});

// --- generator ------------------------------------------------------------------------------

type Obj = Record<string, unknown>;

/** Random text without the marker's letters in that order: control characters, unicode, lone surrogates. */
function junkString(rng: Rng, len: number): string {
  const pools = [
    'abcdefghijklmnopqrstuvwxy0123456789 -_./:;=&?#%@!',
    '\u0000\u0001\u0007\u0008\u001b\u007f\u0085\u009f\t\n\r',
    'é€漢字🙂\u202e\u2028\u2029\ufeff\uffff',
    '\ud800\udbff\udc00\udfff',
    '"\\\'<>{}[]',
  ];
  let s = '';
  while (s.length < len) {
    const pool = pools[rng.int(0, pools.length - 1)]!;
    s += pool[rng.int(0, pool.length - 1)]!;
  }
  return s;
}

/** A null-prototype object, so that "__proto__" becomes an own key (as JSON.parse would make it). */
function bag(): Obj {
  return Object.create(null) as Obj;
}

const HOSTILE_KEYS = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf', '__defineGetter__', 'then', ''];

function randomValue(rng: Rng, depth = 0): unknown {
  switch (rng.int(0, depth > 3 ? 6 : 9)) {
    case 0: return rng.int(-1e9, 1e9);
    case 1: return rng.pick([0, -1, 1.5, 1e308, -1e308, 2 ** 53 + 1, 8.64e15 + 1]);
    case 2: return rng.bool();
    case 3: return null;
    case 4: return junkString(rng, rng.int(0, 40));
    case 5: return junkString(rng, rng.int(500, 5000));
    case 6: return rng.pick(['', '200', '-5', '1e309', 'NaN', '0x10', ' 42 ', '203.0.113.9', '::1', '2001:db8::1%eth0']);
    case 7: return Array.from({ length: rng.int(0, 5) }, () => randomValue(rng, depth + 1));
    default: {
      const o = bag();
      for (let i = rng.int(0, 5); i > 0; i--) o[rng.bool(0.4) ? rng.pick(HOSTILE_KEYS) : junkString(rng, rng.int(1, 12))] = randomValue(rng, depth + 1);
      return o;
    }
  }
}

const MUTATION_PATHS = [
  'request', 'request.headers', 'request.headers.user-agent', 'request.headers.referer', 'request.headers.x-forwarded-for',
  'request.headers.traceparent', 'request.headers.x-authenticated-userid', 'request.querystring', 'request.querystring.status',
  'request.uri', 'request.url', 'request.id', 'request.method', 'request.size', 'response', 'response.status', 'response.headers',
  'client_ip', 'consumer', 'consumer.id', 'consumer.username', 'authenticated_entity', 'authenticated_entity.id', 'route', 'service',
  'started_at', 'latencies', 'latencies.proxy', 'upstream_status', 'source', 'workspace', 'workspace_name', 'trace_id', 'tries',
];

function setPath(o: Obj, path: string, v: unknown) {
  const parts = path.split('.');
  let cur: unknown = o;
  for (const p of parts.slice(0, -1)) {
    if (typeof cur !== 'object' || cur === null) return;
    const next = (cur as Obj)[p];
    if (typeof next !== 'object' || next === null) {
      const fresh = bag();
      (cur as Obj)[p] = fresh;
      cur = fresh;
    } else cur = next;
  }
  if (typeof cur === 'object' && cur !== null) (cur as Obj)[parts[parts.length - 1]!] = v;
}

const JWT_HEAD = 'eyJhbGciOiJIUzI1NiJ9';

/** Places where a secret travels; each plants one secret in a log (a plain object from JSON.parse). */
const PLACES: Array<(l: Obj, s: string, rng: Rng) => void> = [
  (l, s) => setPath(l, 'request.headers.authorization', `Bearer ${s}`),
  (l, s) => setPath(l, 'request.headers.proxy-authorization', `Basic ${s}`),
  (l, s) => setPath(l, 'request.headers.cookie', [`a=${s}`, `b=${s}`]),
  (l, s, r) => setPath(l, `request.headers.${r.pick(['apikey', 'x-api-key', 'x-partner-key', 'x-auth-token', 'x-session-id', 'x-client-secret'])}`, s),
  (l, s) => setPath(l, 'request.headers.referer', `https://app.example.com/p?token=${s}`),
  (l, s) => setPath(l, 'request.headers.referer', `https://user:${s}@app.example.com/p`),
  (l, s) => setPath(l, 'request.headers.x-custom', `mode=1; password=${s}, x=2`),
  (l, s) => setPath(l, 'request.headers.x-note', `${JWT_HEAD}.${s}`),
  (l, s) => setPath(l, `request.headers.x-${s}`, 'value'),
  (l, s, r) => setPath(l, `request.querystring.${r.pick(['token', 'access_token', 'api_key', 'password', 'sig', 'x-partner-key'])}`, s),
  (l, s) => setPath(l, 'request.querystring.redirect', `https://x.example/cb?code=${s}`),
  (l, s) => setPath(l, `request.querystring.${s}`, '1'),
  (l, s) => setPath(l, 'request.uri', `/api/orders?token=${s}`),
  (l, s) => setPath(l, 'request.url', `https://svc:${s}@api.example.com/api?key=${s}`),
  (l, s) => setPath(l, 'request.uri', `/api/password-reset/${s}`),
  (l, s) => setPath(l, 'request.uri', `/api;jsessionid=${s}/orders`),
  (l, s) => setPath(l, 'request.uri', `/api/${JWT_HEAD}.${s}/x`),
  (l, s) => setPath(l, 'response.headers.set-cookie', `sid=${s}`),
  (l, s) => setPath(l, 'response.headers.location', `/cb#access_token=${s}`),
  (l, s) => setPath(l, 'request.body', s),
  (l, s) => setPath(l, 'response.body', s),
  (l, s) => setPath(l, 'upstream_uri', `/x?t=${s}`),
  (l, s) => setPath(l, 'custom_field', s),
  (l, s) => setPath(l, 'authenticated_entity.key', s),
  (l, s) => setPath(l, 'consumer.username', s),
  (l, s) => setPath(l, 'consumer.custom_id', s),
  (l, s) => setPath(l, 'request.headers.x-authenticated-userid', s),
  (l, s) => setPath(l, 'client_ip', s),
  (l, s) => setPath(l, 'request.headers.x-forwarded-for', `198.51.100.4, ${s}`),
  (l, s) => setPath(l, 'request.tls.client_cert', s),
  (l, s) => setPath(l, 'request.headers.tracestate', `v=${s}`),
];

interface FuzzEvent {
  kind: string;
  answer: PdkAnswer;
}

function generate(n: number, seed: number): { events: FuzzEvent[]; secrets: number } {
  const rng = createRng(seed, 1);
  const pool = generateFixtures(60, { seed: seed % 100_000 });
  let secrets = 0;
  const secret = () => `${MARK}${(secrets++).toString(36)}`;
  const planted = (): Obj => {
    const l = JSON.parse(pool[rng.int(0, pool.length - 1)]!.json) as Obj;
    for (let k = rng.int(3, 12); k > 0; k--) rng.pick(PLACES)(l, secret(), rng);
    return l;
  };
  const mutate = (l: Obj) => {
    for (let k = rng.int(0, 3); k > 0; k--) setPath(l, rng.pick(MUTATION_PATHS), randomValue(rng));
    return l;
  };
  const events: FuzzEvent[] = [];
  for (let i = 0; i < n; i++) {
    const roll = rng.int(0, 99);
    if (roll < 40) {
      events.push({ kind: 'realistic+secrets+mutations', answer: JSON.stringify(mutate(planted())) });
    } else if (roll < 48) {
      // Prototype pollution payloads at every level, as JSON text (an object literal would set the prototype).
      const payload = '{"consumer":{"username":"POLLUTED"},"client_ip":"6.6.6.6","polluted":true}';
      const json = JSON.stringify(planted())
        .replace(/^\{/, `{"__proto__":${payload},"constructor":{"prototype":${payload}},`)
        .replace('"headers":{', `"headers":{"__proto__":${payload},"constructor":"x",`)
        .replace('"request":{', `"request":{"__proto__":${payload},`);
      events.push({ kind: 'prototype-pollution', answer: json });
    } else if (roll < 55) {
      const depth = rng.pick([500, 5_000, 50_000, 200_000]);
      const l = planted();
      setPath(l, rng.pick(['request.headers.x-deep', 'request.querystring.deep', 'deep', 'consumer', 'request.headers.user-agent', 'request.headers']), '__DEEP__');
      const open = rng.bool() ? '[' : '{"a":';
      const close = open === '[' ? ']' : '}';
      events.push({ kind: 'deep-nesting', answer: JSON.stringify(l).replace('"__DEEP__"', open.repeat(depth) + '1' + close.repeat(depth)) });
    } else if (roll < 58) {
      const l = planted();
      const size = rng.pick([256 * 1024, 512 * 1024, 1024 * 1024]);
      const big = 'x'.repeat(size);
      setPath(l, 'request.headers.cookie', `s=${secret()};${big};t=${secret()}`);
      setPath(l, 'request.headers.referer', `https://a.example/${big.slice(0, size / 2)}?token=${secret()}`);
      setPath(l, 'request.headers.user-agent', big);
      setPath(l, 'request.uri', `/${big.slice(0, 100_000)}`);
      events.push({ kind: 'huge-strings', answer: JSON.stringify(l) });
    } else if (roll < 66) {
      const json = JSON.stringify(planted());
      const cut = rng.int(1, json.length - 1);
      const s = secret();
      const variants = [json.slice(0, cut), `${json.slice(0, cut)} ${s} ${json.slice(cut)}`, `{"apikey": ${s}}`, `${json}${s}`, `{"a":"\\x${s}"}`];
      let text = rng.pick(variants);
      try {
        // Inserted inside a string value the text stays valid JSON, and the "secret" is then
        // just data in whatever field it landed in: keep only texts that really are invalid.
        JSON.parse(text);
        text = `{"apikey": ${s}}`;
      } catch {
        // invalid, as wanted
      }
      events.push({ kind: 'invalid-json', answer: text });
    } else if (roll < 74) {
      const bytes = Buffer.from(JSON.stringify(planted()));
      const bad = [[0xff], [0xfe], [0xc3], [0xed, 0xa0, 0x80], [0xc0, 0xaf], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xe2, 0x82]];
      const parts: Buffer[] = [];
      let at = 0;
      for (let k = rng.int(1, 6); k > 0; k--) {
        // Inside string values only: bytes between a quote pair keep the JSON parseable.
        const q = bytes.indexOf(0x22, rng.int(at, Math.max(at, bytes.length - 2)));
        if (q < 0) break;
        parts.push(bytes.subarray(at, q + 1), Buffer.from(rng.pick(bad)));
        at = q + 1;
      }
      parts.push(bytes.subarray(at));
      // Odd positions end up outside strings too: invalid JSON, which is also fine.
      events.push({ kind: 'invalid-utf8-bytes', answer: new RawStep('plugin.Step', Buffer.concat(parts)) });
    } else if (roll < 80) {
      const v = rng.pick<unknown>([0, 42, -1.5, true, false, [1, 'a', null], { request: 'x', response: [1] }, new Uint8Array([0xff, 0x00, 0x7b]), Buffer.from(JSON.stringify(planted())), '', 'null', '[]', '"str"', '{}']);
      events.push({ kind: 'non-string-answer', answer: new RawStep('plugin.Step', v) });
    } else if (roll < 86) {
      const l = planted();
      for (const p of ['request.id', 'request.method', 'request.uri', 'consumer.username', 'route.name', 'service.name', 'workspace_name']) setPath(l, p, junkString(rng, rng.int(1, 300)));
      events.push({ kind: 'control-characters', answer: JSON.stringify(l) });
    } else if (roll < 89) {
      events.push({ kind: 'pdk-error', answer: pdkError(rng.pick(['no request context', 'failed to serialize', junkString(rng, 50)])) });
    } else if (roll < 91) {
      events.push({ kind: 'empty', answer: rng.pick(['', '{}', 'null', '  ', '0']) });
    } else {
      const l = planted();
      for (const p of ['started_at', 'response.status', 'request.size', 'response.size', 'latencies.kong', 'upstream_status']) setPath(l, p, rng.pick<unknown>([-1, 1e308, 1.5, '1e309', '-0', 2 ** 64, '99999999999999999999', 'abc']));
      events.push({ kind: 'numbers', answer: JSON.stringify(l) });
    }
  }
  return { events, secrets };
}

/** Where the marker sits in an entry: "path = value" for a failure message. */
function leaks(v: unknown, path = ''): string[] {
  if (typeof v === 'string') return v.includes(MARK) ? [`${path} = ${JSON.stringify(v.slice(Math.max(0, v.indexOf(MARK) - 80), v.indexOf(MARK) + 20))}`] : [];
  if (Array.isArray(v)) return v.flatMap((x, i) => leaks(x, `${path}[${i}]`));
  if (typeof v === 'object' && v !== null) return Object.entries(v).flatMap(([k, x]) => [...(k.includes(MARK) ? [`${path}.${k} (key)`] : []), ...leaks(x, `${path}.${k}`)]);
  return [];
}

function rssKiB(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const get = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: get('VmRSS'), hwm: get('VmHWM') };
}

test.serial(`fuzz: ${EVENTS} hostile serialized logs (seed ${SEED}) through the real plugin server`, async (t) => {
  const t0 = Date.now();
  const { events, secrets } = generate(EVENTS, SEED);
  const kinds = new Map<string, number>();
  for (const e of events) kinds.set(e.kind, (kinds.get(e.kind) ?? 0) + 1);
  t.log(`seed ${SEED}: ${secrets} secrets in ${events.length} events: ${[...kinds].map(([k, n]) => `${k} ${n}`).join(', ')}`);

  const pid = stack.server.pid;
  const run = (list: FuzzEvent[], offset: number) => mapLimit(list, 8, async (e, i) => {
    const r = await workers[(offset + i) % workers.length]!.runLogEvent({ 'kong.log.serialize': e.answer });
    if (!r.completed) throw new Error(`event ${offset + i} (${e.kind}) did not complete`);
  });
  // Warm up (JIT, pools, first batches), then measure memory across the rest.
  const warm = Math.min(300, Math.floor(events.length / 10));
  await run(events.slice(0, warm), 0);
  const before = rssKiB(pid);
  const samples: number[] = [];
  for (let at = warm; at < events.length; at += 500) {
    await run(events.slice(at, Math.min(events.length, at + 500)), at);
    samples.push(Math.round(rssKiB(pid).rss / 1024));
  }
  const sent = Date.now();

  const client = await stack.client('hostile');
  const logs = () => stack.server.logs();
  const stored = await waitForEntries(client, 'h:entry:', events.length, 120_000).catch((e: Error) => {
    t.log(logs().split('\n').filter((l) => /unhandled|error|REFUSED|fail/i.test(l)).slice(0, 20).join('\n'));
    throw e;
  });
  const after = rssKiB(pid);
  t.true(stack.server.isRunning(), 'the plugin server never crashed');
  t.is(stack.server.exits.length, 0);
  // The pipeline refuses an entry only when the spool cannot take it, and says so (REFUSED, with
  // the reason, counted in its stats); here every request must have its entry.
  t.is(stored.length, events.length, 'every request audited');
  t.notRegex(logs(), /audit entry \S+ REFUSED/, 'nothing refused');

  // No secret anywhere in the database (keys and values), nor in the log.
  let maxBytes = 0;
  let withProblems = 0;
  for (const s of await scanAll(client, '')) {
    const leaked = s.key.toString().includes(MARK) || s.value.toString().includes(MARK);
    t.false(leaked, leaked ? `secret in ${s.key.toString()}: ${leaks(JSON.parse(s.value.toString())).join('; ')}` : '');
  }
  for (const s of stored) {
    maxBytes = Math.max(maxBytes, s.value.length);
    const e = JSON.parse(s.value.toString()) as AuditEntry;
    const valid = validate(e);
    if (!valid) t.fail(`invalid entry ${s.key.toString()}: ${JSON.stringify(validate.errors).slice(0, 500)}`);
    if (e.capture_problems.length) withProblems++;
    if (e.who.consumer?.username === 'POLLUTED' || e.who.client_ip === '6.6.6.6') t.fail('a __proto__ payload reached an entry');
  }
  t.false(logs().includes(MARK), 'no secret in the plugin server log');
  t.notRegex(logs(), /unhandled exception|RangeError|Maximum call stack/);
  t.true(maxBytes < 128 * 1024, `largest entry ${maxBytes} bytes`);

  // Memory: bounded. The heap is capped (a leak would have crashed the server, checked above);
  // RSS, sampled every 500 events, levels off instead of growing with the number of requests.
  const firstHalfMax = Math.max(before.rss / 1024, ...samples.slice(0, Math.ceil(samples.length / 2)));
  const last = samples[samples.length - 1] ?? after.rss / 1024;
  t.log(`RSS every 500 events (MiB): ${samples.join(', ')}`);
  t.log(`RSS ${(before.rss / 1024).toFixed(0)} MiB after warm-up, ${(after.rss / 1024).toFixed(0)} MiB after ${events.length} events (peak ${(after.hwm / 1024).toFixed(0)} MiB); ` +
    `${stored.length} entries (${withProblems} with capture problems, largest ${maxBytes} bytes); sent in ${((sent - t0) / 1000).toFixed(1)} s, stored in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  t.true(last <= firstHalfMax + 96, `RSS at the end ${last} MiB, at most ${firstHalfMax.toFixed(0)} MiB in the first half`);
  t.true(after.hwm / 1024 < 640, `peak RSS ${(after.hwm / 1024).toFixed(0)} MiB`);

  // No pollution inside the server: a clean anonymous request is audited exactly as it is.
  const canary = generateFixtures(1, { seed: 4242, kinds: ['anonymous'] })[0]!;
  const anon = { ...canary.log } as KongSerializedLog;
  await workers[0]!.runLogEvent({ 'kong.log.serialize': JSON.stringify(anon) });
  const all = await waitForEntries(client, 'h:entry:', stored.length + 1);
  const c = all.map((s) => JSON.parse(s.value.toString()) as AuditEntry).find((e) => e.request_id === canary.expected.requestId);
  if (!c) return t.fail('canary not audited');
  t.is(c.who.consumer, null);
  t.false(c.who.authenticated);
  t.regex(c.who.client_ip!, /^hmac:fuzz1:[0-9a-f]{64}$/);
  t.deepEqual(c.capture_problems, []);
});
