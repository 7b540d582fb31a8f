// The pages `verify --all` reads (plugin/store/tx-scan-pages.ts): one page asked for ahead while
// the caller checks the one before, pages in order, growing from a small first page, a
// too-large page halved, an empty page refused, and a page read ahead dropped without an
// unhandled rejection when the caller stops.
import test from 'ava';
import { ImmudbError } from '../../plugin/store/immudb-client.js';
import type { Tx } from '../../plugin/store/immudb-types.js';
import { VerificationError } from '../../plugin/store/proofs/index.js';
import { txScanPages } from '../../plugin/store/tx-scan-pages.js';

const tx = (id: number) => ({ header: { id: String(id) }, entries: [] }) as unknown as Tx;

/** A fake TxScan over txs 1..last; `answer` may replace a call's answer. */
function fakeScan(last: number, answer?: (start: number, limit: number) => Promise<Tx[]> | undefined) {
  const calls: Array<{ start: number; limit: number }> = [];
  const client = {
    txScan: (start: number, limit: number) => {
      calls.push({ start, limit });
      const a = answer?.(start, limit);
      if (a) return a;
      const n = Math.max(0, Math.min(limit, last - start + 1));
      return Promise.resolve(Array.from({ length: n }, (_, i) => tx(start + i)));
    },
  };
  return { client, calls };
}

const ids = (txs: Tx[]) => txs.map((t) => Number(t.header!.id));

test('pages come in order, the next one asked for before the caller has the current one', async (t) => {
  const { client, calls } = fakeScan(20);
  const seen: number[] = [];
  let asked = 0;
  for await (const page of txScanPages(client, 3, 20, { pageTxs: 8, firstPageTxs: 8 })) {
    // Handed over only once the next page is on its way (or none is left).
    asked = calls.length;
    t.is(asked, Math.min(3, Math.ceil((page.start - 3) / 8) + 2), `page at ${page.start}`);
    seen.push(...ids(page.txs));
  }
  t.deepEqual(seen, Array.from({ length: 18 }, (_, i) => 3 + i));
  t.deepEqual(calls, [{ start: 3, limit: 8 }, { start: 11, limit: 8 }, { start: 19, limit: 2 }]);
});

test('the first page is small and each next one twice as large, up to the page size', async (t) => {
  const { client, calls } = fakeScan(40);
  const seen: number[] = [];
  for await (const p of txScanPages(client, 1, 40)) seen.push(...ids(p.txs));
  t.deepEqual(seen, Array.from({ length: 40 }, (_, i) => 1 + i));
  t.deepEqual(calls, [
    { start: 1, limit: 1 }, { start: 2, limit: 2 }, { start: 4, limit: 4 }, { start: 8, limit: 8 },
    { start: 16, limit: 8 }, { start: 24, limit: 8 }, { start: 32, limit: 8 }, { start: 40, limit: 1 },
  ]);
  // A page halved for its size stays the largest asked for afterwards.
  const halved = fakeScan(20, (start, limit) => (limit > 3 ? Promise.reject(new ImmudbError('too large', 8)) : undefined));
  for await (const _ of txScanPages(halved.client, 1, 20, { pageTxs: 8 })) void _;
  t.deepEqual(halved.calls.map((c) => c.limit), [1, 2, 4, ...Array(8).fill(2), 1]);
});

test('a short page: the next starts after what came; more than asked for is cut', async (t) => {
  const { client, calls } = fakeScan(10, (start, limit) => {
    if (start === 1) return Promise.resolve([tx(1), tx(2), tx(3)]);
    if (start === 4) return Promise.resolve(Array.from({ length: limit + 2 }, (_, i) => tx(4 + i)));
    return undefined;
  });
  const pages: number[][] = [];
  for await (const p of txScanPages(client, 1, 10, { pageTxs: 4, firstPageTxs: 4 })) pages.push(ids(p.txs));
  t.deepEqual(pages, [[1, 2, 3], [4, 5, 6, 7], [8, 9, 10]]);
  t.deepEqual(calls.map((c) => c.start), [1, 4, 8]);
});

test('a page too large for one message is asked for again with half the transactions', async (t) => {
  let refused = 0;
  const { client, calls } = fakeScan(6, (start, limit) => {
    if (limit > 2) {
      refused++;
      return Promise.reject(new ImmudbError('too large', 8));
    }
    return undefined;
  });
  const seen: number[] = [];
  for await (const p of txScanPages(client, 1, 6, { pageTxs: 8, firstPageTxs: 8 })) seen.push(...ids(p.txs));
  t.deepEqual(seen, [1, 2, 3, 4, 5, 6]);
  t.is(refused, 2);
  t.deepEqual(calls.map((c) => c.limit), [6, 3, 1, 1, 1, 1, 1, 1].slice(0, calls.length));
});

test('an empty page before the last tx is a VerificationError; other errors pass through', async (t) => {
  const empty = fakeScan(5, (start) => (start === 3 ? Promise.resolve([]) : undefined));
  const err = await t.throwsAsync(async () => {
    for await (const _ of txScanPages(empty.client, 1, 5, { pageTxs: 2, firstPageTxs: 2 })) void _;
  });
  t.true(err instanceof VerificationError);
  t.regex(err!.message, /tx 3: the scan returned no transactions, but the server reports tx 5/);
  const failing = fakeScan(5, (start) => (start === 3 ? Promise.reject(new ImmudbError('unavailable', 14)) : undefined));
  await t.throwsAsync(async () => {
    for await (const _ of txScanPages(failing.client, 1, 5, { pageTxs: 2, firstPageTxs: 2 })) void _;
  }, { message: 'unavailable' });
});

test('when the caller stops, a failing page read ahead is dropped (no unhandled rejection)', async (t) => {
  const unhandled: unknown[] = [];
  const onUnhandled = (e: unknown) => unhandled.push(e);
  process.on('unhandledRejection', onUnhandled);
  try {
    const { client, calls } = fakeScan(10, (start) => (start === 3 ? Promise.reject(new ImmudbError('gone', 14)) : undefined));
    await t.throwsAsync(async () => {
      for await (const p of txScanPages(client, 1, 10, { pageTxs: 2, firstPageTxs: 2 })) {
        if (p.start === 1) throw new VerificationError('tx 1: check failed');
      }
    }, { instanceOf: VerificationError });
    t.deepEqual(calls.map((c) => c.start), [1, 3], 'the page after was asked for, and never used');
    await new Promise((r) => setTimeout(r, 50));
    t.deepEqual(unhandled, []);
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
});

test('nothing to read: no call', async (t) => {
  const { client, calls } = fakeScan(5);
  for await (const _ of txScanPages(client, 6, 5)) t.fail(String(_));
  t.deepEqual(calls, []);
});
