// The spool is the buffer: while the writer cannot write, entries durable in the spool leave
// memory (all but the batch being retried) and are read back, in order, once it writes again;
// memory stays flat however deep the backlog. (A stub writer here; the real immudb path is
// test/integration/durability.test.ts and pipeline-model.test.ts.)
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditPipeline } from '../../plugin/pipeline/audit-pipeline.js';
import { Spool } from '../../plugin/pipeline/spool.js';
import { createLogger } from '../../plugin/log.js';
import type { AuditWriter, KeyValue, WriteResult } from '../../plugin/store/audit-writer.js';

function stubWriter() {
  const w = {
    up: false,
    attempts: 0,
    lastTxId: 0,
    halted: undefined,
    /** Every key written, in write order. */
    order: [] as string[],
    async write(batch: readonly KeyValue[]): Promise<WriteResult> {
      w.attempts++;
      if (!w.up) throw new Error('immudb down');
      for (const r of batch) w.order.push(r.key.toString());
      return { txId: ++w.lastTxId, written: batch.length, duplicates: 0 };
    },
    async close() {},
  };
  return w;
}

async function until(cond: () => boolean, what: string) {
  const deadline = Date.now() + 20_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const rec = (i: number) => ({ id: `${i}`, key: Buffer.from(`p:entry:${String(i).padStart(5, '0')}`), value: Buffer.from(JSON.stringify({ i, pad: 'x'.repeat(100) })) });

test('writer down: memory holds only the batch being retried; everything comes back in order, once', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kia-backlog-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const logger = createLogger('p', () => undefined);
  const spool = Spool.open({ dir, maxBytes: 1 << 30, fsync: 'group', logger });
  const w = stubWriter();
  const queue = { max_batch_size: 8, max_coalescing_delay: 0.005, max_entries: 1000, initial_retry_delay: 0.005, max_retry_delay: 0.02, max_bytes: null, concurrency_limit: 1, max_retry_time: null };
  const p = new AuditPipeline(queue, spool, w as unknown as AuditWriter, logger);
  for (let i = 0; i < 300; i++) t.true(await p.submit(rec(i)));
  await until(() => w.attempts >= 3, 'retries');
  // More arrive while it is down: they stay in the spool only.
  for (let i = 300; i < 600; i++) t.true(await p.submit(rec(i)));
  const s = p.snapshot();
  t.true(s.queued_memory <= queue.max_batch_size, `${s.queued_memory} entries in memory`);
  t.is(s.spool_entries, 600);
  w.up = true;
  await p.flush();
  t.deepEqual(w.order, Array.from({ length: 600 }, (_, i) => rec(i).key.toString()), 'every entry once, in spool order');
  t.is(p.snapshot().spool_entries, 0);
  t.is(p.snapshot().written, 600);
  await p.shutdown(100);
});
