import test from 'ava';
import { Batcher } from '../../plugin/pipeline/batcher.js';
import { FakeClock, settle } from '../helpers/fake-clock.js';

function opts(over: Partial<ConstructorParameters<typeof Batcher<number>>[1]> = {}) {
  return { maxBatchSize: 4, maxDelayMs: 20, maxEntries: 10, initialRetryMs: 1, maxRetryMs: 5, ...over };
}

test.serial('full batches are written at once, the rest after the coalescing delay', async (t) => {
  // A fake clock: "at once" means before time moves at all, and the delay is exact, whatever
  // the machine's load (with real timers a 20 ms stall let the delay pass before the check).
  const clock = new FakeClock().install();
  t.teardown(() => clock.uninstall());
  const batches: number[][] = [];
  const b = new Batcher<number>({ write: async (x) => void batches.push([...x]) }, opts());
  for (let i = 0; i < 10; i++) t.true(b.add(i));
  await settle();
  t.deepEqual(batches, [[0, 1, 2, 3], [4, 5, 6, 7]]);
  await clock.advance(19);
  t.deepEqual(batches, [[0, 1, 2, 3], [4, 5, 6, 7]], 'the partial batch waits for the coalescing delay');
  await clock.advance(1);
  t.deepEqual(batches, [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]);
  t.is(clock.pending, 0);
});

test('a full queue refuses entries instead of dropping old ones', async (t) => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const written: number[] = [];
  const b = new Batcher<number>({ write: async (x) => { await gate; written.push(...x); } }, opts({ maxEntries: 5 }));
  for (let i = 0; i < 5; i++) t.true(b.add(i));
  t.false(b.add(5));
  release();
  await b.forceFlush();
  t.deepEqual(written, [0, 1, 2, 3, 4]);
});

test('failed writes are retried until they succeed, in order, nothing lost', async (t) => {
  let failures = 3;
  const written: number[] = [];
  const retries: number[] = [];
  const b = new Batcher<number>(
    { write: async (x) => { if (failures-- > 0) throw new Error('down'); written.push(...x); } },
    opts({ onRetry: (_e, attempt) => retries.push(attempt) }),
  );
  for (let i = 0; i < 6; i++) b.add(i);
  await b.forceFlush();
  t.deepEqual(written, [0, 1, 2, 3, 4, 5]);
  t.deepEqual(retries, [1, 2, 3]);
});

test('a fatal error holds the queue and rejects flushes', async (t) => {
  const b = new Batcher<number>({ write: async () => { throw new Error('tampered'); } }, opts({ isFatal: () => true }));
  b.add(1);
  b.add(2);
  await t.throwsAsync(b.forceFlush(), { message: 'tampered' });
  t.is(b.length, 2);
  t.deepEqual([...b.pending()], [1, 2]);
});

test('shutdown flushes and reports what is left when the writer cannot finish', async (t) => {
  const b = new Batcher<number>({ write: () => new Promise(() => {}) }, opts());
  b.add(1);
  t.is(await b.shutdown(30), 1);
  t.false(b.add(2));
});

test('after shutdown a failing write is not tried again, and a flush waiting for it is rejected', async (t) => {
  let attempts = 0;
  const b = new Batcher<number>({ write: async () => { attempts++; throw new Error('immudb down'); } }, opts({ initialRetryMs: 5, maxRetryMs: 20 }));
  b.add(1);
  const flushed = b.forceFlush().then(() => 'resolved', (e: Error) => e.message);
  t.is(await b.shutdown(50), 1);
  t.is(await flushed, 'the queue shut down before everything submitted was written');
  const after = attempts;
  await new Promise((r) => setTimeout(r, 200));
  t.is(attempts, after, 'no attempt after shutdown (a retry loop there kept the process alive for good)');
  await t.throwsAsync(b.forceFlush(), { message: /shut down before everything submitted was written/ });
});

test('onWritten sees the written batch out of the queue (a refill there sees its room)', async (t) => {
  const seen: number[] = [];
  const b = new Batcher<number>({ write: async () => undefined }, opts({ maxBatchSize: 4, maxEntries: 4, onWritten: () => seen.push(b.length) }));
  for (let i = 0; i < 4; i++) t.true(b.add(i));
  await b.forceFlush();
  t.deepEqual(seen, [0]);
});
