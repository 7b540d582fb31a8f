// Malformed input never crashes the plugin server: the request is still audited with what is
// known, and each kind of problem is logged once, clearly.
import test from 'ava';
import { pdkError, RawStep, simulateWorkers, type KongInstance } from '../helpers/kong-driver.js';
import { keyAuthConsumerLog } from '../fixtures/serialized-logs.js';
import { PLUGIN_NAME, startAuditStack, waitForEntries, type AuditStack } from '../helpers/audit-stack.js';
import type { AuditEntry } from '../../plugin/capture/audit-entry.js';

let stack: AuditStack;
let worker: KongInstance;
test.before(async () => {
  stack = await startAuditStack();
  [worker] = (await simulateWorkers(stack.rpc, 1, PLUGIN_NAME, stack.config({ immudb_database: 'malformed', create_database: true, key_prefix: 'm', queue: { max_batch_size: 64, max_coalescing_delay: 0.02 } }))) as [KongInstance];
});
test.after.always(async () => {
  await stack?.dispose();
});

const good = keyAuthConsumerLog(5).log;
const huge = 'h'.repeat(1_000_000);

const cases: Array<{ name: string; answer: unknown; check: (e: AuditEntry) => void; problem?: RegExp }> = [
  {
    name: 'serialize result that is not JSON',
    answer: '{"request": {"id": "abc", ',
    problem: /^kong\.log\.serialize returned invalid JSON/,
    check: (e) => {
      if (e.time_source !== 'plugin' || e.request_id !== null) throw new Error('expected a plugin-clock entry');
    },
  },
  {
    name: 'JSON that is not an object',
    answer: '[1,2,3]',
    problem: /^kong\.log\.serialize returned JSON that is not an object/,
    check: () => {},
  },
  {
    name: 'missing fields',
    answer: JSON.stringify({ request: { id: 'only-an-id' } }),
    problem: /^started_at missing or invalid/,
    check: (e) => {
      if (e.request_id !== 'only-an-id' || e.what.method !== null || e.outcome.status !== null || e.outcome.result !== 'unknown') throw new Error('expected nulls');
    },
  },
  {
    name: 'huge headers (1 MB)',
    answer: JSON.stringify({ ...good, request: { ...good.request, headers: { ...good.request.headers, 'x-huge': huge, cookie: huge } } }),
    check: (e) => {
      if (e.request_id !== good.request.id || e.who.consumer?.username !== good.consumer?.username) throw new Error('expected the real fields');
    },
  },
  {
    name: 'invalid UTF-8 (sent as bytes) and lone surrogates',
    answer: new RawStep('plugin.Step', Buffer.concat([
      Buffer.from(JSON.stringify({ ...good, request: { ...good.request, uri: '/bad-PLACE' } }).split('PLACE')[0]!),
      Buffer.from([0xff, 0xfe, 0xc3]),
      Buffer.from(JSON.stringify({ ...good, request: { ...good.request, uri: '/bad-PLACE' } }).split('PLACE')[1]!),
    ])),
    check: (e) => {
      if (!e.what.path?.startsWith('/bad-\ufffd')) throw new Error(`path ${e.what.path}`);
    },
  },
  {
    name: 'invalid traceparent',
    answer: JSON.stringify({ ...good, request: { ...good.request, headers: { traceparent: '00-00000000000000000000000000000000-00f067aa0ba902b7-01' } } }),
    problem: /^invalid traceparent: traceparent trace-id is all zeros/,
    check: (e) => {
      // Recorded as invalid; the audit span starts a new root trace instead of the all-zero id.
      if (e.trace_source !== 'invalid' || !/^[0-9a-f]{32}$/.test(e.trace_id ?? '') || e.trace_id === '0'.repeat(32)) throw new Error('expected an invalid trace source and a new trace');
    },
  },
  {
    name: 'a PDK error',
    answer: pdkError('no request context'),
    problem: /^kong\.log\.serialize failed: PDK method kong\.log\.serialize failed: +no request context/,
    check: (e) => {
      if (e.time_source !== 'plugin') throw new Error('expected the plugin clock');
    },
  },
];

test.serial('every malformed input is audited, the server survives, each problem is logged once', async (t) => {
  let expected = 0;
  for (const c of cases) {
    // Twice each: the second occurrence must only be counted, not logged again.
    for (let i = 0; i < 2; i++) {
      const r = await worker.runLogEvent({ 'kong.log.serialize': c.answer as never });
      t.true(r.completed, c.name);
      expected++;
    }
  }
  t.true(stack.server.isRunning(), 'plugin server still running');
  const db = await stack.client('malformed');
  const stored = await waitForEntries(db, 'm:entry:', expected);
  t.is(stored.length, expected);
  const entries = stored.map((s) => JSON.parse(s.value.toString()) as AuditEntry);
  const logs = stack.server.logs();
  for (const c of cases) {
    const matching = c.problem ? entries.filter((e) => e.capture_problems.some((p) => c.problem!.test(p))) : [];
    if (c.problem) {
      t.is(matching.length, 2, `${c.name}: two entries record the problem`);
      for (const e of matching) t.notThrows(() => c.check(e), c.name);
      const source = c.problem.source.replace(/^\^/, '');
      const lines = logs.split('\n').filter((l) => new RegExp(source).test(l) && l.includes('[immudb-audit]'));
      t.is(lines.length, 1, `${c.name}: logged once (${lines.length})`);
    }
  }
  // Cases without a problem string are identified by their content.
  t.is(entries.filter((e) => e.what.path?.startsWith('/bad-\ufffd')).length, 2, 'invalid UTF-8 case audited twice');
  const hugeOnes = stored.filter((s) => s.value.length < 10_000 && JSON.parse(s.value.toString()).request_id === good.request.id);
  t.true(hugeOnes.length >= 4, 'huge-header entries stored without the headers');
  t.false(stored.some((s) => s.value.includes(huge.slice(0, 1000))), 'no header value stored');
});
