// Every schema-valid queue configuration drains: a burst larger than the memory queue is
// written in full once immudb can take it (issue 13, finding 4: max_entries at or below about
// twice max_batch_size left everything past the first max_entries in the spool for good).
import test from 'ava';
import { simulateWorkers } from '../helpers/kong-driver.js';
import { buildFixture, SCENARIO_KINDS } from '../fixtures/serialized-logs.js';
import { PLUGIN_NAME, mapLimit, startAuditStack, waitForEntries, type AuditStack } from '../helpers/audit-stack.js';

let stack: AuditStack;
test.before(async () => {
  stack = await startAuditStack();
});
test.after.always(async () => {
  await stack?.dispose();
});

/** A small deterministic generator, so a failing combination can be named and rerun. */
function lcg(seed: number) {
  let s = seed >>> 0;
  return (n: number) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s % n;
  };
}

const fixed: Array<[number, number]> = [[256, 256], [100, 256], [1, 1], [2, 1], [511, 256]];
const rnd = lcg(13);
const random: Array<[number, number]> = Array.from({ length: 3 }, () => {
  const batch = 1 + rnd(512);
  return [1 + rnd(2 * batch + 8), batch];
});

for (const [i, [maxEntries, maxBatch]] of [...fixed, ...random].entries()) {
  test.serial(`max_entries ${maxEntries}, max_batch_size ${maxBatch}: a burst of 600 is written in full`, async (t) => {
    const db = `drain${i}`;
    const [w] = await simulateWorkers(stack.rpc, 1, PLUGIN_NAME, stack.config({
      immudb_database: db, create_database: true, key_prefix: 'd',
      queue: { max_entries: maxEntries, max_batch_size: maxBatch, max_coalescing_delay: 0.01 },
    }));
    const n = 600;
    await mapLimit(Array.from({ length: n }, (_, k) => k), 64, async (k) => {
      const r = await w!.runLogEvent({ 'kong.log.serialize': buildFixture(SCENARIO_KINDS[k % SCENARIO_KINDS.length]!, 7_000_000 + i * 1000 + k).json });
      if (!r.completed) throw new Error('event did not complete');
    });
    const stored = await waitForEntries(await stack.client(db), 'd:entry:', n, 60_000);
    t.is(stored.length, n);
  });
}
