// The durable spool: an append-only log of audit records on local disk. An entry is appended
// (and, with fsync 'group', fsynced: one fsync covers every record written together) before the
// log handler returns, and leaves the spool only once immudb has proven the transaction holding
// it (ack). Segment files rotate and are deleted when fully acknowledged.
//
// Offsets and counters move only for records that are durably written: a failed group write
// (ENOSPC, EIO, EACCES) is cut back and the next one starts at the durable end (positional
// writes, no O_APPEND). Every record carries a sequence number, and the spool keeps two marks:
// `ack` (the last record proven in immudb) and `head` (the last record durably written), each
// a two-slot file overwritten in place (two-slot.ts: no new blocks, so they can be written on a
// full disk; a torn write falls back to the copy before it). On open, records
// missing between the two (a pointer moved, a segment truncated or deleted, damaged bytes) are
// counted and reported.
//
// Record v2: magic 0xa0d2 u16 | payload length u32 | crc32 u32 (of seq..payload) | seq u64 | time u64 ms | payload
// Record v1: magic 0xa0d1 u16 | payload length u32 | crc32 u32 (of time+payload) | time u64 ms | payload (read only)
// Payload: key length u16 | key | value
// Mark (ack, head): two slots of 512 bytes (two-slot.ts), body segment u32 | offset u64 | seq u64.
// Read on upgrade: the single-copy mark of 0.3: magic u32 | segment u32 | offset u64 | seq u64 | crc32 u32.
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import type { Logger } from '../log.js';
import { ownedKeyValue } from '../capture/owned-buffers.js';
import { nodeFs, type SpoolFs } from './spool-fs.js';
import { LossLedger } from './loss-ledger.js';
import { readSlots, TwoSlotFile, type SlotRead } from './two-slot.js';

const MAGIC_V1 = 0xa0d1;
const MAGIC_V2 = 0xa0d2;
const HEADER_V1 = 18;
const HEADER_V2 = 26;
const MAX_PAYLOAD = 64 * 1024 * 1024;
/** Bytes read at a time when records are read back. */
const READ_CHUNK = 256 * 1024;
const SEGMENT_RE = /^seg-(\d{10})\.log$/;
const MARK_MAGIC = 0x4b49414d; // "KIAM"
const LEGACY_MARK_BYTES = 28;
const MARK_BODY = 20;
/** One disk sector per copy: a torn sector write cannot reach the other copy. */
const MARK_SLOT = 512;

export interface SpoolPosition {
  segment: number;
  /** Byte offset just after the record. */
  offset: number;
  /** The record's sequence number (absent for records of a v1 spool). */
  seq?: number;
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
  /** File calls (fault injection in tests); node:fs by default. */
  fs?: SpoolFs;
}

export interface SpoolRecovery {
  /** Records found waiting on open (not yet proven in immudb). */
  pending: number;
  /** Damaged or torn regions skipped, and their total size in bytes. */
  damagedRegions: number;
  damagedBytes: number;
  /**
   * Records that were durably written and never proven, but are gone: sequence numbers missing
   * between the acknowledged position and the high-water mark (plus one per damaged region of
   * a v1 spool, whose records have no numbers).
   */
  missing: number;
}

export class SpoolFullError extends Error {
  override readonly name = 'SpoolFullError';
}

export function comparePos(a: SpoolPosition, b: SpoolPosition): number {
  return a.segment - b.segment || a.offset - b.offset;
}

interface Pending {
  buf: Buffer;
  ok: (pos: SpoolPosition) => void;
  fail: (e: unknown) => void;
}

interface Mark {
  segment: number;
  offset: number;
  seq: number;
}

/**
 * Scans one segment's bytes; calls onRecord for each valid record, onDamage for skipped bytes.
 * Returns where it stopped. With `chunk` (the bytes are a part of the segment, more follow), it
 * stops at a record that runs past the end instead of taking it for damage.
 */
function scan(buf: Buffer, from: number, segment: number, onRecord: (r: SpooledRecord) => boolean | void, onDamage?: (at: number, bytes: number) => void, chunk = false): number {
  let off = from;
  let damageStart = -1;
  const endDamage = (at: number) => {
    if (damageStart >= 0) onDamage?.(damageStart, at - damageStart);
    damageStart = -1;
  };
  while (off + HEADER_V1 <= buf.length) {
    const magic = buf.readUInt16BE(off);
    const header = magic === MAGIC_V2 ? HEADER_V2 : magic === MAGIC_V1 ? HEADER_V1 : 0;
    const len = buf.readUInt32BE(off + 2);
    if (chunk && header > 0 && len <= MAX_PAYLOAD && off + header + len > buf.length) break;
    const ok = header > 0 && len >= 2 && len <= MAX_PAYLOAD && off + header + len <= buf.length
      && crc32(buf.subarray(off + 10, off + header + len)) === buf.readUInt32BE(off + 6);
    if (!ok) {
      if (damageStart < 0) damageStart = off;
      off++;
      continue;
    }
    endDamage(off);
    const payload = buf.subarray(off + header, off + header + len);
    const keyLen = payload.readUInt16BE(0);
    const end = off + header + len;
    const v2 = header === HEADER_V2;
    const rec: SpooledRecord = {
      at: Number(buf.readBigUInt64BE(off + (v2 ? 18 : 10))),
      // Copied out of the file buffer: a record read back must not keep the whole read alive.
      ...ownedKeyValue(payload.subarray(2, 2 + keyLen), payload.subarray(2 + keyLen)),
      pos: v2 ? { segment, offset: end, seq: Number(buf.readBigUInt64BE(off + 10)) } : { segment, offset: end },
    };
    off = end;
    if (onRecord(rec) === false) return off;
  }
  if (off < buf.length && !chunk) {
    if (damageStart < 0) damageStart = off;
    off = buf.length;
  }
  endDamage(off);
  return off;
}

/** The bytes a record starting at `off` needs (at least a header), to read it whole. */
function recordBytesAt(buf: Buffer, off: number): number {
  return off + HEADER_V1 <= buf.length ? HEADER_V2 + buf.readUInt32BE(off + 2) : HEADER_V2;
}

export function encodeMark(m: Mark): Buffer {
  const b = Buffer.alloc(MARK_BODY);
  b.writeUInt32BE(m.segment, 0);
  b.writeBigUInt64BE(BigInt(m.offset), 4);
  b.writeBigUInt64BE(BigInt(m.seq), 12);
  return b;
}

export function decodeMark(b: Buffer): Mark | undefined {
  if (b.length !== MARK_BODY) return undefined;
  return { segment: b.readUInt32BE(0), offset: Number(b.readBigUInt64BE(4)), seq: Number(b.readBigUInt64BE(12)) };
}

/** A mark of the single-copy format (read on upgrade). */
function decodeLegacyMark(b: Buffer): Mark | undefined {
  if (b.length < LEGACY_MARK_BYTES || b.readUInt32BE(0) !== MARK_MAGIC || crc32(b.subarray(0, 24)) !== b.readUInt32BE(24)) return undefined;
  return { segment: b.readUInt32BE(4), offset: Number(b.readBigUInt64BE(8)), seq: Number(b.readBigUInt64BE(16)) };
}

export class Spool {
  private readonly fs: SpoolFs;
  private fd = -1;
  private ackFile: TwoSlotFile | undefined;
  private headFile: TwoSlotFile | undefined;
  private segment = 0;
  /** End of the records durably written in the current segment: the next write goes here. */
  private durableEnd = 0;
  /** Sequence number of the last record durably written. */
  private lastSeq = 0;
  private queue: Pending[] = [];
  private queuedBytes = 0;
  private flushing = false;
  /** A group commit is due at the end of this turn of the event loop. */
  private flushScheduled = false;
  private totalBytes = 0;
  private segmentSizes = new Map<number, number>();
  private ackPos: Mark = { segment: 0, offset: 0, seq: 0 };
  private closed = false;
  /** A failed write could not be cut back: its bytes lie past durableEnd until a truncate succeeds. */
  private untruncated = false;
  /** The last write failed: the next success is reported as a recovery. */
  private failing = false;
  readonly recovery: SpoolRecovery = { pending: 0, damagedRegions: 0, damagedBytes: 0, missing: 0 };
  /** Records durably written (or recovered) and not yet acknowledged. */
  pendingRecords = 0;
  /** Appends refused or failed (the caller holds those entries elsewhere). */
  refused = 0;
  /** Group commits done (one write + one fsync each). */
  flushes = 0;
  /** Entries lost and not yet recorded in immudb, kept across restarts (loss-ledger.ts). */
  losses!: LossLedger;

  /** A newer configuration's size limit and fsync policy, for the entries appended from now on. */
  /**
   * Bytes after which appends go to a new segment. The segment being written is never deleted,
   * so it must be a small part of maxBytes: at most a quarter (16 MiB by default), else a spool
   * smaller than a segment stays full after everything in it was acknowledged.
   */
  private segmentLimit(): number {
    return Math.min(this.opts.segmentBytes ?? 16 * 1024 * 1024, Math.max(64 * 1024, Math.floor(this.opts.maxBytes / 4)));
  }

  setLimits(limits: Pick<SpoolOptions, 'maxBytes' | 'fsync'>) {
    Object.assign(this.opts, limits);
  }

  private constructor(private readonly opts: SpoolOptions) {
    this.fs = opts.fs ?? nodeFs;
  }

  /** Opens (creating) the spool directory: lock, recovery scan, new segment for appends. */
  static open(opts: SpoolOptions): Spool {
    const s = new Spool(opts);
    try {
      s.openSync();
    } catch (e) {
      s.closeFds();
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
    this.fs.mkdir(dir);
    this.lock();
    this.losses = new LossLedger(this.fs, dir);
    if (this.losses.damaged) {
      this.opts.logger.error(`spool ${dir}: the loss ledger ${join(dir, 'losses')} cannot be read: ${this.losses.damaged}. Entries a previous run counted as lost and had not yet recorded in a loss record, if any, cannot be counted any more; see this node's earlier error log lines ("audit entries are being LOST")`);
    }
    const ackRead = this.readMark('ack', 'proven entries are replayed from the oldest segment (each replay is recognised by a verified read)');
    const ackMark = ackRead.mark;
    const legacyAck = ackMark ? undefined : this.readLegacyAck();
    this.ackPos = ackMark ?? legacyAck ?? { segment: 0, offset: 0, seq: 0 };
    const headRead = this.readMark('head', 'records missing at the end of the spool cannot be counted');
    const head = headRead.mark;
    const segments = this.segments();
    /** Missing sequence numbers found, with where. */
    const gaps: string[] = [];
    // A v1 ack has no sequence number: gaps are counted from the first numbered record on.
    let prev: number | undefined = ackMark ? this.ackPos.seq : undefined;
    let damagedAt = '';
    const gap = (upTo: number, where: string) => {
      if (prev === undefined || upTo <= prev + 1) return;
      const n = upTo - prev - 1;
      this.recovery.missing += n;
      gaps.push(`${n} after seq ${prev} ${where}`);
    };
    let legacyDamage = 0;
    for (const seg of segments) {
      const file = this.segPath(seg);
      if (seg < this.ackPos.segment) {
        this.fs.unlink(file);
        continue;
      }
      const buf = this.fs.read(file);
      if (!buf.length) {
        this.fs.unlink(file);
        continue;
      }
      this.segmentSizes.set(seg, buf.length);
      this.totalBytes += buf.length;
      const from = seg === this.ackPos.segment ? Math.min(this.ackPos.offset, buf.length) : 0;
      let lastGood = from;
      let first = true;
      scan(buf, from, seg, (r) => {
        this.recovery.pending++;
        lastGood = r.pos.offset;
        const seq = r.pos.seq;
        if (seq !== undefined) {
          gap(seq, damagedAt || (first ? (seg === this.ackPos.segment ? `(after the acknowledged position in segment ${seg})` : `(before segment ${seg}: a segment deleted or truncated, or the ack pointer moved)`) : `(inside segment ${seg})`));
          // A record already seen (a write that failed and was repeated) is not a gap.
          if (prev === undefined || seq > prev) prev = seq;
        }
        damagedAt = '';
        first = false;
      }, (at, bytes) => {
        this.recovery.damagedRegions++;
        this.recovery.damagedBytes += bytes;
        damagedAt = `(in ${bytes} damaged bytes at offset ${at} of segment ${seg})`;
        if (prev === undefined) legacyDamage++;
        this.opts.logger.error(`spool ${file}: ${bytes} damaged bytes at offset ${at} skipped (torn write or corruption); records in them are lost`);
      });
      // A torn tail is cut off so the file ends on a whole record. Not being able to (a full
      // disk, an I/O error) does not stop the spool: new records go to a new segment, and the
      // next open finds the same tail and tries again.
      if (lastGood < buf.length && seg === segments[segments.length - 1]) {
        try {
          const fd = this.fs.open(file, 'r+');
          try {
            this.fs.truncate(fd, lastGood);
            this.totalBytes -= buf.length - lastGood;
            this.segmentSizes.set(seg, lastGood);
            this.fs.fsyncSync(fd);
          } finally {
            this.fs.close(fd);
          }
        } catch (e) {
          this.opts.logger.warn(`spool ${file}: the torn tail after offset ${lastGood} could not be cut off (${(e as Error).message}); new records go to a new segment`);
        }
      }
    }
    if (head && head.seq > (prev ?? this.ackPos.seq)) {
      if (prev === undefined) prev = this.ackPos.seq;
      gap(head.seq + 1, damagedAt || `(at the end: segment ${head.segment} truncated or deleted; the last durable record was at offset ${head.offset} of it)`);
    }
    // v1 records have no numbers: a damaged region among them counts as (at least) one record.
    this.recovery.missing += legacyDamage;
    this.pendingRecords = this.recovery.pending;
    this.lastSeq = Math.max(head?.seq ?? 0, this.ackPos.seq, prev ?? 0);
    this.ackFile = this.openMark('ack', ackRead.read, this.ackPos);
    const last = segments.length ? segments[segments.length - 1]! : 0;
    // Strictly after the ack pointer: a new segment's first records must not look acknowledged.
    this.segment = Math.max(last + 1, this.ackPos.segment + 1);
    this.headFile = this.openMark('head', headRead.read, { segment: this.segment, offset: 0, seq: this.lastSeq });
    if (legacyAck) {
      try {
        this.fs.unlink(join(dir, 'ack.json'));
      } catch {
        // The binary mark is read first from now on.
      }
    }
    try {
      this.startSegment(this.segment);
    } catch (e) {
      // A full disk may refuse even an empty file: the first write tries again.
      this.opts.logger.error(`spool ${dir}: no segment for new records yet (${(e as Error).message})`);
    }
    if (this.recovery.missing) {
      this.opts.logger.error(`spool ${dir}: ${this.recovery.missing} record(s) missing between the acknowledged position and the last durable record: ${gaps.join('; ') || `${legacyDamage} damaged region(s) in records of the previous format`}. These entries were acknowledged to Kong as durable and are LOST before reaching immudb`);
    }
    if (this.recovery.pending || this.recovery.damagedRegions) {
      this.opts.logger.warn(`spool ${dir}: ${this.recovery.pending} entries waiting from a previous run` +
        (this.recovery.damagedRegions ? `, ${this.recovery.damagedBytes} bytes in ${this.recovery.damagedRegions} damaged region(s) lost` : ''));
    }
  }

  /** A mark: the newer valid copy, else the single copy of 0.3; a damaged one is logged. */
  private readMark(name: string, ifDamaged: string): { read: SlotRead; mark?: Mark } {
    const file = join(this.opts.dir, name);
    const read = readSlots(this.fs, file, MARK_SLOT);
    if (read.kind === 'ok') {
      const mark = decodeMark(read.body);
      if (mark) return { read, mark };
    } else if (read.kind === 'invalid') {
      const mark = decodeLegacyMark(read.bytes);
      if (mark) return { read, mark };
    }
    if (read.kind !== 'absent') this.opts.logger.warn(`spool ${file}: neither copy of the mark is valid (damaged bytes); ${ifDamaged}`);
    return { read };
  }

  /** The v1 pointer (ack.json, without a sequence number). */
  private readLegacyAck(): Mark | undefined {
    try {
      const a = JSON.parse(readFileSync(join(this.opts.dir, 'ack.json'), 'utf8')) as Partial<Mark>;
      if (Number.isSafeInteger(a.segment) && Number.isSafeInteger(a.offset)) return { segment: a.segment!, offset: a.offset!, seq: 0 };
    } catch {
      // None, or unreadable: replay from the start (idempotent).
    }
    return undefined;
  }

  /**
   * Opens a mark file for in-place overwrites, writing `initial` as its next copy (creating the
   * file whole when it is missing or cannot be opened). Undefined when even that fails: the
   * spool opens anyway and says so (each use of the mark then fails).
   */
  private openMark(name: string, read: SlotRead, initial: Mark): TwoSlotFile | undefined {
    const file = join(this.opts.dir, name);
    const body = encodeMark(initial);
    try {
      const f = TwoSlotFile.open(this.fs, file, MARK_SLOT, read, body);
      if (read.kind !== 'absent') f.write(body);
      return f;
    } catch (e) {
      if (read.kind !== 'absent') this.opts.logger.warn(`spool ${file}: ${(e as Error).message}; written anew`);
    }
    try {
      return TwoSlotFile.open(this.fs, file, MARK_SLOT, { kind: 'absent' }, body);
    } catch (e) {
      this.opts.logger.error(`spool ${file} cannot be created (${(e as Error).message}); the spool cannot record progress until it can`);
      return undefined;
    }
  }

  private writeMark(file: TwoSlotFile | undefined, m: Mark) {
    if (!file) throw new Error('its mark file could not be created');
    file.write(encodeMark(m));
  }

  private lock() {
    const file = join(this.opts.dir, 'LOCK');
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(file, 'wx', 0o600);
        try {
          writeSync(fd, String(process.pid));
        } catch (e) {
          // A full disk takes the (empty) file but not its pid: the lock is ours all the same;
          // an empty lock reads as stale to a later process.
          if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
        } finally {
          closeSync(fd);
        }
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
    return this.fs.readdir(this.opts.dir)
      .map((n) => SEGMENT_RE.exec(n)?.[1])
      .filter((n): n is string => n !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
  }

  private segPath(seg: number): string {
    return join(this.opts.dir, `seg-${String(seg).padStart(10, '0')}.log`);
  }

  /** A new, empty segment for appends (a failed open leaves the current one in use). */
  private startSegment(seg: number) {
    const fd = this.fs.open(this.segPath(seg), 'w', 0o600);
    if (this.fd >= 0) this.fs.close(this.fd);
    this.fd = fd;
    this.segment = seg;
    this.durableEnd = 0;
    this.segmentSizes.set(seg, 0);
  }

  get bytes(): number {
    return this.totalBytes;
  }

  /**
   * Appends a record; resolves with its position (and sequence number) once written (and
   * fsynced with 'group'); rejects when the spool is full or the write failed, and then
   * nothing of it counts.
   */
  append(key: Buffer, value: Buffer, at = Date.now()): Promise<SpoolPosition> {
    return new Promise((resolve, reject) => this.appendThen(key, value, at, resolve, reject));
  }

  /**
   * append() with callbacks (one promise fewer per entry on the hot path): `ok` once the record
   * is durable, or `fail` (never synchronously) when it was refused or its write failed.
   */
  appendThen(key: Buffer, value: Buffer, at: number, ok: (pos: SpoolPosition) => void, fail: (e: unknown) => void): void {
    if (this.closed) {
      queueMicrotask(() => fail(new Error('spool is closed')));
      return;
    }
    const len = 2 + key.length + value.length;
    const size = HEADER_V2 + len;
    if (this.totalBytes + this.queuedBytes + size > this.opts.maxBytes) {
      this.refused++;
      const err = new SpoolFullError(`spool ${this.opts.dir} is full (${this.totalBytes} of ${this.opts.maxBytes} bytes)`);
      queueMicrotask(() => fail(err));
      return;
    }
    const buf = Buffer.allocUnsafe(size);
    buf.writeUInt16BE(MAGIC_V2, 0);
    buf.writeUInt32BE(len, 2);
    buf.writeBigUInt64BE(BigInt(at), 18);
    buf.writeUInt16BE(key.length, HEADER_V2);
    key.copy(buf, HEADER_V2 + 2);
    value.copy(buf, HEADER_V2 + 2 + key.length);
    this.queuedBytes += size;
    this.queue.push({ buf, ok, fail });
    this.scheduleFlush();
  }

  /**
   * The group commit starts at the end of this turn, not at the first append: entries that
   * arrive together (the audit thread takes a turn's events in one message) share one write
   * and one fsync instead of the first going alone.
   */
  private scheduleFlush() {
    if (this.flushing || this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      if (!this.flushing) void this.flush();
    });
  }

  /** Group commit: everything queued so far in one write and one fsync. */
  private async flush() {
    const batch = this.queue;
    this.queue = [];
    if (!batch.length) return;
    this.flushing = true;
    this.flushes++;
    let settle: () => void = () => undefined;
    const bytes = batch.reduce((n, p) => n + p.buf.length, 0);
    let start = this.durableEnd;
    try {
      // Records of a failed write that could not be cut back must not outlive the next write
      // (a shorter write would leave some of them, whole and numbered, past its end): cut them
      // now, or fail this write as well.
      if (this.untruncated && this.fd >= 0) {
        this.fs.truncate(this.fd, this.durableEnd);
        this.untruncated = false;
      }
      // Rotate between writes, never under one in flight.
      if (this.fd < 0) this.startSegment(this.segment);
      else if (this.durableEnd > 0 && this.durableEnd >= this.segmentLimit()) this.startSegment(this.segment + 1);
      start = this.durableEnd;
      // Numbers are given at write time: a failed write gives its numbers to the next one.
      let seq = this.lastSeq;
      const ends: number[] = [];
      let off = this.durableEnd;
      for (const p of batch) {
        p.buf.writeBigUInt64BE(BigInt(++seq), 10);
        p.buf.writeUInt32BE(crc32(p.buf.subarray(10)), 6);
        off += p.buf.length;
        ends.push(off);
      }
      const data = batch.length === 1 ? batch[0]!.buf : Buffer.concat(batch.map((p) => p.buf), bytes);
      await this.fs.write(this.fd, data, this.durableEnd);
      // The high-water mark, before the records count as written. Fsynced with them: after a
      // power loss it may name records whose data did not reach the disk (reported missing,
      // though never acknowledged), never the other way round.
      this.writeMark(this.headFile, { segment: this.segment, offset: off, seq });
      if (this.opts.fsync === 'group') await Promise.all([this.fs.fsync(this.fd), this.headFile!.syncAsync()]);
      const seg = this.segment;
      this.durableEnd = off;
      this.lastSeq = seq;
      this.segmentSizes.set(seg, off);
      this.totalBytes += bytes;
      this.pendingRecords += batch.length;
      this.queuedBytes -= bytes;
      if (this.failing) {
        this.failing = false;
        this.opts.logger.warn(`spool ${this.opts.dir}: writes succeed again`);
      }
      const first = this.lastSeq - batch.length + 1;
      settle = () => batch.forEach((p, i) => p.ok({ segment: seg, offset: ends[i]!, seq: first + i }));
    } catch (err) {
      this.queuedBytes -= bytes;
      this.refused += batch.length;
      this.cutBack(start);
      if (!this.failing) {
        this.failing = true;
        this.opts.logger.error(`spool ${this.opts.dir}: write failed (${(err as Error).message}); nothing of it counts, the next write starts at the last durable record`);
      }
      settle = () => batch.forEach((p) => p.fail(err));
    } finally {
      this.flushing = false;
      if (this.queue.length) void this.flush();
    }
    // Outside the try: a callback that throws must not look like a failed write (which would cut
    // back records that are durable).
    try {
      settle();
    } catch (e) {
      this.opts.logger.error(`spool ${this.opts.dir}: a caller failed on a settled append: ${(e as Error).stack ?? String(e)}`);
    }
  }

  /** After a failed write: the segment and the high-water mark back to the last durable record. */
  private cutBack(end: number) {
    if (this.fd < 0) return;
    try {
      this.fs.truncate(this.fd, end);
    } catch (e) {
      // The next write cuts them first (or fails too).
      this.untruncated = true;
      this.opts.logger.warn(`spool ${this.opts.dir}: cannot cut back a failed write (${(e as Error).message})`);
    }
    try {
      this.writeMark(this.headFile, { segment: this.segment, offset: end, seq: this.lastSeq });
    } catch {
      // Ahead of the data at worst: the next write that succeeds moves it again.
    }
  }

  /** Everything up to and including `pos` is proven in immudb: forget it. */
  ack(pos: SpoolPosition, records: number) {
    if (comparePos(pos, this.ackPos) <= 0) return;
    this.ackPos = { segment: pos.segment, offset: pos.offset, seq: pos.seq ?? this.ackPos.seq };
    this.pendingRecords = Math.max(0, this.pendingRecords - records);
    try {
      this.writeMark(this.ackFile, this.ackPos);
    } catch (e) {
      // A stale pointer only replays proven entries (idempotent); segments stay until it moves.
      this.opts.logger.warn(`spool ${this.opts.dir}: the ack pointer could not be saved (${(e as Error).message}); proven entries may be replayed`);
      return;
    }
    const done = [...this.segmentSizes].filter(([seg, size]) => seg < pos.segment || (seg === pos.segment && pos.offset >= size && seg !== this.segment));
    if (!done.length) return;
    try {
      // The pointer on disk before the files it covers go: otherwise a crash would find it
      // pointing into a deleted segment.
      this.ackFile!.sync();
    } catch {
      return;
    }
    for (const [seg, size] of done) {
      try {
        this.fs.unlink(this.segPath(seg));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') continue;
      }
      this.totalBytes -= size;
      this.segmentSizes.delete(seg);
    }
  }

  /**
   * Reads up to `max` durable records after `after` (from the first unacknowledged one when
   * undefined), skipping damaged regions. Used for replay and when memory overflowed.
   */
  read(after: SpoolPosition | undefined, max: number): SpooledRecord[] {
    const out: SpooledRecord[] = [];
    const from = after && comparePos(after, this.ackPos) > 0 ? after : this.ackPos;
    const segs = [...this.segmentSizes.keys()].sort((a, b) => a - b).filter((s) => s >= from.segment);
    for (const seg of segs) {
      const limit = this.segmentSizes.get(seg)!;
      let at = seg === from.segment ? from.offset : 0;
      // In chunks: a refill of a few batches must not read (and allocate) the rest of a 16 MiB segment.
      let want = READ_CHUNK;
      while (at < limit && out.length < max) {
        const end = Math.min(limit, at + want);
        const buf = this.fs.read(this.segPath(seg), at, end);
        const base = at;
        const last = end >= limit || buf.length < end - at;
        const stop = scan(buf, 0, seg, (r) => {
          out.push({ ...r, pos: { ...r.pos, offset: base + r.pos.offset } });
          return out.length < max;
        }, undefined, !last);
        if (last && stop >= buf.length) break;
        // Stopped at a record running past the chunk: the next read takes it whole.
        want = out.length < max ? Math.max(READ_CHUNK, recordBytesAt(buf, stop)) : READ_CHUNK;
        at = base + stop;
        if (last) break;
      }
      if (out.length >= max) break;
    }
    return out;
  }

  /** Waits for queued writes, then closes the files and releases the lock. */
  async close(): Promise<void> {
    this.closed = true;
    while (this.flushing || this.flushScheduled || this.queue.length) await new Promise((r) => setTimeout(r, 5));
    this.closeFds();
    try {
      unlinkSync(join(this.opts.dir, 'LOCK'));
    } catch {
      // Nothing to release.
    }
  }

  private closeFds() {
    for (const close of [() => this.fd >= 0 && this.fs.close(this.fd), () => this.ackFile?.close(), () => this.headFile?.close()]) {
      try {
        close();
      } catch {
        // Closing is best effort.
      }
    }
    this.fd = -1;
    this.ackFile = this.headFile = undefined;
    this.losses?.close();
  }
}
