// The console's pieces without a browser: who may connect, trace links, the query string as the
// workbench's filters (and keyset paging), the timeline's buckets over a real SQLite index, and
// the page script's rule of never parsing data as HTML.
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { authorized, isLoopback, loadCredentials } from '../../plugin/console/auth.js';
import { checkTraceTemplate, traceUrl } from '../../plugin/console/trace-url.js';
import { afterCursor, cursorOf, filtersOf } from '../../plugin/console/query-params.js';
import { bucketSize, MAX_BUCKETS, timeline } from '../../plugin/console/timeline.js';
import { fieldsOf } from '../../plugin/console/api.js';
import { AuditIndex } from '../../plugin/workbench/audit-index.js';
import { filterCondition } from '../../plugin/workbench/filters.js';
import { projectRoot } from '../helpers/kong-driver.js';

const dir = mkdtempSync(join(tmpdir(), 'kia-console-unit-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));

test('loopback names and addresses', (t) => {
  for (const h of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost', 'LOCALHOST']) t.true(isLoopback(h), h);
  for (const h of ['0.0.0.0', '::', '10.0.0.1', 'example.com', '127.0.0.1.example.com', 'localhost.example']) t.false(isLoopback(h), h);
});

test('credentials: required off loopback, from a file or the environment, checked in full', (t) => {
  t.is(loadCredentials({ host: '127.0.0.1' }, {}), undefined);
  t.throws(() => loadCredentials({ host: '0.0.0.0' }, {}), { message: /listening on 0\.0\.0\.0 \(not loopback\) needs credentials/ });
  t.throws(() => loadCredentials({ host: '0.0.0.0' }, { IMMUDB_AUDIT_CONSOLE_TOKEN: 'short' }), { message: /at least 16 characters/ });
  const file = join(dir, 'token');
  writeFileSync(file, 'a-token-of-32-characters-0123456\n');
  const bearer = loadCredentials({ host: '0.0.0.0', tokenFile: file }, {});
  t.true(authorized(bearer, 'Bearer a-token-of-32-characters-0123456'));
  t.false(authorized(bearer, 'Bearer a-token-of-32-characters-012345'));
  t.false(authorized(bearer, undefined));
  t.false(authorized(bearer, 'Basic ' + Buffer.from('x:a-token-of-32-characters-0123456').toString('base64')));
  const basic = loadCredentials({ host: '::' }, { IMMUDB_AUDIT_CONSOLE_BASIC_AUTH: 'auditor:long-enough' });
  t.true(authorized(basic, 'Basic ' + Buffer.from('auditor:long-enough').toString('base64')));
  t.false(authorized(basic, 'Basic ' + Buffer.from('auditor:long-enougH').toString('base64')));
  t.false(authorized(basic, 'Bearer auditor:long-enough'));
  t.throws(() => loadCredentials({ host: '::' }, { IMMUDB_AUDIT_CONSOLE_BASIC_AUTH: 'auditor:short' }), { message: /at least 8 characters/ });
});

test('trace links: http(s) templates only, the trace id encoded in, nothing for a non-id', (t) => {
  t.throws(() => checkTraceTemplate('javascript:alert({trace_id})'), { message: /http or https/ });
  t.throws(() => checkTraceTemplate('http://jaeger/trace/'), { message: /must contain \{trace_id\}/ });
  const tpl = checkTraceTemplate('http://localhost:16686/trace/{trace_id}?x=1');
  t.is(traceUrl(tpl, '4BF92F3577B34DA6A3CE929D0E0E4736'), 'http://localhost:16686/trace/4bf92f3577b34da6a3ce929d0e0e4736?x=1');
  t.is(traceUrl(tpl, 'javascript:alert(1)'), null);
  t.is(traceUrl(tpl, '"><script>x</script>'), null);
  t.is(traceUrl(undefined, '4bf92f3577b34da6a3ce929d0e0e4736'), null);
});

test("query parameters are the CLI's filters, with its messages", (t) => {
  const now = Date.parse('2026-12-02T00:00:00Z');
  t.deepEqual(filtersOf(new URLSearchParams('status=401,4xx&method=get&client_ip=203.0.113.7&since=1h&consumer=&path=/api'), now), {
    status: [{ code: 401 }, { from: 400, to: 499 }], method: 'GET', clientIp: '203.0.113.7', since: now - 3_600_000, path: '/api',
  });
  t.throws(() => filtersOf(new URLSearchParams('path=api')), { message: /^path: expected a path prefix starting with "\/"/ });
  t.throws(() => filtersOf(new URLSearchParams('trace=xyz')), { message: /^trace: expected a W3C trace id/ });
  t.throws(() => cursorOf(new URLSearchParams('after=1;DROP')), { message: /^after: expected a cursor/ });
});

function row(i: number, time: number | null, status: number) {
  return {
    audit_id: `id-${i}`, tx_id: 1, time, consumer_id: i % 2 ? 'odd' : 'even', consumer_username: null, consumer_custom_id: null, subject: null,
    credential_id: null, route_id: null, route_name: null, service_id: null, service_name: null, method: 'GET', path: '/x', status,
    result: status < 400 ? 'success' : 'failure', client_ip: null, node_id: null, trace_id: null, outcome_source: null,
  };
}

test('keyset paging and the timeline over a real index', (t) => {
  const index = AuditIndex.open(join(dir, 'i.sqlite'), { serverUuid: 'u', database: 'd', prefix: 'p' });
  const base = Date.parse('2026-01-01T00:00:00Z');
  const statuses = [200, 401, 403, 404, 500, 200, 401];
  index.begin();
  index.add(row(0, null, 200), base, Buffer.from('{}'), null);
  for (let i = 1; i <= 70; i++) {
    const status = statuses[i % statuses.length]!;
    const source = status === 401 && i % 2 ? 'kong' : status === 403 ? 'kong' : 'upstream';
    // Two rows share each time: the cursor must order them by rowid.
    index.add({ ...row(i, base + Math.floor(i / 2) * 60_000, status), outcome_source: source }, base, Buffer.from(JSON.stringify({ outcome: { status, source } })), null);
  }
  index.commit(1, new Date().toISOString(), 71);
  try {
    const all = filterCondition({});
    const ids: string[] = [];
    let cursor: { time: number | null; rowid: number } | undefined;
    for (;;) {
      const page = [...index.query(afterCursor(all, cursor), 8)] as unknown as Array<{ audit_id: string; time: number | null; rowid: number }>;
      if (!page.length) break;
      ids.push(...page.map((r) => r.audit_id));
      cursor = { time: page[page.length - 1]!.time, rowid: page[page.length - 1]!.rowid };
    }
    t.deepEqual(ids, [...index.query(all)].map((r) => r.audit_id));
    t.is(ids.length, 71);

    const range = { since: base, until: base + 40 * 60_000 };
    const tl = timeline(index, all, range);
    t.is(tl.bucket_ms, 60_000);
    t.is(tl.buckets.length, 40);
    const sum = (k: 'total' | 'status_4xx' | 'status_5xx' | 'kong_401_403') => tl.buckets.reduce((a, b) => a + b[k], 0);
    const timed = Array.from({ length: 70 }, (_, j) => j + 1);
    t.is(sum('total'), 70);
    t.is(sum('status_4xx'), timed.filter((i) => [401, 403, 404].includes(statuses[i % 7]!)).length);
    t.is(sum('status_5xx'), timed.filter((i) => statuses[i % 7] === 500).length);
    t.is(sum('kong_401_403'), timed.filter((i) => statuses[i % 7] === 403 || (statuses[i % 7] === 401 && i % 2)).length);
    // Each bucket as count() sees it.
    for (const b of tl.buckets) t.is(b.total, index.count(filterCondition({ since: Date.parse(b.from), until: Date.parse(b.to) })), b.from);
    // Filters apply; without a range it starts at the first match.
    t.is(timeline(index, filterCondition({ consumer: 'odd' }), range).buckets.reduce((a, b) => a + b.total, 0), 35);
    const open = timeline(index, all, {}, base + 100 * 60_000);
    t.is(open.from, new Date(base + 0).toISOString());
    t.true(open.buckets.length <= MAX_BUCKETS);
  } finally {
    index.close();
  }
});

test('bucket sizes keep at most 48 buckets', (t) => {
  for (const span of [1, 999, 60_000, 3 * 3_600_000, 86_400_000, 400 * 86_400_000]) t.true(Math.ceil(span / bucketSize(0, span)) <= MAX_BUCKETS, String(span));
});

test("an entry's fields: every leaf, by dotted path", (t) => {
  t.deepEqual(fieldsOf({ a: { b: '<x>', c: [1, { d: null }] }, e: {}, f: [] }), [['a.b', '<x>'], ['a.c.0', '1'], ['a.c.1.d', 'null'], ['e', '{}'], ['f', '[]']]);
});

test('the page script never parses data as HTML and imports nothing', (t) => {
  const src = readFileSync(join(projectRoot(), 'plugin/console/page/app.ts'), 'utf8');
  t.notRegex(src, /innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function|setAttribute\('(on|style|href)/);
  t.notRegex(src, /^import /m);
});
