// Proofs over the Alh tree (immudb's "binary linking"): leaf n (1-based) holds the Alh of tx n
// and a tx header's blRoot is the root of the tree over txs 1..blTxId.
import { VerificationError } from './errors.js';
import { leafHash, nodeHash } from './hashing.js';
import { rootFromInclusionPath, rootsFromConsistencyPath } from './merkle-path.js';

/** Alh of tx `txId` is leaf txId of the tree over txs 1..treeSize whose root is `root`. */
export function verifyAhtInclusion(terms: Buffer[], txId: number, treeSize: number, alh: Buffer, root: Buffer, what = 'inclusion proof'): void {
  if (!(txId >= 1 && txId <= treeSize)) {
    throw new VerificationError(`${what}: tx ${txId} cannot be in a tree of ${treeSize} txs`);
  }
  const computed = rootFromInclusionPath(txId - 1, treeSize, leafHash(alh), terms);
  if (!computed) throw new VerificationError(`${what}: ${terms.length} terms are not a path from tx ${txId} in a tree of ${treeSize} txs`);
  if (!computed.equals(root)) throw new VerificationError(`${what}: Alh of tx ${txId} is not included in the tree of ${treeSize} txs`);
}

/** Alh of tx `treeSize` is the last leaf of the tree over txs 1..treeSize. */
export function verifyAhtLastInclusion(terms: Buffer[], treeSize: number, alh: Buffer, root: Buffer, what = 'last inclusion proof'): void {
  verifyAhtInclusion(terms, treeSize, treeSize, alh, root, what);
}

/** The tree over txs 1..newSize extends the tree over txs 1..oldSize. */
export function verifyAhtConsistency(terms: Buffer[], oldSize: number, newSize: number, oldRoot: Buffer, newRoot: Buffer, what = 'consistency proof'): void {
  const fail = (why: string) => new VerificationError(`${what} does not link the tree of ${oldSize} txs to the tree of ${newSize} txs: ${why}`);
  if (!(oldSize >= 1 && oldSize <= newSize)) throw fail('sizes out of order');
  if (oldSize === newSize) {
    // Same tree: the roots must match. immudb still sends the two children of the root.
    if (!oldRoot.equals(newRoot)) throw fail('roots differ');
    if (terms.length === 0) return;
    const [right, left] = terms;
    if (terms.length !== 2 || oldSize === 1 || !left || !right || !nodeHash(left, right).equals(newRoot)) {
      throw fail('terms do not hash to the root');
    }
    return;
  }
  const roots = rootsFromConsistencyPath(oldSize, newSize, terms);
  if (!roots) throw fail(`${terms.length} terms do not fit the two sizes`);
  if (!roots[0].equals(oldRoot)) throw fail('old root does not match');
  if (!roots[1].equals(newRoot)) throw fail('new root does not match');
}
