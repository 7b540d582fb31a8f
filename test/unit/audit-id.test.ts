// Audit ids: uuid v7 with pooled random bytes keep the form, version, variant and time of
// uuid's own v7 and increase strictly, also within one millisecond, across pool refills and when
// the clock steps back.
import test from 'ava';
import { auditId } from '../../plugin/capture/audit-id.js';

const re = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const msOf = (id: string) => parseInt(id.slice(0, 8) + id.slice(9, 13), 16);

test('UUIDv7 form, current time, strictly increasing, unique', (t) => {
  let prev = '';
  const seen = new Set<string>();
  for (let i = 0; i < 20_000; i++) {
    const before = Date.now();
    const id = auditId();
    t.true(re.test(id), id);
    t.true(id > prev, `${id} after ${prev}`);
    seen.add(id);
    prev = id;
    const ms = msOf(id);
    if (ms < before || ms > Date.now() + 1) t.fail(`timestamp ${ms} not around ${before}`);
  }
  t.is(seen.size, 20_000);
});

test('a clock that steps back keeps ids increasing (the sequence counts on from the last time)', (t) => {
  const t0 = Date.now() + 60_000;
  const a = auditId(t0);
  const b = auditId(t0 - 5_000);
  const c = auditId(t0);
  t.true(b > a && c > b);
  t.is(msOf(b), t0);
  t.is(msOf(c), t0);
  // A later time starts a new random sequence at that time.
  const d = auditId(t0 + 1);
  t.is(msOf(d), t0 + 1);
  t.true(d > c);
});

test('random bits differ between ids of one millisecond (the pool is not reused)', (t) => {
  const now = Date.now() + 120_000;
  const ids = Array.from({ length: 600 }, () => auditId(now));
  const tails = new Set(ids.map((id) => id.slice(-12)));
  t.is(tails.size, 600);
});
