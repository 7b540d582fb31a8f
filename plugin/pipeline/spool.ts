// The durable spool: an append-only log of audit records on local disk. An entry is appended
// (and, with fsync 'group', fsynced: one fsync covers every record written together) before the
// log handler returns, and leaves the spool only once immudb has proven the transaction holding
// it (ack). Segment files rotate and are deleted when fully acknowledged. Every record carries a
// magic number and a CRC32, so a torn tail or a damaged region is found on open, reported with
// its size, and skipped without blocking the records after it.
//
// Record: magic u16 | payload length u32 | crc32 u32 (of time+payload) | time u64 ms | payload
// Payload: key length u16 | key | value
import {
  closeSync, existsSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readdirSync, readFileSync, readSync,
  renameSync, statSync, unlinkSync, writeFileSync, fsync, write,
} from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import type { Logger } from '../log.js';
import { ownedKeyValue } from '../capture/owned-buffers.js';

const MAGIC = 0xa0d1;
const HEADER = 18;
const MAX_PAYLOAD = 64 * 1024 * 1024;
const SEGMENT_RE = /^seg-(\d{10})\.log$/;

export interface SpoolPosition {
  segment: number;
  /** Byte offset just after the record. */
  offset: number;
}

export interface SpooledRecord {
  key: Buffer;
  value: Buffer;
  /** When the record was appended, ms since epoch. */
  at: number;
  pos: SpoolPosition;
}

export interface SpoolOptions {
  dir: string;
  maxBytes: number;
  fsync: 'group' | 'off';
  segmentBytes?: number;
  logger: Logger;
}

export interface SpoolRecovery {
  /** Records found waiting on open (not yet proven in immudb). */
  pending: number;
  /** Damaged or torn regions skipped, and their total size in bytes. */
  damagedRegions: number;
  damagedBytes: number;
}

export class SpoolFullError extends Error {
  override readonly name = 'SpoolFullError';
}

export function comparePos(a: SpoolPosition, b: SpoolPosition): number {
  return a.segment - b.segment || a.offset - b.offset;
}

interface Pending {
  buf: Buffer;
  resolve: (pos: SpoolPosition) => void;
  reject: (e: unknown) => void;
  offset: number;
}

/** Scans one segment's bytes; calls onRecord for each valid record, onDamage for skipped bytes. */
function scan(buf: Buffer, from: number, segment: number, onRecord: (r: SpooledRecord) => boolean | void, onDamage?: (at: number, bytes: number) => void): number {
  let off = from;
  let damageStart = -1;
  const endDamage = (at: number) => {
    if (damageStart >= 0) onDamage?.(damageStart, at - damageStart);
    damageStart = -1;
  };
  while (off + HEADER <= buf.length) {
    const len = buf.readUInt32BE(off + 2);
    const ok = buf.readUInt16BE(off) === MAGIC && len >= 2 && len <= MAX_PAYLOAD && off + HEADER + len <= buf.length
      && crc32(buf.subarray(off + 10, off + HEADER + len)) === buf.readUInt32BE(off + 6);
    if (!ok) {
      if (damageStart < 0) damageStart = off;
      off++;
      continue;
    }
    endDamage(off);
    const payload = buf.subarray(off + HEADER, off + HEADER + len);
    const keyLen = payload.readUInt16BE(0);
    const end = off + HEADER + len;
    const rec: SpooledRecord = {
      at: Number(buf.readBigUInt64BE(off + 10)),
      // Copied out of the file buffer: a record read back must not keep the whole read alive.
      ...ownedKeyValue(payload.subarray(2, 2 + keyLen), payload.subarray(2 + keyLen)),
      pos: { segment, offset: end },
    };
    off = end;
    if (onRecord(rec) === false) return off;
  }
  if (off < buf.length) {
    if (damageStart < 0) damageStart = off;
    off = buf.length;
  }
  endDamage(off);
  return off;
}

export class Spool {
  private fd = -1;
  private segment = 0;
  private size = 0;
  /** End of the data known to be written in the current segment. */
  private durableEnd = 0;
  private queue: Pending[] = [];
  private flushing = false;
  private totalBytes = 0;
  private segmentSizes = new Map<number, number>();
  private ackPos: SpoolPosition;
  private closed = false;
  readonly recovery: SpoolRecovery = { pending: 0, damagedRegions: 0, damagedBytes: 0 };
  /** Records appended or recovered and not yet acknowledged. */
  pendingRecords = 0;
  refused = 0;
  /** Group commits done (one write + one fsync each). */
  flushes = 0;

  private constructor(private readonly opts: SpoolOptions) {
    this.ackPos = { segment: 0, offset: 0 };
  }

  /** Opens (creating) the spool directory: lock, recovery scan, new segment for appends. */
  static open(opts: SpoolOptions): Spool {
    const s = new Spool(opts);
    try {
      s.openSync();
    } catch (e) {
      // StartInstance reports this to Kong: say which spool, keep the cause.
      const err = e instanceof Error ? e : new Error(String(e));
      err.message = `the spool in ${opts.dir} cannot be opened: ${err.message}`;
      throw err;
    }
    return s;
  }

  get dir(): string {
    return this.opts.dir;
  }

  private openSync() {
    const { dir } = this.opts;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.lock();
    const ack = join(dir, 'ack.json');
    if (existsSync(ack)) {
      const a = JSON.parse(readFileSync(ack, 'utf8')) as SpoolPosition;
      if (Number.isSafeInteger(a.segment) && Number.isSafeInteger(a.offset)) this.ackPos = a;
    }
    const segments = this.segments();
    for (const seg of segments) {
      const file = this.segPath(seg);
      if (seg < this.ackPos.segment) {
        unlinkSync(file);
        continue;
      }
      const buf = readFileSync(file);
      this.segmentSizes.set(seg, buf.length);
      this.totalBytes += buf.length;
      const from = seg === this.ackPos.segment ? Math.min(this.ackPos.offset, buf.length) : 0;
      let lastGood = from;
      scan(buf, from, seg, (r) => {
        this.recovery.pending++;
        lastGood = r.pos.offset;
      }, (at, bytes) => {
        this.recovery.damagedRegions++;
        this.recovery.damagedBytes += bytes;
        this.opts.logger.error(`spool ${file}: ${bytes} damaged bytes at offset ${at} skipped (torn write or corruption); records in them are lost`);
      });
      // A torn tail is cut off so the file ends on a whole record.
      if (lastGood < buf.length && seg === segments[segments.length - 1]) {
        const fd = openSync(file, 'r+');
        try {
          ftruncateSync(fd, lastGood);
          fsyncSync(fd);
        } finally {
          closeSync(fd);
        }
        this.totalBytes -= buf.length - lastGood;
        this.segmentSizes.set(seg, lastGood);
      }
    }
    this.pendingRecords = this.recovery.pending;
    const last = segments.length ? segments[segments.length - 1]! : 0;
    this.startSegment(Math.max(last + 1, this.ackPos.segment));
    if (this.recovery.pending || this.recovery.damagedRegions) {
      this.opts.logger.warn(`spool ${dir}: ${this.recovery.pending} entries waiting from a previous run` +
        (this.recovery.damagedRegions ? `, ${this.recovery.damagedBytes} bytes in ${this.recovery.damagedRegions} damaged region(s) lost` : ''));
    }
  }

  private lock() {
    const file = join(this.opts.dir, 'LOCK');
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        writeFileSync(file, String(process.pid), { flag: 'wx', mode: 0o600 });
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        const pid = Number(readFileSync(file, 'utf8'));
        let alive = false;
        try {
          if (pid > 0 && pid !== process.pid) {
            process.kill(pid, 0);
            alive = true;
          }
        } catch {
          alive = false;
        }
        if (alive) throw new Error(`it is in use by process ${pid}`);
        unlinkSync(file);
      }
    }
  }

  private segments(): number[] {
    return readdirSync(this.opts.dir)
      .map((n) => SEGMENT_RE.exec(n)?.[1])
      .filter((n): n is string => n !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
  }

  private segPath(seg: number): string {
    return join(this.opts.dir, `seg-${String(seg).padStart(10, '0')}.log`);
  }

  private startSegment(seg: number) {
    if (this.fd >= 0) closeSync(this.fd);
    this.segment = seg;
    this.fd = openSync(this.segPath(seg), 'a', 0o600);
    this.size = statSync(this.segPath(seg)).size;
    this.durableEnd = this.size;
    this.segmentSizes.set(seg, this.size);
  }

  /** Position of the first record not yet acknowledged. */
  get start(): SpoolPosition {
    return this.ackPos;
  }

  get bytes(): number {
    return this.totalBytes;
  }

  /** Appends a record; resolves with its position once written (and fsynced with 'group'). */
  append(key: Buffer, value: Buffer, at = Date.now()): Promise<SpoolPosition> {
    if (this.closed) return Promise.reject(new Error('spool is closed'));
    const len = 2 + key.length + value.length;
    const size = HEADER + len;
    if (this.totalBytes + size > this.opts.maxBytes) {
      this.refused++;
      return Promise.reject(new SpoolFullError(`spool ${this.opts.dir} is full (${this.totalBytes} of ${this.opts.maxBytes} bytes)`));
    }
    const buf = Buffer.allocUnsafe(size);
    buf.writeUInt16BE(MAGIC, 0);
    buf.writeUInt32BE(len, 2);
    buf.writeBigUInt64BE(BigInt(at), 10);
    buf.writeUInt16BE(key.length, HEADER);
    key.copy(buf, HEADER + 2);
    value.copy(buf, HEADER + 2 + key.length);
    buf.writeUInt32BE(crc32(buf.subarray(10)), 6);
    this.totalBytes += size;
    this.pendingRecords++;
    return new Promise((resolve, reject) => {
      this.queue.push({ buf, resolve, reject, offset: 0 });
      if (!this.flushing) this.flush();
    });
  }

  /** Group commit: everything queued so far in one write and one fsync. */
  private flush() {
    const batch = this.queue;
    this.queue = [];
    if (!batch.length) return;
    this.flushing = true;
    this.flushes++;
    // Rotate between writes, never under one in flight.
    if (this.size > 0 && this.size >= (this.opts.segmentBytes ?? 16 * 1024 * 1024)) this.startSegment(this.segment + 1);
    const seg = this.segment;
    const fd = this.fd;
    let off = this.size;
    for (const p of batch) {
      off += p.buf.length;
      p.offset = off;
    }
    const data = batch.length === 1 ? batch[0]!.buf : Buffer.concat(batch.map((p) => p.buf));
    this.size = off;
    this.segmentSizes.set(seg, off);
    const done = (err: NodeJS.ErrnoException | null) => {
      if (err) {
        for (const p of batch) p.reject(err);
        this.opts.logger.error(`spool write failed: ${err.message}`);
      } else {
        this.durableEnd = off;
        for (const p of batch) p.resolve({ segment: seg, offset: p.offset });
      }
      this.flushing = false;
      if (this.queue.length) this.flush();
    };
    writeAll(fd, data, (err) => {
      if (err || this.opts.fsync === 'off') return done(err);
      fsync(fd, done);
    });
  }

  /** Everything up to and including `pos` is proven in immudb: forget it. */
  ack(pos: SpoolPosition, records: number) {
    if (comparePos(pos, this.ackPos) <= 0) return;
    this.ackPos = pos;
    this.pendingRecords = Math.max(0, this.pendingRecords - records);
    const tmp = join(this.opts.dir, 'ack.json.tmp');
    writeFileSync(tmp, JSON.stringify(pos), { mode: 0o600 });
    renameSync(tmp, join(this.opts.dir, 'ack.json'));
    for (const [seg, size] of this.segmentSizes) {
      if (seg < pos.segment || (seg === pos.segment && pos.offset >= size && seg !== this.segment)) {
        try {
          unlinkSync(this.segPath(seg));
        } catch {
          // Already gone.
        }
        this.totalBytes -= size;
        this.segmentSizes.delete(seg);
      }
    }
  }

  /**
   * Reads up to `max` durable records after `after` (from the first unacknowledged one when
   * undefined), skipping damaged regions. Used for replay and when memory overflowed.
   */
  read(after: SpoolPosition | undefined, max: number): SpooledRecord[] {
    const out: SpooledRecord[] = [];
    let from = after && comparePos(after, this.ackPos) > 0 ? after : this.ackPos;
    const segs = [...this.segmentSizes.keys()].sort((a, b) => a - b).filter((s) => s >= from.segment);
    for (const seg of segs) {
      const limit = seg === this.segment ? this.durableEnd : this.segmentSizes.get(seg)!;
      const start = seg === from.segment ? from.offset : 0;
      if (start >= limit) continue;
      const buf = readRange(this.segPath(seg), start, limit);
      scan(buf, 0, seg, (r) => {
        out.push({ ...r, pos: { segment: seg, offset: start + r.pos.offset } });
        return out.length < max;
      });
      if (out.length >= max) break;
      from = { segment: seg + 1, offset: 0 };
    }
    return out;
  }

  /** Waits for queued writes, then closes the file and releases the lock. */
  async close(): Promise<void> {
    this.closed = true;
    while (this.flushing || this.queue.length) await new Promise((r) => setTimeout(r, 5));
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
    try {
      unlinkSync(join(this.opts.dir, 'LOCK'));
    } catch {
      // Nothing to release.
    }
  }
}

function writeAll(fd: number, data: Buffer, cb: (err: NodeJS.ErrnoException | null) => void) {
  write(fd, data, 0, data.length, null, (err, n) => {
    if (err) return cb(err);
    if (n < data.length) return writeAll(fd, data.subarray(n), cb);
    cb(null);
  });
}

function readRange(file: string, start: number, end: number): Buffer {
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(end - start);
    let got = 0;
    while (got < buf.length) {
      const n = readSync(fd, buf, got, buf.length - got, start + got);
      if (n === 0) break;
      got += n;
    }
    return buf.subarray(0, got);
  } finally {
    closeSync(fd);
  }
}
