// A small record that survives a torn write or damaged bytes: two slots written alternately,
// like a double-buffered superblock. Each write goes to the slot NOT holding the newest valid
// copy, with the next generation number and a CRC; a read takes the valid slot with the higher
// generation. A write torn by a crash (or a slot whose bytes were damaged) therefore falls back
// to the copy before it, never to nothing. The file is allocated whole when created and then
// only overwritten in place (no new blocks: it can be written on a full disk).
//
// Slot: magic u32 "KIA2" | generation u64 | length u32 | crc32 u32 (of generation, length, body) | body,
// zero-padded to the slot size. Slot i starts at i * slotBytes; generation g lives in slot g % 2.
import { crc32 } from 'node:zlib';
import type { SpoolFs } from './spool-fs.js';

const SLOT_MAGIC = 0x4b494132; // "KIA2"
export const SLOT_HEADER = 20;

export type SlotRead =
  | { kind: 'absent' }
  /** `otherDamaged`: the other slot holds bytes that are not a valid copy (torn by a crash during a write, or damaged). */
  | { kind: 'ok'; body: Buffer; generation: number; otherDamaged: boolean }
  /** The file is there but neither slot holds a valid copy; `bytes` is what was read (an older format?). */
  | { kind: 'invalid'; bytes: Buffer };

export function encodeSlot(body: Buffer, generation: number): Buffer {
  const b = Buffer.alloc(SLOT_HEADER + body.length);
  b.writeUInt32BE(SLOT_MAGIC, 0);
  b.writeBigUInt64BE(BigInt(generation), 4);
  b.writeUInt32BE(body.length, 12);
  body.copy(b, SLOT_HEADER);
  b.writeUInt32BE(crc32(b.subarray(SLOT_HEADER), crc32(b.subarray(4, 16))), 16);
  return b;
}

function decodeSlot(buf: Buffer, at: number, slotBytes: number): { body: Buffer; generation: number } | undefined {
  if (buf.length < at + SLOT_HEADER || buf.readUInt32BE(at) !== SLOT_MAGIC) return undefined;
  const len = buf.readUInt32BE(at + 12);
  const end = at + SLOT_HEADER + len;
  if (SLOT_HEADER + len > slotBytes || end > buf.length) return undefined;
  if (crc32(buf.subarray(at + SLOT_HEADER, end), crc32(buf.subarray(at + 4, at + 16))) !== buf.readUInt32BE(at + 16)) return undefined;
  const generation = Number(buf.readBigUInt64BE(at + 4));
  // A copy in the wrong slot is not one this module wrote.
  if (generation % 2 !== at / slotBytes) return undefined;
  return { body: Buffer.from(buf.subarray(at + SLOT_HEADER, end)), generation };
}

/** Reads both slots; the valid one with the higher generation wins. */
export function readSlots(fs: Pick<SpoolFs, 'read'>, path: string, slotBytes: number): SlotRead {
  let buf: Buffer;
  try {
    buf = fs.read(path, 0, 2 * slotBytes);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'absent' };
    throw e;
  }
  const slots = [decodeSlot(buf, 0, slotBytes), decodeSlot(buf, slotBytes, slotBytes)];
  const copies = slots.filter((c) => c !== undefined);
  if (!copies.length) return { kind: 'invalid', bytes: buf };
  const written = (i: number) => buf.subarray(i * slotBytes, (i + 1) * slotBytes).some((b) => b !== 0);
  const otherDamaged = slots.some((c, i) => c === undefined && written(i));
  return { kind: 'ok', ...copies.reduce((a, b) => (b.generation > a.generation ? b : a)), otherDamaged };
}

export class TwoSlotFile {
  private constructor(
    private readonly fs: SpoolFs,
    private fd: number,
    private readonly slotBytes: number,
    /** The newest generation written (or read). */
    private generation: number,
    /** The newest generation a sync made durable (or read at open). */
    private durable: number = generation,
  ) {}

  /**
   * Set when a sync failed, until one succeeds: the copies written since may not be on the disk,
   * so the slot of the last durable copy is not overwritten meanwhile (writes go to the other).
   */
  private syncFailed = false;

  /**
   * Opens `path` for writes. An existing file is overwritten in place from `generation` on (the
   * newest one read; 0 when none was valid); a missing one is created whole under another name
   * and renamed, holding `body` as generation 1.
   */
  static open(fs: SpoolFs, path: string, slotBytes: number, existing: SlotRead, body: Buffer): TwoSlotFile {
    if (existing.kind !== 'absent') {
      try {
        return new TwoSlotFile(fs, fs.open(path, 'r+'), slotBytes, existing.kind === 'ok' ? existing.generation : 0);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      }
    }
    const tmp = `${path}.tmp`;
    const whole = Buffer.alloc(2 * slotBytes);
    encodeSlot(body, 1).copy(whole, slotBytes);
    const fd0 = fs.open(tmp, 'w', 0o600);
    try {
      fs.writeSync(fd0, whole, 0);
      fs.fsyncSync(fd0);
    } finally {
      fs.close(fd0);
    }
    fs.rename(tmp, path);
    return new TwoSlotFile(fs, fs.open(path, 'r+'), slotBytes, 1);
  }

  /** Where and what the next generation's copy is. */
  private next(body: Buffer): { at: number; bytes: Buffer; generation: number } {
    if (SLOT_HEADER + body.length > this.slotBytes) throw new Error(`${body.length} bytes do not fit a slot of ${this.slotBytes}`);
    if (this.fd < 0) throw new Error('the file is closed');
    let generation = this.generation + 1;
    if (this.syncFailed && generation % 2 === this.durable % 2) generation++;
    return { at: (generation % 2) * this.slotBytes, bytes: encodeSlot(body, generation), generation };
  }

  /**
   * Writes the next copy in place (no fsync: see sync()). The generation moves on only once the
   * write succeeded: a failed (perhaps torn) one is retried into the same slot, never into the
   * one holding the last good copy; after a failed sync, never over the last durable copy.
   */
  write(body: Buffer): void {
    const { at, bytes, generation } = this.next(body);
    this.fs.writeSync(this.fd, bytes, at);
    this.generation = generation;
  }

  /**
   * The same, off the event loop. Callers must not have two in flight (they could land out of
   * order, or in one slot): the spool chains them.
   */
  async writeAsync(body: Buffer): Promise<void> {
    const { at, bytes, generation } = this.next(body);
    await this.fs.write(this.fd, bytes, at);
    this.generation = generation;
  }

  sync(): void {
    const written = this.generation;
    try {
      this.fs.fsyncSync(this.fd);
    } catch (e) {
      this.syncFailed = true;
      throw e;
    }
    this.synced(written);
  }

  async syncAsync(): Promise<void> {
    const written = this.generation;
    try {
      await this.fs.fsync(this.fd);
    } catch (e) {
      this.syncFailed = true;
      throw e;
    }
    this.synced(written);
  }

  private synced(generation: number) {
    if (generation < this.durable) return;
    this.durable = generation;
    this.syncFailed = false;
  }

  close(): void {
    if (this.fd >= 0) this.fs.close(this.fd);
    this.fd = -1;
  }
}
