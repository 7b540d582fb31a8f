// Root computations over audit paths for the left-balanced binary trees immudb uses both for
// the entries of a tx (eH) and for the tree of Alh values (blRoot): the tree over n leaves splits
// into a complete left subtree of the largest power of two below n and the rest (RFC 6962). The
// evaluation follows RFC 9162 (2.1.3.2 and 2.1.4.2) and is strict: a path must have exactly the
// length its position requires, so dropped or extra terms fail even before the root comparison.
import { nodeHash } from './hashing.js';

const half = (n: number) => Math.floor(n / 2);

/** Root from a leaf hash at 0-based `index` of a tree with `size` leaves; undefined when the path does not fit. */
export function rootFromInclusionPath(index: number, size: number, leaf: Buffer, path: Buffer[]): Buffer | undefined {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) return undefined;
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of path) {
    if (sn === 0) return undefined;
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      while (fn % 2 === 0 && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 ? r : undefined;
}

/**
 * Old and new roots from a consistency path between trees of `oldSize` < `newSize` leaves.
 * immudb's paths always start with the node that covers the old tree's last complete subtree
 * (for a power-of-two old size that is the old root, which RFC 9162 leaves out and re-adds).
 */
export function rootsFromConsistencyPath(oldSize: number, newSize: number, path: Buffer[]): [Buffer, Buffer] | undefined {
  if (!Number.isSafeInteger(oldSize) || !Number.isSafeInteger(newSize) || oldSize < 1 || oldSize >= newSize) return undefined;
  const [first, ...rest] = path;
  if (!first) return undefined;
  let fn = oldSize - 1;
  let sn = newSize - 1;
  while (fn % 2 === 1) {
    fn = half(fn);
    sn = half(sn);
  }
  let fr = first;
  let sr = first;
  for (const c of rest) {
    if (sn === 0) return undefined;
    if (fn % 2 === 1 || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      while (fn % 2 === 0 && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 ? [fr, sr] : undefined;
}
