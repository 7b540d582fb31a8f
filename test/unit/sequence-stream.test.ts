// The sequence state file (plugin/pipeline/sequence-stream.ts): numbers never handed out twice,
// whether the run stopped cleanly, crashed, or went on numbering after its clean stop.
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SequenceStream } from '../../plugin/pipeline/sequence-stream.js';
import { until } from '../helpers/until.js';

function dir(t: { teardown: (f: () => void | Promise<void>) => void }) {
  const d = mkdtempSync(join(tmpdir(), 'kia-seq-'));
  // A stream left open (a crash) may still be writing a reservation off the thread
  // (reserveAhead): its file can appear while the directory is removed (ENOTEMPTY; rmSync's own
  // retries do not list the directory again on Linux). Removed again (until.ts) once that write had time.
  t.teardown(async () => {
    await until(`${d} removed`, () => {
      try {
        rmSync(d, { recursive: true, force: true });
        return true;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOTEMPTY') throw e;
        return false;
      }
    }, 5_000);
  });
  return d;
}

test('a clean stop continues right after the last number; a crash after the reservation', (t) => {
  const d = dir(t);
  const a = SequenceStream.open(d, 'audit', 10);
  t.is(a.previous, null);
  t.deepEqual([a.next(), a.next(), a.next()], [1, 2, 3]);
  a.close();
  const b = SequenceStream.open(d, 'audit', 10);
  t.is(b.stream, a.stream);
  t.deepEqual(b.previous, { clean: true, last: 3 });
  t.is(b.next(), 4);
  for (let i = 0; i < 12; i++) b.next(); // into the second block: reserved up to 23
  t.is(b.lastNumber, 16);
  // No close: a crash.
  const c = SequenceStream.open(d, 'audit', 10);
  t.deepEqual(c.previous, { clean: false, last: 23 });
  t.is(c.first, 24);
  t.is(c.next(), 24);
});

test('numbers asked for after a clean stop are reserved again, never handed out twice', (t) => {
  const d = dir(t);
  const a = SequenceStream.open(d, 'p', 10);
  a.next();
  a.close();
  t.is(a.next(), 2, 'an entry arriving during the shutdown');
  // The process ends without another close (killed after the stop): 2 must not come back.
  const b = SequenceStream.open(d, 'p', 10);
  t.true(b.next() > 2);
});

test('streams are per prefix; a damaged state file is refused with the way out', (t) => {
  const d = dir(t);
  const a = SequenceStream.open(d, 'a', 10);
  const b = SequenceStream.open(d, 'b', 10);
  t.not(a.stream, b.stream);
  t.is(JSON.parse(readFileSync(join(d, 'sequence.a.json'), 'utf8')).reserved_to, 10);
  writeFileSync(join(d, 'sequence.a.json'), '{"stream":');
  t.throws(() => SequenceStream.open(d, 'a', 10), { message: /is not a sequence state file; remove it to start a new stream/ });
});

test('halfway through a block the next one is reserved off the thread', async (t) => {
  const d = dir(t);
  const a = SequenceStream.open(d, 'p', 10);
  for (let i = 0; i < 6; i++) a.next();
  const file = join(d, 'sequence.p.json');
  const deadline = Date.now() + 10_000;
  while ((JSON.parse(readFileSync(file, 'utf8')) as { reserved_to: number }).reserved_to !== 20 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  t.is((JSON.parse(readFileSync(file, 'utf8')) as { reserved_to: number }).reserved_to, 20);
  // Let the reservation finish, then a crash: the next run starts after it.
  await new Promise((r) => setTimeout(r, 50));
  t.is(SequenceStream.open(d, 'p', 10).first, 21);
});
