// UUIDv7 (RFC 9562) like uuid's v7(), with random bytes drawn from a pooled buffer
// (crypto.randomFillSync once per 256 ids) instead of one crypto.getRandomValues call per id.
// Same layout and the same monotonic counter rule as uuid 14: within one millisecond the 32-bit
// sequence (seeded randomly each new millisecond) increments; on overflow the time advances.
import { randomFillSync } from 'node:crypto';

const POOL_IDS = 256;
const pool = Buffer.allocUnsafe(16 * POOL_IDS);
let next = POOL_IDS;
let lastMs = -Infinity;
let seq = 0;

const hex: string[] = [];
for (let i = 0; i < 256; i++) hex.push((i + 0x100).toString(16).slice(1));

export function v7(): string {
  if (next === POOL_IDS) {
    randomFillSync(pool);
    next = 0;
  }
  const o = 16 * next++;
  const r = pool;
  const now = Date.now();
  if (now > lastMs) {
    seq = ((r[o + 6]! & 0x7f) << 24) | (r[o + 7]! << 16) | (r[o + 8]! << 8) | r[o + 9]!;
    lastMs = now;
  } else {
    seq = (seq + 1) | 0;
    if (seq === 0) lastMs++;
  }
  const ms = lastMs;
  return (
    hex[(ms / 0x10000000000) & 0xff]! + hex[(ms / 0x100000000) & 0xff]! + hex[(ms / 0x1000000) & 0xff]! + hex[(ms / 0x10000) & 0xff]! + '-' +
    hex[(ms / 0x100) & 0xff]! + hex[ms & 0xff]! + '-' +
    hex[0x70 | ((seq >>> 28) & 0x0f)]! + hex[(seq >>> 20) & 0xff]! + '-' +
    hex[0x80 | ((seq >>> 14) & 0x3f)]! + hex[(seq >>> 6) & 0xff]! + '-' +
    hex[((seq << 2) & 0xff) | (r[o + 10]! & 0x03)]! + hex[r[o + 11]!]! + hex[r[o + 12]!]! + hex[r[o + 13]!]! + hex[r[o + 14]!]! + hex[r[o + 15]!]!
  );
}

export default v7;
