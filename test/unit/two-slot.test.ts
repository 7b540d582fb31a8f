// The loss ledger and the spool's marks (ack, head) keep two copies written alternately
// (plugin/pipeline/two-slot.ts): a write torn by a crash, or damaged bytes in the newest copy,
// fall back to the copy before it; when neither copy is valid the loss ledger says so at error
// level and in /status (`loss_ledger_damaged`), never reading silently as empty.
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { LossLedger } from '../../plugin/pipeline/loss-ledger.js';
import { Spool } from '../../plugin/pipeline/spool.js';
import { nodeFs, type SpoolFs } from '../../plugin/pipeline/spool-fs.js';
import { AuditPipeline } from '../../plugin/pipeline/audit-pipeline.js';
import { createLogger } from '../../plugin/log.js';
import type { AuditWriter } from '../../plugin/store/audit-writer.js';

function tempDir(t: import('ava').ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'kia-two-slot-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** node:fs whose in-place writes, once armed, write only their first `keep` bytes and then "crash". */
function tearingFs() {
  const state = { keep: -1 };
  const fs: SpoolFs = {
    ...nodeFs,
    writeSync(fd, data, position) {
      if (state.keep < 0) return nodeFs.writeSync(fd, data, position);
      nodeFs.writeSync(fd, data.subarray(0, state.keep), position);
      throw new Error('crashed in the middle of the write');
    },
    async write(fd, data, position) {
      if (state.keep < 0) return nodeFs.write(fd, data, position);
      nodeFs.writeSync(fd, data.subarray(0, state.keep), position);
      throw new Error('crashed in the middle of the write');
    },
  };
  return { fs, tear: (keep: number) => (state.keep = keep) };
}

const windows = (n: number) => JSON.stringify([{ prefix: 'p', node: 'n', from: 1, to: 2, count: n, reasons: ['spool: ENOSPC'] }]);

/** A loss ledger saved twice (counts 3, then 7) and closed; its file and bytes, to damage. */
function twoCopies(dir: string): { file: string; buf: Buffer } {
  const l = new LossLedger(nodeFs, dir);
  l.save(windows(3));
  l.save(windows(7));
  l.close();
  const file = join(dir, 'losses');
  return { file, buf: readFileSync(file) };
}

const quiet = () => createLogger('t', () => undefined);
const openSpool = (dir: string, fs?: SpoolFs) => Spool.open({ dir, maxBytes: 1 << 30, fsync: 'group', logger: quiet(), ...(fs ? { fs } : {}) });

test('loss ledger: a save torn by a crash leaves the previous save readable', (t) => {
  const dir = tempDir(t);
  const { fs, tear } = tearingFs();
  const l = new LossLedger(fs, dir);
  l.save(windows(3));
  l.save(windows(5));
  tear(12);
  t.throws(() => l.save(windows(9) + ' '.repeat(40)));
  const again = new LossLedger(nodeFs, dir);
  t.is(again.text, windows(5));
  t.is(again.damaged, undefined);
  again.close();
});

test('loss ledger: flipped bytes in the newest copy fall back to the one before', (t) => {
  const dir = tempDir(t);
  const { file, buf } = twoCopies(dir);
  const at = buf.indexOf('"count":7');
  t.true(at > 0);
  buf[at + 8] = '8'.charCodeAt(0);
  writeFileSync(file, buf);
  const again = new LossLedger(nodeFs, dir);
  t.is(again.text, windows(3));
  again.close();
});

test('loss ledger: neither copy valid is an error line and a /status figure, not an empty ledger', async (t) => {
  const dir = tempDir(t);
  const { file, buf } = twoCopies(dir);
  for (const n of [3, 7]) buf[buf.indexOf(`"count":${n}`) + 8] = '9'.charCodeAt(0);
  writeFileSync(file, buf);
  const lines: string[] = [];
  const logger = createLogger('t', (line) => lines.push(line));
  const spool = Spool.open({ dir, maxBytes: 1 << 30, fsync: 'group', logger });
  t.true(lines.some((line) => / error t: .*loss ledger .*cannot be read/.test(line)), lines.join('\n'));
  const writer = { lastTxId: 0, halted: undefined, write: async () => { throw new Error('down'); }, close: async () => undefined };
  const p = new AuditPipeline({ max_batch_size: 4, max_coalescing_delay: 0.01, max_entries: 4, initial_retry_delay: 0.01, max_retry_delay: 0.05, max_bytes: null, concurrency_limit: 1, max_retry_time: null }, spool, writer as unknown as AuditWriter, logger);
  t.is(p.snapshot().loss_ledger_damaged, 1);
  await p.shutdown(100);
});

const rec = (i: number) => ({ key: Buffer.from(`k:entry:${i}`), value: Buffer.from(JSON.stringify({ i })) });

test('spool: an ack write torn by a crash falls back to the previous ack, not to the start', async (t) => {
  const dir = tempDir(t);
  const { fs, tear } = tearingFs();
  const s = openSpool(dir, fs);
  const pos = [];
  for (let i = 0; i < 10; i++) pos.push(await s.append(rec(i).key, rec(i).value));
  s.ack(pos[3]!, 4);
  s.ack(pos[5]!, 2);
  tear(22);
  s.ack(pos[8]!, 3); // logged, not thrown: a stale ack only replays proven entries
  // A crash: nothing closed.
  const again = openSpool(dir);
  t.deepEqual(again.read(undefined, 100).map((r) => r.key.toString()), ['k:entry:6', 'k:entry:7', 'k:entry:8', 'k:entry:9']);
  t.is(again.recovery.missing, 0);
  await again.close();
});

test('spool: a damaged head mark falls back to its previous copy; missing records are still counted', async (t) => {
  const dir = tempDir(t);
  const s = openSpool(dir);
  for (let i = 0; i < 6; i++) await s.append(rec(i).key, rec(i).value);
  // Let the newest head copy be torn: the previous copy (5 records) still shows record 6 was written.
  const head = join(dir, 'head');
  const buf = readFileSync(head);
  const slots = buf.length >= 1024 ? [0, 512] : [0];
  const newest = slots.map((at) => ({ at, gen: buf.length >= 1024 ? Number(buf.readBigUInt64BE(at + 4)) : 0 })).sort((a, b) => b.gen - a.gen)[0]!;
  buf[newest.at + 20] = buf[newest.at + 20]! ^ 0xff;
  writeFileSync(head, buf);
  // The last two records' bytes are lost too (a truncated segment, on a record boundary).
  const size = (i: number) => 26 + 2 + rec(i).key.length + rec(i).value.length;
  const segFile = join(dir, 'seg-0000000001.log');
  const seg = readFileSync(segFile);
  writeFileSync(segFile, seg.subarray(0, seg.length - size(4) - size(5)));
  const again = openSpool(dir);
  t.is(again.recovery.pending, 4);
  // The previous copy names record 5: at least it is counted (record 6 only the torn copy knew of).
  t.true(again.recovery.missing >= 1, `${again.recovery.missing} missing`);
  await again.close();
});

test('upgrade: the single-copy ack mark and loss ledger of 0.3 are read, then written as two copies', async (t) => {
  const dir = tempDir(t);
  const s = openSpool(dir);
  const pos = [];
  for (let i = 0; i < 6; i++) pos.push(await s.append(rec(i).key, rec(i).value));
  await s.close();
  // 0.3's formats: mark = magic "KIAM" | segment u32 | offset u64 | seq u64 | crc32; ledger = length | crc32 | text in 16 KiB.
  const mark = Buffer.alloc(28);
  mark.writeUInt32BE(0x4b49414d, 0);
  mark.writeUInt32BE(pos[3]!.segment, 4);
  mark.writeBigUInt64BE(BigInt(pos[3]!.offset), 8);
  mark.writeBigUInt64BE(BigInt(pos[3]!.seq!), 16);
  mark.writeUInt32BE(crc32(mark.subarray(0, 24)), 24);
  writeFileSync(join(dir, 'ack'), mark);
  const text = Buffer.from(windows(4));
  const ledger = Buffer.alloc(16 * 1024);
  ledger.writeUInt32BE(text.length, 0);
  ledger.writeUInt32BE(crc32(text), 4);
  text.copy(ledger, 8);
  writeFileSync(join(dir, 'losses'), ledger);
  const again = openSpool(dir);
  t.deepEqual(again.read(undefined, 100).map((r) => r.key.toString()), ['k:entry:4', 'k:entry:5']);
  t.is(again.losses.text, windows(4));
  again.losses.save(windows(6));
  again.ack(pos[4]!, 1);
  await again.close();
  const third = openSpool(dir);
  t.deepEqual(third.read(undefined, 100).map((r) => r.key.toString()), ['k:entry:5']);
  t.is(third.losses.text, windows(6));
  await third.close();
});

test('a copy whose fsync failed never makes the next write overwrite the last durable copy', async (t) => {
  // A failed fsync may leave its copy off the disk: the copy a caller was last told is durable
  // is the only one a power loss is sure to keep, so the next writes (and their retries) go to
  // the other slot until a sync succeeds.
  const dir = tempDir(t);
  const file = join(dir, 'mark');
  let failSync = false;
  const fs: SpoolFs = {
    ...nodeFs,
    fsyncSync: (fd) => {
      if (failSync) throw new Error('EIO: fsync failed');
      nodeFs.fsyncSync(fd);
    },
    fsync: async (fd) => {
      if (failSync) throw new Error('EIO: fsync failed');
      return nodeFs.fsync(fd);
    },
  };
  const { TwoSlotFile, readSlots } = await import('../../plugin/pipeline/two-slot.js');
  const f = TwoSlotFile.open(fs, file, 64, { kind: 'absent' }, Buffer.from('one'));
  f.write(Buffer.from('two'));
  f.sync();
  const durable = readSlots(nodeFs, file, 64);
  t.is(durable.kind === 'ok' && durable.body.toString(), 'two');
  const slotOf = (g: number) => readFileSync(file).subarray((g % 2) * 64, (g % 2) * 64 + 64);
  const durableGen = durable.kind === 'ok' ? durable.generation : -1;
  const durableBytes = Buffer.from(slotOf(durableGen));
  failSync = true;
  f.write(Buffer.from('three'));
  t.throws(() => f.sync());
  await t.throwsAsync(() => f.syncAsync());
  f.write(Buffer.from('four'));
  await f.writeAsync(Buffer.from('five'));
  t.deepEqual(slotOf(durableGen), durableBytes, 'the last durable copy is untouched');
  t.is((readSlots(nodeFs, file, 64) as { body: Buffer }).body.toString(), 'five');
  failSync = false;
  await f.syncAsync();
  f.write(Buffer.from('six'));
  const after = readSlots(nodeFs, file, 64);
  t.is(after.kind === 'ok' && after.body.toString(), 'six');
  // Once 'five' was durable, 'six' went to the other slot: 'five' is still there to fall back to.
  const other = readFileSync(file);
  t.true(other.includes(Buffer.from('five')));
  f.close();
});
