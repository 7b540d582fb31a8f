// sha256 and the fixed-width big-endian encodings immudb hashes. Both of immudb's Merkle trees
// (the per-tx entry tree and the Alh tree) domain-separate leaves from inner nodes with a
// one-byte prefix, as in RFC 6962.
import { createHash } from 'node:crypto';

export const HASH_SIZE = 32;
export const LEAF_PREFIX = 0x00;
export const NODE_PREFIX = 0x01;

const LEAF = Buffer.from([LEAF_PREFIX]);
const NODE = Buffer.from([NODE_PREFIX]);

export function sha256(...parts: Uint8Array[]): Buffer {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
}

/** Hash of a tree leaf holding `data` (an entry digest or an Alh). */
export function leafHash(data: Uint8Array): Buffer {
  return sha256(LEAF, data);
}

/** Hash of an inner node from its two children. */
export function nodeHash(left: Uint8Array, right: Uint8Array): Buffer {
  return sha256(NODE, left, right);
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
