// Linear proofs: the Alh chain walked forward one tx at a time. A linear proof from tx s to tx t
// lists Alh(s) followed by the inner hashes of txs s+1..t. A linear advance proof covers the
// stretch of the chain that a newer Alh tree absorbed after the source's own tree: each Alh on
// it must be a leaf of the target's tree, which closes immudb's "linear fake" attack.
import type { InclusionProof, LinearAdvanceProof, LinearProof } from '../immudb-types.js';
import { verifyAhtInclusion } from './ahtree.js';
import { VerificationError } from './errors.js';
import { advanceAlh } from './tx-header.js';
import { parseTxId, requireHashList, requirePresent } from './shape.js';

export function verifyLinearProof(
  proof: LinearProof | null | undefined,
  sourceTxId: number,
  targetTxId: number,
  sourceAlh: Buffer,
  targetAlh: Buffer,
  what = 'linear proof',
): void {
  const p = requirePresent(proof, what);
  const from = parseTxId(p.sourceTxId, `${what}.sourceTxId`);
  const to = parseTxId(p.TargetTxId, `${what}.TargetTxId`);
  if (from !== sourceTxId || to !== targetTxId) {
    throw new VerificationError(`${what} is for tx ${from} to tx ${to}, expected tx ${sourceTxId} to tx ${targetTxId}`);
  }
  if (from > to) throw new VerificationError(`${what}: source tx ${from} is after target tx ${to}`);
  const terms = requireHashList(p.terms, `${what}.terms`);
  if (terms.length !== to - from + 1) {
    throw new VerificationError(`${what} from tx ${from} to tx ${to} has ${terms.length} terms, expected ${to - from + 1}`);
  }
  if (!terms[0]!.equals(sourceAlh)) throw new VerificationError(`${what} does not start at the Alh of tx ${from}`);
  let alh = terms[0]!;
  for (let i = 1; i < terms.length; i++) alh = advanceAlh(alh, from + i, terms[i]!);
  if (!alh.equals(targetAlh)) throw new VerificationError(`${what} does not lead from tx ${from} to the Alh of tx ${to}`);
}

/** Whether a linear advance proof is needed between these txs (more than one step apart). */
export function linearAdvanceNeeded(startTxId: number, endTxId: number): boolean {
  return endTxId > startTxId + 1;
}

function inclusionTerms(p: InclusionProof | null | undefined, txId: number, treeSize: number, what: string): Buffer[] {
  const ip = requirePresent(p, what);
  // immudb sends only the terms (leaf and width 0); accept explicit values only if they are right.
  const leaf = ip.leaf ?? 0;
  const width = ip.width ?? 0;
  if (!((leaf === 0 && width === 0) || (leaf === txId && width === treeSize))) {
    throw new VerificationError(`${what} claims leaf ${leaf} of ${width}, but proves tx ${txId} in a tree of ${treeSize} txs`);
  }
  return requireHashList(ip.terms, `${what}.terms`);
}

/**
 * Checks that the chain from tx startTxId+1 to tx endTxId is made of Alhs that are leaves of the
 * tree (treeRoot over txs 1..treeSize), ending at `endAlh`.
 */
export function verifyLinearAdvanceProof(
  proof: LinearAdvanceProof | null | undefined,
  startTxId: number,
  endTxId: number,
  endAlh: Buffer,
  treeRoot: Buffer,
  treeSize: number,
  what = 'linear advance proof',
): void {
  if (endTxId < startTxId) throw new VerificationError(`${what}: end tx ${endTxId} is before start tx ${startTxId}`);
  if (!linearAdvanceNeeded(startTxId, endTxId)) {
    if (proof && ((proof.linearProofTerms?.length ?? 0) > 0 || (proof.inclusionProofs?.length ?? 0) > 0)) {
      throw new VerificationError(`${what} is present although tx ${startTxId} to tx ${endTxId} needs none`);
    }
    return;
  }
  if (!proof) {
    throw new VerificationError(
      `${what} is missing but needed for tx ${startTxId} to tx ${endTxId} (servers before immudb 1.4.1 do not send it)`,
    );
  }
  const terms = requireHashList(proof.linearProofTerms, `${what}.linearProofTerms`);
  const inclusions = proof.inclusionProofs ?? [];
  const steps = endTxId - startTxId;
  if (terms.length !== steps || inclusions.length !== steps - 1) {
    throw new VerificationError(
      `${what} for tx ${startTxId} to tx ${endTxId} has ${terms.length} terms and ${inclusions.length} inclusion proofs, expected ${steps} and ${steps - 1}`,
    );
  }
  let alh = terms[0]!;
  for (let txId = startTxId + 1; txId < endTxId; txId++) {
    const i = txId - startTxId - 1;
    const ipWhat = `${what}: inclusion proof of tx ${txId}`;
    verifyAhtInclusion(inclusionTerms(inclusions[i], txId, treeSize, ipWhat), txId, treeSize, alh, treeRoot, ipWhat);
    alh = advanceAlh(alh, txId + 1, terms[i + 1]!);
  }
  if (!alh.equals(endAlh)) throw new VerificationError(`${what} does not lead to the Alh of tx ${endTxId}`);
}
