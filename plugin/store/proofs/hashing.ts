// sha256 and the fixed-width big-endian encodings immudb hashes. Both of immudb's Merkle trees
// (the per-tx entry tree and the Alh tree) domain-separate leaves from inner nodes with a
// one-byte prefix, as in RFC 6962.
//
// Long messages are hashed by one-shot crypto.hash calls (no Hash object per hash). Leaves and
// inner nodes of 32-byte hashes are hashed by sha256-small.ts (crypto.hash's fixed cost of ~1 µs
// a call is three times the hashing of such a message in JavaScript), in its input buffer:
// hashing is synchronous, so the buffer is free again when a call returns.
import { hash } from 'node:crypto';
import { sha256Small, smallInput } from './sha256-small.js';

export const HASH_SIZE = 32;
export const LEAF_PREFIX = 0x00;
export const NODE_PREFIX = 0x01;

const EMPTY = Buffer.alloc(0);

/** sha256 of the concatenation of `parts` (of nothing when none). */
export function sha256(...parts: Uint8Array[]): Buffer {
  const data = parts.length === 1 ? parts[0]! : parts.length === 0 ? EMPTY : Buffer.concat(parts);
  return hash('sha256', data, 'buffer');
}

/** Hash of a tree leaf holding `data` (an entry digest or an Alh). */
export function leafHash(data: Uint8Array): Buffer {
  if (data.length !== HASH_SIZE) return sha256(Buffer.from([LEAF_PREFIX]), data);
  const out = Buffer.allocUnsafe(HASH_SIZE);
  leafHashAt(data, 0, out, 0);
  return out;
}

/** Hash of an inner node from its two children. */
export function nodeHash(left: Uint8Array, right: Uint8Array): Buffer {
  if (left.length !== HASH_SIZE || right.length !== HASH_SIZE) return sha256(Buffer.from([NODE_PREFIX]), left, right);
  const out = Buffer.allocUnsafe(HASH_SIZE);
  nodeHashAt(left, 0, right, 0, out, 0);
  return out;
}

/** leafHash of the 32 bytes at src[at..], written to out[off..] (which may overlap them). */
export function leafHashAt(src: Uint8Array, at: number, out: Uint8Array, off: number): void {
  smallInput[0] = LEAF_PREFIX;
  copy32(src, at, 1);
  sha256Small(1 + HASH_SIZE, out, off);
}

/** nodeHash of the 32 bytes at l[lAt..] and r[rAt..], written to out[off..] (which may overlap them). */
export function nodeHashAt(l: Uint8Array, lAt: number, r: Uint8Array, rAt: number, out: Uint8Array, off: number): void {
  smallInput[0] = NODE_PREFIX;
  copy32(l, lAt, 1);
  copy32(r, rAt, 1 + HASH_SIZE);
  sha256Small(1 + 2 * HASH_SIZE, out, off);
}

/** 32 bytes of src from `at` into the small hash's input at `to` (no view allocated). */
function copy32(src: Uint8Array, at: number, to: number): void {
  for (let i = 0; i < HASH_SIZE; i++) smallInput[to + i] = src[at + i]!;
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
