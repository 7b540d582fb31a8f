// The entry tree of a tx: its root is the header's eH, its leaves are the entry digests in tx
// order. Odd nodes at the end of a level move up unchanged.
import type { InclusionProof } from '../immudb-types.js';
import { VerificationError } from './errors.js';
import { HASH_SIZE, leafHash, leafHashAt, nodeHashAt, sha256 } from './hashing.js';
import { rootFromInclusionPath } from './merkle-path.js';
import { requireHash, requireHashList, requireInt, requirePresent } from './shape.js';

/** eH of a tx from its entry digests (sha256 of nothing for no entries, as immudb). */
export function entriesHash(digests: readonly Buffer[]): Buffer {
  if (digests.length === 0) return sha256();
  const leaves = Buffer.allocUnsafe(digests.length * HASH_SIZE);
  for (let i = 0; i < digests.length; i++) {
    const d = digests[i]!;
    leafHashAt(Buffer.isBuffer(d) && d.length === HASH_SIZE ? d : requireHash(d, `entry digest ${i}`), 0, leaves, i * HASH_SIZE);
  }
  return entriesRoot(leaves, digests.length);
}

/**
 * eH from the leaf hashes of `n` entries, laid out one after another in `leaves` (n >= 1), which
 * is overwritten: each level of the tree is written over the start of the one below it.
 */
export function entriesRoot(leaves: Buffer, n: number): Buffer {
  for (let width = n; width > 1; width = (width + 1) >> 1) {
    let j = 0;
    for (let i = 0; i + 1 < width; i += 2) nodeHashAt(leaves, i * HASH_SIZE, leaves, (i + 1) * HASH_SIZE, leaves, HASH_SIZE * j++);
    // An odd node at the end of a level moves up unchanged.
    if (width % 2 === 1) leaves.copy(leaves, j * HASH_SIZE, (width - 1) * HASH_SIZE, width * HASH_SIZE);
  }
  return Buffer.from(leaves.subarray(0, HASH_SIZE));
}

/**
 * Checks that `digest` is the leaf at proof.leaf of the entry tree whose root is `eH`.
 * `expectedWidth`, when given (the header's nentries), must equal proof.width.
 */
export function verifyEntryInclusion(
  proof: InclusionProof | null | undefined,
  digest: Buffer,
  eH: Buffer,
  expectedWidth?: number,
  what = 'entry inclusion proof',
): void {
  const p = requirePresent(proof, what);
  const width = requireInt(p.width, `${what}.width`, 1, 0x7fffffff);
  const leaf = requireInt(p.leaf, `${what}.leaf`, 0, width - 1);
  if (expectedWidth !== undefined && width !== expectedWidth) {
    throw new VerificationError(`${what}: width ${width} does not match the tx's ${expectedWidth} entries`);
  }
  const terms = requireHashList(p.terms, `${what}.terms`);
  const root = rootFromInclusionPath(leaf, width, leafHash(requireHash(digest, `${what}: entry digest`)), terms);
  if (!root) {
    throw new VerificationError(`${what}: ${terms.length} terms do not form a path to leaf ${leaf} of ${width}`);
  }
  if (!root.equals(requireHash(eH, `${what}: eH`))) {
    throw new VerificationError(`${what}: entry is not included at leaf ${leaf} of ${width} under eH ${eH.toString('hex')}`);
  }
}
