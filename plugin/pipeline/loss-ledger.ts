// Entries counted as lost but not yet recorded in immudb survive a restart here: a small file
// in the spool directory, created at open and then only overwritten in place, so it can still
// be written when the disk is full (not when it fails with EIO or EACCES: then the count lives
// in memory and in the error log only).
//
// Layout: length u32 | crc32 u32 (of the text) | text (UTF-8 JSON), zero-padded to SIZE bytes.
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import type { SpoolFs } from './spool-fs.js';

const SIZE = 16 * 1024;

export class LossLedger {
  private fd = -1;
  /** What the previous run left (empty when nothing). */
  readonly text: string;

  constructor(private readonly fs: SpoolFs, dir: string) {
    const file = join(dir, 'losses');
    let text = '';
    try {
      const buf = fs.read(file, 0, SIZE);
      const len = buf.length >= 8 ? buf.readUInt32BE(0) : 0;
      if (len > 0 && 8 + len <= buf.length && crc32(buf.subarray(8, 8 + len)) === buf.readUInt32BE(4)) text = buf.subarray(8, 8 + len).toString('utf8');
      this.fd = fs.open(file, 'r+');
    } catch {
      try {
        // Its blocks are allocated once, now, while there is room.
        const fd = fs.open(file, 'w', 0o600);
        fs.writeSync(fd, Buffer.alloc(SIZE), 0);
        this.fd = fd;
      } catch {
        this.fd = -1;
      }
    }
    this.text = text;
  }

  /** Overwrites the ledger; throws when it cannot (no file, I/O error, text too long). */
  save(text: string) {
    if (this.fd < 0) throw new Error('the loss ledger could not be created');
    const body = Buffer.from(text, 'utf8');
    if (8 + body.length > SIZE) throw new Error('the loss ledger is full');
    const buf = Buffer.alloc(8 + body.length);
    buf.writeUInt32BE(body.length, 0);
    buf.writeUInt32BE(crc32(body), 4);
    body.copy(buf, 8);
    this.fs.writeSync(this.fd, buf, 0);
    this.fs.fsyncSync(this.fd);
  }

  close() {
    if (this.fd >= 0) this.fs.close(this.fd);
    this.fd = -1;
  }
}
