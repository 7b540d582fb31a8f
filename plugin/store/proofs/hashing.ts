// sha256 and the fixed-width big-endian encodings immudb hashes. Both of immudb's Merkle trees
// (the per-tx entry tree and the Alh tree) domain-separate leaves from inner nodes with a
// one-byte prefix, as in RFC 6962.
//
// Hashes are one-shot crypto.hash calls (no Hash object per hash). The leaf and node hashes of
// 32-byte inputs fill a scratch buffer of this module: crypto.hash is synchronous and copies
// nothing it keeps, so the buffer is free again when it returns.
import { hash } from 'node:crypto';

export const HASH_SIZE = 32;
export const LEAF_PREFIX = 0x00;
export const NODE_PREFIX = 0x01;

const EMPTY = Buffer.alloc(0);
const leafScratch = Buffer.allocUnsafeSlow(1 + HASH_SIZE);
const nodeScratch = Buffer.allocUnsafeSlow(1 + 2 * HASH_SIZE);

/** sha256 of the concatenation of `parts` (of nothing when none). */
export function sha256(...parts: Uint8Array[]): Buffer {
  const data = parts.length === 1 ? parts[0]! : parts.length === 0 ? EMPTY : Buffer.concat(parts);
  return hash('sha256', data, 'buffer');
}

/** Hash of a tree leaf holding `data` (an entry digest or an Alh). */
export function leafHash(data: Uint8Array): Buffer {
  if (data.length !== HASH_SIZE) return sha256(Buffer.from([LEAF_PREFIX]), data);
  leafScratch[0] = LEAF_PREFIX;
  leafScratch.set(data, 1);
  return hash('sha256', leafScratch, 'buffer');
}

/** Hash of an inner node from its two children. */
export function nodeHash(left: Uint8Array, right: Uint8Array): Buffer {
  if (left.length !== HASH_SIZE || right.length !== HASH_SIZE) return sha256(Buffer.from([NODE_PREFIX]), left, right);
  nodeScratch[0] = NODE_PREFIX;
  nodeScratch.set(left, 1);
  nodeScratch.set(right, 1 + HASH_SIZE);
  return hash('sha256', nodeScratch, 'buffer');
}

export function uint16be(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

export function uint32be(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

/** 8 bytes big-endian; negative values are written in two's complement (Go's uint64(int64)). */
export function uint64be(n: number | bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt.asUintN(64, BigInt(n)));
  return b;
}

export function isZeroHash(b: Buffer): boolean {
  return b.every((x) => x === 0);
}
