// Entries counted as lost but not yet recorded in immudb survive a restart here: a small file
// in the spool directory, created at open and then only overwritten in place, so it can still
// be written when the disk is full (not when it fails with EIO or EACCES: then the count lives
// in memory and in the error log only). Two slots written alternately (two-slot.ts): a save torn
// by a crash, or damaged bytes in one slot, leave the previous save readable. When neither slot
// is valid the ledger says so (`damaged`, logged at error level by the spool): losses it held
// may not have been recorded, and nobody can count them any more.
//
// Layout: two slots of 16 KiB (two-slot.ts), each body the text (UTF-8 JSON).
// Read on upgrade: the single-copy ledger of 0.3 (length u32 | crc32 u32 | text, 16 KiB).
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import type { SpoolFs } from './spool-fs.js';
import { readSlots, SLOT_HEADER, TwoSlotFile } from './two-slot.js';

const SLOT = 16 * 1024;

/** The text of a ledger of the single-copy format; undefined when it is not one. */
function legacyText(buf: Buffer): string | undefined {
  if (buf.length === SLOT && buf.every((b) => b === 0)) return ''; // allocated, never saved
  const len = buf.length >= 8 ? buf.readUInt32BE(0) : 0;
  if (len > 0 && 8 + len <= Math.min(buf.length, SLOT) && crc32(buf.subarray(8, 8 + len)) === buf.readUInt32BE(4)) return buf.subarray(8, 8 + len).toString('utf8');
  return undefined;
}

export class LossLedger {
  private file: TwoSlotFile | undefined;
  /** What the previous run left (empty when nothing). */
  readonly text: string;
  /** Why the ledger of the previous run could not be read (neither copy valid, or an I/O error). */
  readonly damaged: string | undefined;

  constructor(fs: SpoolFs, dir: string) {
    const path = join(dir, 'losses');
    let text = '';
    let damaged: string | undefined;
    let read: ReturnType<typeof readSlots> = { kind: 'absent' };
    try {
      read = readSlots(fs, path, SLOT);
    } catch (e) {
      damaged = `it cannot be read (${(e as Error).message})`;
      read = { kind: 'invalid', bytes: Buffer.alloc(0) };
    }
    if (read.kind === 'ok') text = read.body.toString('utf8');
    else if (read.kind === 'invalid' && !damaged) {
      const old = legacyText(read.bytes);
      if (old === undefined) damaged = `neither of its two copies is valid (${read.bytes.length} bytes: a torn write or damaged bytes)`;
      else text = old;
    }
    try {
      // Its blocks are allocated once, at creation, while there is room.
      this.file = TwoSlotFile.open(fs, path, SLOT, read, Buffer.alloc(0));
    } catch {
      this.file = undefined;
    }
    this.text = text;
    this.damaged = damaged;
  }

  /** Saves the text durably (fsync); throws when it cannot (no file, I/O error, text too long). */
  save(text: string) {
    if (!this.file) throw new Error('the loss ledger could not be created');
    const body = Buffer.from(text, 'utf8');
    if (SLOT_HEADER + body.length > SLOT) throw new Error('the loss ledger is full');
    this.file.write(body);
    this.file.sync();
  }

  close() {
    this.file?.close();
    this.file = undefined;
  }
}
