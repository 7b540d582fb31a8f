// Loss records go under the key prefix of the entries lost; a key that is not an entry key has
// no prefix to record them under, and is a programming error, not the empty prefix.
import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { encodeLossRecord, keyPrefixOf, MAX_LOSS_RANGES, noteLoss, parseLossWindows, type LossWindow } from '../../plugin/pipeline/loss-record.js';
import { LossLedger } from '../../plugin/pipeline/loss-ledger.js';
import { nodeFs } from '../../plugin/pipeline/spool-fs.js';

test('keyPrefixOf: the prefix of an entry key', (t) => {
  t.is(keyPrefixOf(Buffer.from('audit:entry:01a20d28-919e-7687-b322-9d16dfdc55a8')), 'audit');
  t.is(keyPrefixOf(Buffer.from('team-a.prod:entry:x')), 'team-a.prod');
  // Lifecycle records are submitted like entries, and lost like them.
  t.is(keyPrefixOf(Buffer.from('audit:lifecycle:01a20d28-919e-7687-b322-9d16dfdc55a8')), 'audit');
});

test('keyPrefixOf: a key that is not an entry key is an error', (t) => {
  for (const key of ['audit:loss:01a20d28-919e-7687-b322-9d16dfdc55a8', 'no-entry-here', ':entry:x', '']) {
    t.throws(() => keyPrefixOf(Buffer.from(key)), { message: /not an audit entry key/ }, key);
  }
});

// Loss records name the numbers of the entries they count (docs/decisions.md #41).
const STREAM = '0b9f2d2e-6c1a-4a3e-9d55-2f7f3c1e8a01';
const OTHER = '7c0e6a52-3d1b-4f7a-8e44-1a2b3c4d5e6f';

function windowOf(numbers: Array<number | null>, stream = STREAM): LossWindow {
  let w: LossWindow | undefined;
  for (const n of numbers) w = noteLoss(w, 'p', 'node-a', 1_000, 'spool: ENOSPC', n === null ? null : { number: n, stream });
  return w!;
}

const validate = new Ajv2020({ allErrors: true }).compile(JSON.parse(readFileSync(createRequire(import.meta.url).resolve('../../../schemas/loss-record.v1.json'), 'utf8')) as object);

/** The record's JSON, checked against schemas/loss-record.v1.json. */
function recordOf(w: LossWindow) {
  const json = JSON.parse(encodeLossRecord(w, Date.parse('2026-12-02T10:00:00Z')).value.toString()) as { entries_lost: number; sequence: unknown };
  if (!validate(json)) throw new Error(`not a loss record of schemas/loss-record.v1.json: ${JSON.stringify(validate.errors)}`);
  return json;
}

test('noteLoss: numbers in any order merge into ranges; the record names them', (t) => {
  const w = windowOf([5, 6, 7, 3, 9, 8, 4, 20, 21, 12]);
  t.deepEqual(w.sequence, { stream: STREAM, ranges: [[3, 9], [12, 12], [20, 21]], truncated: false });
  t.deepEqual(recordOf(w), { ...recordOf(w), entries_lost: 10, sequence: { stream: STREAM, ranges: [[3, 9], [12, 12], [20, 21]], ranges_truncated: false, unlisted: 0 } });
});

test('noteLoss: beyond MAX_LOSS_RANGES the numbers are counted, not listed, and the record says so', (t) => {
  const odd = Array.from({ length: MAX_LOSS_RANGES + 8 }, (_, i) => 2 * i + 1);
  const w = windowOf(odd);
  t.is(w.count, MAX_LOSS_RANGES + 8);
  t.is(w.sequence!.ranges.length, MAX_LOSS_RANGES);
  t.true(w.sequence!.truncated);
  // A number next to a kept range still joins it after the cap.
  noteLoss(w, 'p', 'node-a', 1_000, 'x', { number: 2, stream: STREAM });
  t.deepEqual(w.sequence!.ranges[0], [1, 3]);
  t.like(recordOf(w).sequence as object, { ranges_truncated: true, unlisted: 8 });
});

test('noteLoss: entries without a number, or of another stream, are counted as unlisted', (t) => {
  const w = windowOf([null, 4, 5, null]);
  noteLoss(w, 'p', 'node-a', 1_000, 'x', { number: 6, stream: OTHER });
  t.deepEqual(recordOf(w).sequence, { stream: STREAM, ranges: [[4, 5]], ranges_truncated: false, unlisted: 3 });
  t.is(recordOf(windowOf([null, null])).sequence, null);
});

test('parseLossWindows: a ledger without numbers (written before #41) is valid; numbers that do not hold together are dropped', (t) => {
  const old = '[{"prefix":"p","node":"node-a","from":1000,"to":2000,"count":3,"reasons":["spool: ENOSPC"]}]';
  const [w] = parseLossWindows(old);
  t.like(w, { prefix: 'p', count: 3 });
  t.is(w!.sequence, undefined);
  t.like(recordOf(w!), { entries_lost: 3, sequence: null });
  const bad = (sequence: unknown, count = 3) => parseLossWindows(JSON.stringify([{ prefix: 'p', node: 'n', from: 1, to: 2, count, reasons: [], sequence }]))[0]!.sequence;
  t.is(bad({ stream: STREAM, ranges: [[1, 4]], truncated: false }), undefined, 'more numbers than counted');
  t.is(bad({ stream: STREAM, ranges: [[3, 3], [1, 1]], truncated: false }), undefined, 'not sorted');
  t.is(bad({ stream: STREAM, ranges: [[1, 1], [2, 2]], truncated: false }), undefined, 'adjacent');
  t.is(bad({ stream: STREAM, ranges: [[0, 1]], truncated: false }), undefined, 'zero');
  t.is(bad({ stream: 'x', ranges: [[1, 1]], truncated: false }), undefined, 'not a stream');
  t.deepEqual(bad({ stream: STREAM, ranges: [[1, 1], [3, 4]], truncated: true }), { stream: STREAM, ranges: [[1, 1], [3, 4]], truncated: true });
});

test('LossLedger: reads a ledger of the previous format (bytes as written before #41) and keeps ranges across a restart', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kia-ledger-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // Two 16 KiB slots; generation 1 in slot 1: "KIA2" | generation u64 | length u32 | crc32 | body.
  const body = Buffer.from('[{"prefix":"p","node":"node-a","from":1000,"to":2000,"count":3,"reasons":["spool: ENOSPC; immudb: down"]}]');
  const file = Buffer.alloc(32 * 1024);
  const slot = Buffer.concat([Buffer.from('KIA2'), Buffer.from('0000000000000001', 'hex'), Buffer.alloc(4), Buffer.alloc(4), body]);
  slot.writeUInt32BE(body.length, 12);
  slot.writeUInt32BE(crc32(body, crc32(slot.subarray(4, 16))), 16);
  slot.copy(file, 16 * 1024);
  writeFileSync(join(dir, 'losses'), file);
  const old = new LossLedger(nodeFs, dir);
  t.is(old.damaged, undefined);
  const [w] = parseLossWindows(old.text);
  t.like(w, { count: 3, node: 'node-a' });
  t.is(w!.sequence, undefined);
  // Saved with numbers, read back after a restart.
  noteLoss(w, 'p', 'node-a', 3000, 'x', { number: 41, stream: STREAM });
  noteLoss(w, 'p', 'node-a', 3001, 'x', { number: 42, stream: STREAM });
  old.save(JSON.stringify([w]));
  old.close();
  const again = new LossLedger(nodeFs, dir);
  t.deepEqual(parseLossWindows(again.text)[0]!.sequence, { stream: STREAM, ranges: [[41, 42]], truncated: false });
  t.like(recordOf(parseLossWindows(again.text)[0]!).sequence as object, { ranges: [[41, 42]], unlisted: 3 });
  again.close();
});
