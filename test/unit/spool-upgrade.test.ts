// A spool written by v1 (records without sequence numbers, ack.json) is read on upgrade: its
// waiting records come back first, new records follow in the v2 format, and acks move across.
import test from 'ava';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { Spool } from '../../plugin/pipeline/spool.js';
import { createLogger } from '../../plugin/log.js';

/** A v1 record: magic 0xa0d1 | len u32 | crc32 (time+payload) | time u64 | key len u16 | key | value */
function v1Record(key: string, value: string, at: number): Buffer {
  const k = Buffer.from(key);
  const v = Buffer.from(value);
  const len = 2 + k.length + v.length;
  const buf = Buffer.alloc(18 + len);
  buf.writeUInt16BE(0xa0d1, 0);
  buf.writeUInt32BE(len, 2);
  buf.writeBigUInt64BE(BigInt(at), 10);
  buf.writeUInt16BE(k.length, 18);
  k.copy(buf, 20);
  v.copy(buf, 20 + k.length);
  buf.writeUInt32BE(crc32(buf.subarray(10)), 6);
  return buf;
}

test('a v1 spool is read on upgrade; new records follow; acks and reopen work across formats', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kia-spool-v1-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(dir, { recursive: true });
  const recs = Array.from({ length: 6 }, (_, i) => v1Record(`k:entry:old${i}`, JSON.stringify({ i }), 1_700_000_000_000 + i));
  writeFileSync(join(dir, 'seg-0000000003.log'), Buffer.concat(recs));
  // v1 acknowledged the first two records.
  writeFileSync(join(dir, 'ack.json'), JSON.stringify({ segment: 3, offset: recs[0]!.length + recs[1]!.length }));
  const lines: string[] = [];
  const open = () => Spool.open({ dir, maxBytes: 1 << 30, fsync: 'group', logger: createLogger('t', (l) => lines.push(l)) });
  const s = open();
  t.is(s.recovery.pending, 4);
  t.is(s.recovery.missing, 0);
  const old = s.read(undefined, 100);
  t.deepEqual(old.map((r) => r.key.toString()), ['k:entry:old2', 'k:entry:old3', 'k:entry:old4', 'k:entry:old5']);
  t.is(old[0]!.at, 1_700_000_000_002);
  t.is(old[0]!.pos.seq, undefined);
  const p1 = await s.append(Buffer.from('k:entry:new0'), Buffer.from('{}'));
  const p2 = await s.append(Buffer.from('k:entry:new1'), Buffer.from('{}'));
  t.is(p2.seq, p1.seq! + 1);
  t.false(existsSync(join(dir, 'ack.json')), 'the v1 pointer is replaced by the binary mark');
  // Prove the v1 records and the first new one.
  s.ack(old[3]!.pos, 4);
  s.ack(p1, 1);
  t.is(s.pendingRecords, 1);
  await s.close();
  const again = open();
  t.deepEqual(again.read(undefined, 100).map((r) => r.key.toString()), ['k:entry:new1']);
  t.is(again.recovery.missing, 0);
  t.false(readdirSync(dir).includes('seg-0000000003.log'), 'the fully acknowledged v1 segment is gone');
  t.false(lines.some((l) => / error /.test(l)), lines.join('\n'));
  await again.close();
});
