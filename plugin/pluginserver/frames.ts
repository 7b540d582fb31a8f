// MessagePack stream framing for the plugin-server socket: finds where each complete value ends
// without decoding it, so any chunk boundary (even inside a header) and any number of pipelined
// requests per chunk are handled. kong-pdk 0.6.0's listener instead decodes each chunk whole and
// only tolerates the decoder's "Insufficient data" error: a header split across chunks or two
// requests in one chunk throw out of its 'data' handler and end the process.

/** Thrown for a byte that cannot start a MessagePack value (0xc1). */
export class FramingError extends Error {
  override get name(): string {
    return 'FramingError';
  }
}

/**
 * Where the MessagePack value starting at `start` ends. Returns the end offset when it is
 * complete in `buf` (<= buf.length), else a lower bound on the total length `buf` must reach
 * (> buf.length). Strings and binaries are skipped by their length, never read.
 */
export function valueEnd(buf: Uint8Array, start: number): number {
  let pos = start;
  let pending = 1; // values still to skip; containers add their children
  const len = buf.length;
  while (pending > 0) {
    if (pos >= len) return pos + pending;
    const b = buf[pos]!;
    pending--;
    if (b <= 0x7f || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3) {
      pos += 1;
      continue;
    }
    if (b <= 0x8f) {
      pending += 2 * (b & 0x0f);
      pos += 1;
      continue;
    }
    if (b <= 0x9f) {
      pending += b & 0x0f;
      pos += 1;
      continue;
    }
    if (b <= 0xbf) {
      pos += 1 + (b & 0x1f);
      continue;
    }
    const fixed = FIXED_SIZE[b - 0xc0] ?? 0;
    if (fixed > 0) {
      pos += fixed;
      continue;
    }
    const width = LENGTH_WIDTH[b - 0xc0] ?? 0;
    if (width === 0) throw new FramingError(`invalid MessagePack byte 0x${b.toString(16)} at offset ${pos}`);
    if (pos + 1 + width > len) return pos + 1 + width + pending;
    const n = readLength(buf, pos + 1, width);
    pos += 1 + width;
    if (b === 0xdc || b === 0xdd) pending += n; // array16/32
    else if (b === 0xde || b === 0xdf) pending += 2 * n; // map16/32
    else pos += n + (b >= 0xc7 && b <= 0xc9 ? 1 : 0); // str/bin: payload; ext: type byte + payload
  }
  return pos;
}

function readLength(buf: Uint8Array, at: number, width: number): number {
  if (width === 1) return buf[at]!;
  if (width === 2) return (buf[at]! << 8) | buf[at + 1]!;
  return ((buf[at]! << 24) >>> 0) + (buf[at + 1]! << 16) + (buf[at + 2]! << 8) + buf[at + 3]!;
}

// Indexed by byte - 0xc0. FIXED_SIZE: whole value size for fixed-width types (float, int, fixext).
const FIXED_SIZE: Record<number, number> = {
  0x0a: 5, 0x0b: 9, // float32/64
  0x0c: 2, 0x0d: 3, 0x0e: 5, 0x0f: 9, // uint8..64
  0x10: 2, 0x11: 3, 0x12: 5, 0x13: 9, // int8..64
  0x14: 3, 0x15: 4, 0x16: 6, 0x17: 10, 0x18: 18, // fixext1..16
};
// LENGTH_WIDTH: bytes of the length field for bin, ext, str, array, map.
const LENGTH_WIDTH: Record<number, number> = {
  0x04: 1, 0x05: 2, 0x06: 4, // bin8/16/32
  0x07: 1, 0x08: 2, 0x09: 4, // ext8/16/32
  0x19: 1, 0x1a: 2, 0x1b: 4, // str8/16/32
  0x1c: 2, 0x1d: 4, // array16/32
  0x1e: 2, 0x1f: 4, // map16/32
};

/**
 * Splits a byte stream into whole MessagePack values. Chunks are kept apart until the bytes
 * known to be needed have arrived, so a 1 MB request in 64 KiB chunks is joined once.
 */
export class FrameSplitter {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private need = 1;

  /** Feeds one chunk; returns the complete values it finished, as slices (in order). */
  push(chunk: Buffer): Buffer[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    if (this.buffered < this.need) return [];
    const buf = this.chunks.length === 1 ? chunk : Buffer.concat(this.chunks, this.buffered);
    const frames: Buffer[] = [];
    let off = 0;
    for (;;) {
      if (off === buf.length) {
        this.chunks = [];
        this.buffered = 0;
        this.need = 1;
        return frames;
      }
      const end = valueEnd(buf, off);
      if (end > buf.length) {
        const rest = buf.subarray(off);
        this.chunks = [rest];
        this.buffered = rest.length;
        this.need = end - off;
        return frames;
      }
      frames.push(buf.subarray(off, end));
      off = end;
    }
  }
}
