// Damage done to a stopped spool is found on open and reported with counts (issue 13, finding
// 7): the ack pointer moved forward, a segment truncated on a record boundary, a segment
// deleted, a damaged byte. Records carry sequence numbers and the spool keeps its high-water
// mark, so every missing record between the acknowledged position and the last durable one
// is counted.
import test from 'ava';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeMark, encodeMark, Spool } from '../../plugin/pipeline/spool.js';
import { nodeFs } from '../../plugin/pipeline/spool-fs.js';
import { encodeSlot, readSlots } from '../../plugin/pipeline/two-slot.js';
import { createLogger } from '../../plugin/log.js';

function setup(t: import('ava').ExecutionContext, over: Partial<Parameters<typeof Spool.open>[0]> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'kia-spool-damage-'));
  const lines: string[] = [];
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const open = () => Spool.open({ dir, maxBytes: 64 * 1024 * 1024, fsync: 'group', logger: createLogger('test', (l) => lines.push(l)), ...over });
  return { dir, lines, open };
}

const rec = (i: number) => ({ key: Buffer.from(`k:entry:${i}`), value: Buffer.from(JSON.stringify({ i, pad: 'x'.repeat(20) })) });
const segs = (dir: string) => readdirSync(dir).filter((n) => n.startsWith('seg-')).sort();

async function fill(s: Spool, from: number, n: number) {
  const out = [];
  for (let i = from; i < from + n; i++) out.push(await s.append(rec(i).key, rec(i).value));
  return out;
}

test('records past a truncated segment end (on a record boundary) are counted missing', async (t) => {
  const { dir, lines, open } = setup(t);
  const s = open();
  await fill(s, 0, 10);
  await s.close();
  const file = join(dir, segs(dir).at(-1)!);
  // The first 7 records' bytes: cut exactly after record 7.
  const again0 = open();
  const seventh = again0.read(undefined, 7).at(-1)!.pos.offset;
  await again0.close();
  truncateSync(file, seventh);
  const again = open();
  t.is(again.recovery.pending, 7);
  t.is(again.recovery.missing, 3);
  t.true(lines.some((l) => / error .*3 record\(s\) missing/.test(l)), lines.join('\n'));
  await again.close();
});

test('a deleted segment in the middle is counted missing; the records after it survive', async (t) => {
  const { dir, lines, open } = setup(t, { segmentBytes: 200 });
  const s = open();
  await fill(s, 0, 12);
  await s.close();
  const names = segs(dir);
  t.true(names.length >= 3, names.join());
  const victim = join(dir, names[1]!);
  const lost = (() => {
    const probe = open();
    const all = probe.read(undefined, 100);
    const seg = Number(/seg-(\d+)/.exec(names[1]!)![1]);
    const n = all.filter((r) => r.pos.segment === seg).length;
    void probe.close();
    return n;
  })();
  await new Promise((r) => setTimeout(r, 20));
  unlinkSync(victim);
  const again = open();
  t.is(again.recovery.missing, lost);
  t.is(again.recovery.pending, 12 - lost);
  t.true(lines.some((l) => new RegExp(` error .*${lost} record\\(s\\) missing`).test(l)), lines.join('\n'));
  await again.close();
});

test('the last segment deleted: its records are counted missing', async (t) => {
  const { dir, open } = setup(t, { segmentBytes: 200 });
  const s = open();
  await fill(s, 0, 12);
  await s.close();
  const names = segs(dir).filter((n) => statSync(join(dir, n)).size > 0);
  const probe = open();
  const seg = Number(/seg-(\d+)/.exec(names.at(-1)!)![1]);
  const lost = probe.read(undefined, 100).filter((r) => r.pos.segment === seg).length;
  await probe.close();
  unlinkSync(join(dir, names.at(-1)!));
  const again = open();
  t.is(again.recovery.missing, lost);
  await again.close();
});

test('the ack pointer moved forward: the records skipped are counted missing', async (t) => {
  const { dir, lines, open } = setup(t);
  const s = open();
  const pos = await fill(s, 0, 10);
  s.ack(pos[1]!, 2);
  await s.close();
  // Forge the pointer: the ack as if record 5 had been proven.
  const probe = open();
  const fifth = probe.read(undefined, 100)[3]!.pos;
  await probe.close();
  const ackFiles = readdirSync(dir).filter((n) => n.startsWith('ack'));
  t.true(ackFiles.length > 0);
  moveAck(dir, fifth);
  const again = open();
  t.is(again.recovery.pending, 4);
  t.is(again.recovery.missing, 4);
  t.true(lines.some((l) => / error .*4 record\(s\) missing/.test(l)), lines.join('\n'));
  await again.close();
});

test('a flipped byte: the damaged record is counted missing and reported', async (t) => {
  const { dir, open } = setup(t);
  const s = open();
  await fill(s, 0, 10);
  await s.close();
  const file = join(dir, segs(dir).at(-1)!);
  const buf = readFileSync(file);
  buf[150] = buf[150]! ^ 0xff;
  writeFileSync(file, buf);
  const again = open();
  t.is(again.recovery.pending, 9);
  t.is(again.recovery.missing, 1);
  t.is(again.recovery.damagedRegions, 1);
  await again.close();
});

test('a clean spool reports nothing missing', async (t) => {
  const { lines, open } = setup(t, { segmentBytes: 300 });
  const s = open();
  const pos = await fill(s, 0, 20);
  s.ack(pos[9]!, 10);
  await s.close();
  const again = open();
  t.is(again.recovery.pending, 10);
  t.is(again.recovery.missing, 0);
  t.false(lines.some((l) => / error /.test(l)), lines.join('\n'));
  await again.close();
});

/** Rewrites the ack pointer (either format) to `pos`, keeping any sequence number it holds. */
function moveAck(dir: string, pos: { segment: number; offset: number }) {
  const json = join(dir, 'ack.json');
  try {
    const a = JSON.parse(readFileSync(json, 'utf8'));
    writeFileSync(json, JSON.stringify({ ...a, ...pos }));
    return;
  } catch {
    // Not the JSON form.
  }
  const file = join(dir, 'ack');
  // Two-slot mark (two-slot.ts): a careful edit, not a torn write: the next generation, valid.
  const read = readSlots(nodeFs, file, 512);
  if (read.kind !== 'ok') throw new Error('no valid ack mark');
  const mark = decodeMark(read.body)!;
  const buf = readFileSync(file);
  const gen = read.generation + 1;
  encodeSlot(encodeMark({ ...mark, segment: pos.segment, offset: pos.offset }), gen).copy(buf, (gen % 2) * 512);
  writeFileSync(file, buf);
}
