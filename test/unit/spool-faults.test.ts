// The spool under injected file-system faults (ENOSPC, EIO, EACCES at chosen calls, through
// the spool-fs seam): failed writes count for nothing and leave the spool consistent, and after
// any sequence of appends, acks, faults and reopen every record whose append resolved and was
// not acknowledged is read back, in order, exactly once; nothing acknowledged comes back.
import test from 'ava';
import fc from 'fast-check';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Spool, type SpoolPosition } from '../../plugin/pipeline/spool.js';
import { faultyFs, fsError, nodeFs, type SpoolFsCall } from '../../plugin/pipeline/spool-fs.js';
import { createLogger } from '../../plugin/log.js';

type Code = 'ENOSPC' | 'EIO' | 'EACCES';

/** A seam whose next call of a kind fails when armed. */
function armedFs() {
  const armed = new Map<SpoolFsCall, { code: Code; partial?: number }>();
  const fs = faultyFs(nodeFs, (call) => {
    const a = armed.get(call);
    if (!a) return undefined;
    armed.delete(call);
    return { error: fsError(a.code, call), ...(a.partial !== undefined ? { partial: a.partial } : {}) };
  });
  return {
    fs,
    arm: (call: SpoolFsCall, code: Code, partial?: number) => armed.set(call, { code, ...(partial !== undefined ? { partial } : {}) }),
    isArmed: (call: SpoolFsCall) => armed.has(call),
  };
}

const val = (i: number) => Buffer.from(JSON.stringify({ i, pad: 'z'.repeat(i % 40) }));
/** Over 100 bytes: with segmentBytes 100 every write after the first opens a segment. */
const big = (i: number) => Buffer.from(JSON.stringify({ i, pad: 'b'.repeat(120) }));
const key = (i: number) => Buffer.from(`p:entry:${i}`);
const ids = (s: Spool) => s.read(undefined, 1_000_000).map((r) => Number(r.key.toString().split(':')[2]));

function tempDir(t: import('ava').ExecutionContext) {
  const dir = mkdtempSync(join(tmpdir(), 'kia-spool-faults-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

for (const [call, code, partial] of [['write', 'ENOSPC', 37], ['write', 'EIO', undefined], ['fsync', 'EIO', undefined], ['open', 'EACCES', undefined]] as const) {
  test(`${code} at ${call}${partial ? ` (after ${partial} bytes)` : ''}: the failed group counts for nothing; the next write starts at the durable end`, async (t) => {
    const dir = tempDir(t);
    const lines: string[] = [];
    const { fs, arm } = armedFs();
    // Small segments, so an open (rotation) happens between writes.
    const s = Spool.open({ dir, maxBytes: 1 << 30, fsync: 'group', segmentBytes: 100, logger: createLogger('t', (l) => lines.push(l)), fs });
    await s.append(key(1), big(1));
    const bytes = s.bytes;
    arm(call, code, partial);
    await t.throwsAsync(s.append(key(2), big(2)), { code });
    t.is(s.pendingRecords, 1);
    t.is(s.bytes, bytes);
    t.deepEqual(ids(s), [1]);
    await s.append(key(3), big(3));
    t.deepEqual(ids(s), [1, 3]);
    t.true(lines.some((l) => l.includes(`error t: spool ${dir}: write failed (${code}`)), lines.join('\n'));
    t.true(lines.some((l) => l.includes('writes succeed again')));
    await s.close();
    const lines2: string[] = [];
    const again = Spool.open({ dir, maxBytes: 1 << 30, fsync: 'group', logger: createLogger('t', (l) => lines2.push(l)) });
    t.deepEqual(ids(again), [1, 3]);
    t.is(again.recovery.missing, 0);
    t.is(again.recovery.damagedRegions, 0, lines2.join('\n'));
    await again.close();
  });
}

test('an ack that cannot be saved keeps the segments; proven entries are replayed, never lost', async (t) => {
  const dir = tempDir(t);
  const { fs, arm } = armedFs();
  const s = Spool.open({ dir, maxBytes: 1 << 30, fsync: 'group', segmentBytes: 100, logger: createLogger('t', () => undefined), fs });
  const pos: SpoolPosition[] = [];
  for (let i = 0; i < 6; i++) pos.push(await s.append(key(i), val(i)));
  arm('write', 'EIO');
  s.ack(pos[3]!, 4);
  t.deepEqual(ids(s), [4, 5]);
  await s.close();
  const again = Spool.open({ dir, maxBytes: 1 << 30, fsync: 'group', logger: createLogger('t', () => undefined) });
  t.deepEqual(ids(again), [0, 1, 2, 3, 4, 5]);
  t.is(again.recovery.missing, 0);
  await again.close();
});

test('a torn tail that cannot be cut off at open (its fsync fails) does not stop the spool', async (t) => {
  // Found by the model below (seed -228585608): a failed write left a byte its cut-back could
  // not remove; the next open's repair then met a failing fsync and the whole spool refused to open.
  const dir = tempDir(t);
  const { fs, arm } = armedFs();
  const open = () => Spool.open({ dir, maxBytes: 1 << 30, fsync: 'group', segmentBytes: 256, logger: createLogger('t', () => undefined), fs });
  let s = open();
  arm('write', 'ENOSPC', 1);
  arm('truncate', 'ENOSPC');
  await t.throwsAsync(s.append(key(0), val(0)));
  await s.close();
  arm('fsync', 'ENOSPC');
  s = open();
  t.deepEqual(ids(s), []);
  await s.append(key(1), val(1));
  await s.close();
  s = open();
  t.deepEqual(ids(s), [1]);
  t.is(s.recovery.missing, 0);
  await s.close();
});

type Op =
  | { op: 'append'; n: number }
  | { op: 'ack'; frac: number }
  | { op: 'fault'; call: 'write' | 'fsync' | 'truncate' | 'open'; code: Code; partial: number }
  | { op: 'reopen'; crash: boolean };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ op: fc.constant('append' as const), n: fc.integer({ min: 1, max: 6 }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('ack' as const), frac: fc.double({ min: 0, max: 1, noNaN: true }) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('fault' as const),
      call: fc.constantFrom('write' as const, 'fsync' as const, 'truncate' as const, 'open' as const),
      code: fc.constantFrom('ENOSPC' as const, 'EIO' as const, 'EACCES' as const),
      partial: fc.integer({ min: 0, max: 200 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('reopen' as const), crash: fc.boolean() }) },
);

test('model: appends, acks, injected faults and reopen never lose or repeat a durable record', async (t) => {
  let runs = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 40 }), async (ops) => {
      runs++;
      const dir = mkdtempSync(join(tmpdir(), 'kia-spool-model-'));
      try {
        const { fs, arm, isArmed } = armedFs();
        const open = () => Spool.open({ dir, maxBytes: 1 << 30, fsync: 'group', segmentBytes: 256, logger: createLogger('m', () => undefined), fs });
        let s = open();
        let next = 0;
        /** Resolved and not acknowledged, in append order. */
        let waiting: Array<{ id: number; pos: SpoolPosition }> = [];
        const acked = new Set<number>();
        const failed = new Set<number>();
        let truncateFaulted = false;
        /**
         * An ack whose pointer write failed (it took an armed write fault) leaves a stale or torn
         * pointer: proven records may be read back after reopen (the spool's contract: a replay
         * is recognised by verified reads, never written twice). Only acknowledged ids may.
         */
        let ackFaulted = false;
        for (const o of ops) {
          if (o.op === 'append') {
            const batch = Array.from({ length: o.n }, () => next++);
            const res = await Promise.allSettled(batch.map((i) => s.append(key(i), val(i))));
            res.forEach((r, j) => {
              if (r.status === 'fulfilled') waiting.push({ id: batch[j]!, pos: r.value });
              else failed.add(batch[j]!);
            });
          } else if (o.op === 'ack') {
            const k = Math.floor(o.frac * waiting.length);
            if (k > 0) {
              const armedBefore = isArmed('write');
              s.ack(waiting[k - 1]!.pos, k);
              if (armedBefore && !isArmed('write')) ackFaulted = true;
              for (const w of waiting.slice(0, k)) acked.add(w.id);
              waiting = waiting.slice(k);
            }
          } else if (o.op === 'fault') {
            if (o.call === 'truncate') truncateFaulted = true;
            arm(o.call, o.code, o.call === 'write' ? o.partial : undefined);
          } else {
            if (!o.crash) await s.close();
            s = open();
            // What the spool holds after reopen: the records that were waiting, in order, once.
            const read = ids(s);
            const replayed = read.filter((i) => acked.has(i));
            if (replayed.length && !ackFaulted) throw new Error(`acknowledged records read back: ${JSON.stringify(read)}`);
            const back = read.filter((i) => !acked.has(i));
            const expected = waiting.map((w) => w.id);
            const resolvedBack = back.filter((i) => !failed.has(i));
            if (JSON.stringify(resolvedBack) !== JSON.stringify(expected)) throw new Error(`after reopen: ${JSON.stringify(back)} but expected ${JSON.stringify(expected)}`);
            // Records of a failed write survive only when cutting it back failed too.
            if (!truncateFaulted && back.length !== expected.length) throw new Error(`records of failed writes read back: ${JSON.stringify(back)}`);
            if (s.recovery.missing !== 0) throw new Error(`${s.recovery.missing} records reported missing`);
            // Positions of waiting records are those read back (for later acks).
            const byId = new Map(s.read(undefined, 1_000_000).map((r) => [Number(r.key.toString().split(':')[2]), r.pos]));
            waiting = waiting.map((w) => ({ id: w.id, pos: byId.get(w.id)! }));
            // Replayed records wait again, ahead of the others (a later ack covers them).
            if (replayed.length) {
              waiting = [...replayed.map((id) => ({ id, pos: byId.get(id)! })), ...waiting];
              for (const id of replayed) acked.delete(id);
            }
            ackFaulted = false;
          }
        }
        await s.close();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }),
    { numRuns: Number(process.env.KIA_FC_RUNS ?? 150), ...(process.env.KIA_FC_SEED ? { seed: Number(process.env.KIA_FC_SEED), path: process.env.KIA_FC_PATH } : {}) },
  );
  // A replayed path runs once; otherwise every run happened.
  t.true(runs >= (process.env.KIA_FC_PATH ? 1 : Number(process.env.KIA_FC_RUNS ?? 150)));
});
