import test from 'ava';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Spool, SpoolFullError } from '../../plugin/pipeline/spool.js';
import { createLogger } from '../../plugin/log.js';

function setup(t: import('ava').ExecutionContext, over: Partial<Parameters<typeof Spool.open>[0]> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'kia-spool-'));
  const lines: string[] = [];
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const open = () => Spool.open({ dir, maxBytes: 64 * 1024 * 1024, fsync: 'group', logger: createLogger('test', (l) => lines.push(l)), ...over });
  return { dir, lines, open };
}

const rec = (i: number) => ({ key: Buffer.from(`k:entry:${i}`), value: Buffer.from(JSON.stringify({ i, pad: 'x'.repeat(i % 50) })) });

test('appended records read back in order; acked ones are gone after reopen', async (t) => {
  const { open } = setup(t);
  const s = open();
  const pos = await Promise.all(Array.from({ length: 10 }, (_, i) => s.append(rec(i).key, rec(i).value)));
  t.deepEqual(s.read(undefined, 100).map((r) => r.key.toString()), Array.from({ length: 10 }, (_, i) => `k:entry:${i}`));
  t.deepEqual(s.read(pos[3], 2).map((r) => r.value.toString()), [rec(4).value.toString(), rec(5).value.toString()]);
  s.ack(pos[5]!, 6);
  t.is(s.pendingRecords, 4);
  await s.close();
  const again = open();
  t.is(again.recovery.pending, 4);
  t.deepEqual(again.read(undefined, 100).map((r) => r.key.toString()), ['k:entry:6', 'k:entry:7', 'k:entry:8', 'k:entry:9']);
  await again.close();
});

test('group commit: 2,000 concurrent appends take far fewer flushes than records', async (t) => {
  const { open } = setup(t);
  const s = open();
  await Promise.all(Array.from({ length: 2000 }, (_, i) => s.append(rec(i).key, rec(i).value)));
  t.true(s.flushes < 100, `${s.flushes} flushes`);
  t.is(s.read(undefined, 5000).length, 2000);
  await s.close();
});

test('segments rotate and are deleted once fully acknowledged', async (t) => {
  const { dir, open } = setup(t, { segmentBytes: 4096 });
  const s = open();
  const segs = () => readdirSync(dir).filter((n) => n.startsWith('seg-')).length;
  let last;
  for (let i = 0; i < 300; i++) last = await s.append(rec(i).key, rec(i).value);
  t.true(segs() > 5, `${segs()} segments`);
  const bytesBefore = s.bytes;
  s.ack(last!, 300);
  t.true(segs() <= 1, `${segs()} segments left`);
  t.true(s.bytes < bytesBefore);
  t.is(s.pendingRecords, 0);
  await s.close();
});

test('a torn tail is cut back to the last whole record and the loss is reported', async (t) => {
  const { dir, lines, open } = setup(t);
  const s = open();
  for (let i = 0; i < 20; i++) await s.append(rec(i).key, rec(i).value);
  await s.close();
  const seg = readdirSync(dir).find((n) => n.startsWith('seg-'))!;
  const size = statSync(join(dir, seg)).size;
  truncateSync(join(dir, seg), size - 7); // a crash in the middle of the last record
  const again = open();
  t.is(again.recovery.pending, 19);
  t.is(again.recovery.damagedRegions, 1);
  t.true(again.recovery.damagedBytes > 0);
  t.is(again.read(undefined, 100).length, 19);
  t.true(lines.some((l) => /damaged bytes at offset \d+ skipped/.test(l)));
  t.true(lines.some((l) => /19 entries waiting from a previous run, \d+ bytes in 1 damaged region\(s\) lost/.test(l)));
  // New appends after recovery are readable after the survivors.
  await again.append(Buffer.from('k:entry:new'), Buffer.from('{}'));
  t.is(again.read(undefined, 100).at(-1)!.key.toString(), 'k:entry:new');
  await again.close();
});

test('a damaged region in the middle is skipped; the records after it survive', async (t) => {
  const { dir, open } = setup(t);
  const s = open();
  for (let i = 0; i < 10; i++) await s.append(rec(i).key, rec(i).value);
  await s.close();
  const file = join(dir, readdirSync(dir).find((n) => n.startsWith('seg-'))!);
  const buf = readFileSync(file);
  buf.fill(0x55, 200, 260); // garbage over part of the file
  writeFileSync(file, buf);
  const again = open();
  const keys = again.read(undefined, 100).map((r) => r.key.toString());
  t.true(keys.length >= 7 && keys.length < 10, keys.join());
  t.is(keys.at(-1), 'k:entry:9');
  t.is(again.recovery.damagedRegions, 1);
  await again.close();
});

test('a full spool refuses new records with a clear error and counts them', async (t) => {
  const { open } = setup(t, { maxBytes: 1024 * 1024 });
  const s = open();
  const big = Buffer.alloc(300 * 1024, 1);
  await s.append(Buffer.from('a'), big);
  await s.append(Buffer.from('b'), big);
  await s.append(Buffer.from('c'), big);
  const err = await t.throwsAsync(s.append(Buffer.from('d'), big), { instanceOf: SpoolFullError });
  t.regex(err!.message, /^spool .* is full \(\d+ of 1048576 bytes\)$/);
  t.is(s.refused, 1);
  await s.close();
});

test('a spool smaller than a segment frees its space once acknowledged: full, acked, then takes records again', async (t) => {
  const { open } = setup(t, { maxBytes: 1024 * 1024 });
  const s = open();
  const big = Buffer.alloc(300 * 1024, 1);
  let last;
  for (let round = 0; round < 4; round++) {
    // Fill it to the brim, then acknowledge everything: the space must come back each time.
    for (;;) {
      try {
        last = await s.append(Buffer.from(`k:entry:${round}`), big);
      } catch (e) {
        t.true(e instanceof SpoolFullError);
        break;
      }
    }
    s.ack(last!, s.pendingRecords);
    await t.notThrowsAsync(s.append(Buffer.from(`k:entry:${round}b`), big), `round ${round}: full although everything was acknowledged`);
    last = undefined;
  }
  await s.close();
});

test('files are private, and a live process holds the lock', async (t) => {
  const { dir, open } = setup(t);
  const s = open();
  await s.append(Buffer.from('a'), Buffer.from('b'));
  t.is(statSync(dir).mode & 0o777, 0o700);
  for (const n of readdirSync(dir)) t.is(statSync(join(dir, n)).mode & 0o077, 0, n);
  // Another live process's lock is respected (pid 1 is always alive).
  await s.close();
  writeFileSync(join(dir, 'LOCK'), '1');
  t.throws(() => open(), { message: `the spool in ${dir} cannot be opened: it is in use by process 1` });
  // A stale lock of a dead process is taken over.
  writeFileSync(join(dir, 'LOCK'), '999999999');
  const again = open();
  t.is(again.recovery.pending, 1);
  await again.close();
});

test('records are read back in chunks: records across chunk ends and larger than a chunk come back whole, in order', async (t) => {
  const { open } = setup(t);
  const s = open();
  const sizes = [...Array.from({ length: 40 }, (_, i) => 20_000 + i * 37), 600_000, 5, 300_000, ...Array.from({ length: 10 }, () => 1000)];
  const values = sizes.map((n, i) => Buffer.alloc(n, i % 251));
  const pos = await Promise.all(values.map((v, i) => s.append(Buffer.from(`k:entry:${i}`), v)));
  const all = s.read(undefined, 1000);
  t.is(all.length, values.length);
  t.true(all.every((r, i) => r.key.toString() === `k:entry:${i}` && r.value.equals(values[i]!) && r.pos.offset === pos[i]!.offset));
  // From a position in the middle, a few at a time.
  t.deepEqual(s.read(pos[39], 3).map((r) => r.key.toString()), ['k:entry:40', 'k:entry:41', 'k:entry:42']);
  t.deepEqual(s.read(pos[41], 100).map((r) => r.key.toString()), Array.from({ length: 11 }, (_, i) => `k:entry:${42 + i}`));
  await s.close();
});
