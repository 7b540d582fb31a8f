// The progress line: drawn on a terminal only (not under --json, not into a pipe), throttled,
// with the count, the rate and an ETA, and cleared before the result is printed.
import test from 'ava';
import { createProgress } from '../../plugin/cli/progress.js';

function fakeStream(isTTY: boolean) {
  const writes: string[] = [];
  return { isTTY, writes, write: (s: string) => writes.push(s) };
}

test('a TTY gets a throttled line with count, rate and ETA, cleared at the end', (t) => {
  const stream = fakeStream(true);
  let now = 1_000;
  const p = createProgress({ label: 'verify --all', stream, now: () => now, perSecond: 5 });
  t.true(p.enabled);
  p.total(100);
  // Too early for a rate or an ETA.
  now += 10;
  p.update(1, 1);
  t.is(stream.writes.pop(), '\rverify --all: tx 1/100 (1%), 1 entry\x1b[K');
  now += 990;
  p.update(10, 25);
  t.is(stream.writes.length, 1);
  t.is(stream.writes[0], '\rverify --all: tx 10/100 (10%), 25 entries, 10 tx/s, ETA 9s\x1b[K');
  // Within 200 ms of the last line: nothing drawn.
  now += 100;
  p.update(11, 26);
  t.is(stream.writes.length, 1);
  now += 150;
  p.update(12, 1);
  t.is(stream.writes.length, 2);
  t.regex(stream.writes[1]!, /tx 12\/100 \(12%\), 1 entry, /);
  // The last unit is always drawn, throttled or not.
  now += 1;
  p.update(100, 200);
  t.regex(stream.writes.at(-1)!, /tx 100\/100 \(100%\), 200 entries, \d+ tx\/s\x1b\[K$/);
  p.finish();
  t.is(stream.writes.at(-1), '\r\x1b[K');
});

test('not a TTY, or --json: nothing at all', (t) => {
  for (const [isTTY, json] of [[false, false], [true, true], [false, true]] as const) {
    const stream = fakeStream(isTTY);
    const p = createProgress({ label: 'x', stream, json, now: () => 0 });
    t.false(p.enabled);
    p.total(10);
    p.update(5, 5);
    p.update(10, 10);
    p.finish();
    t.deepEqual(stream.writes, []);
  }
});

test('without a total: the count and the rate, no ETA; long ETAs in minutes and hours', (t) => {
  const stream = fakeStream(true);
  let now = 0;
  const p = createProgress({ label: 'index', stream, now: () => now, unit: 'tx' });
  now = 2_000;
  p.update(4);
  t.is(stream.writes[0], '\rindex: tx 4, 2 tx/s\x1b[K');
  p.total(200);
  now = 4_000;
  p.update(8);
  t.regex(stream.writes[1]!, /tx 8\/200 \(4%\), 2 tx\/s, ETA 1m36s/);
  p.total(100_000);
  now = 6_000;
  p.update(9);
  t.regex(stream.writes[2]!, /, 2 tx\/s, ETA 18h31m/);
});
