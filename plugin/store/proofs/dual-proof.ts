// Dual proofs: that the tx with Alh `targetAlh` descends from the tx with Alh `sourceAlh`.
// They combine the Alh tree (the source is a leaf of the target's tree, whose root extends the
// source's tree and ends with the tx the target links to) with the linear chain (from that last
// leaf, or from the source when it is not in the target's tree yet, up to the target), plus the
// linear advance proof for the part of the chain between the two trees.
import type { DualProof } from '../immudb-types.js';
import { verifyAhtConsistency, verifyAhtInclusion, verifyAhtLastInclusion } from './ahtree.js';
import { VerificationError } from './errors.js';
import { isZeroHash } from './hashing.js';
import { linearAdvanceNeeded, verifyLinearAdvanceProof, verifyLinearProof } from './linear.js';
import { parseTxHeader, txAlh, type ParsedTxHeader } from './tx-header.js';
import { requireHash, requireHashList, requirePresent } from './shape.js';

function requireSafeTxId(n: number, what: string, min: number): void {
  if (!Number.isSafeInteger(n) || n < min) throw new VerificationError(`${what} (${n}) is not a valid tx id`);
}

/** Parsed, checked headers of a dual proof, for callers that need them after verification. */
export interface DualProofHeaders {
  source: ParsedTxHeader;
  target: ParsedTxHeader;
}

export function verifyDualProof(
  proof: DualProof | null | undefined,
  sourceTxId: number,
  targetTxId: number,
  sourceAlh: Buffer,
  targetAlh: Buffer,
): DualProofHeaders {
  requireSafeTxId(sourceTxId, 'dual proof: source tx id', 1);
  requireSafeTxId(targetTxId, 'dual proof: target tx id', 1);
  const tag = `dual proof (tx ${sourceTxId} -> tx ${targetTxId})`;
  if (sourceTxId > targetTxId) throw new VerificationError(`${tag}: source tx is after target tx`);
  const p = requirePresent(proof, tag);
  requireHash(sourceAlh, `${tag}: source Alh`);
  requireHash(targetAlh, `${tag}: target Alh`);

  const source = parseTxHeader(p.sourceTxHeader, `${tag}: source tx header`);
  const target = parseTxHeader(p.targetTxHeader, `${tag}: target tx header`);
  if (source.id !== sourceTxId) throw new VerificationError(`${tag}: source tx header is for tx ${source.id}`);
  if (target.id !== targetTxId) throw new VerificationError(`${tag}: target tx header is for tx ${target.id}`);
  if (!txAlh(source).equals(sourceAlh)) throw new VerificationError(`${tag}: source tx header does not hash to the Alh of tx ${sourceTxId}`);
  if (!txAlh(target).equals(targetAlh)) throw new VerificationError(`${tag}: target tx header does not hash to the Alh of tx ${targetTxId}`);
  if (source.blTxId > target.blTxId) {
    throw new VerificationError(`${tag}: source links to tx ${source.blTxId}, after the target's tx ${target.blTxId}`);
  }

  const inclusion = requireHashList(p.inclusionProof, `${tag}: inclusionProof`);
  const consistency = requireHashList(p.consistencyProof, `${tag}: consistencyProof`);
  const lastInclusion = requireHashList(p.lastInclusionProof, `${tag}: lastInclusionProof`);
  const targetBlTxAlh = requireHash(p.targetBlTxAlh, `${tag}: targetBlTxAlh`);
  const sourceInTargetTree = sourceTxId < target.blTxId;

  if (sourceInTargetTree) {
    verifyAhtInclusion(inclusion, sourceTxId, target.blTxId, sourceAlh, target.blRoot,
      `${tag}: inclusion proof of tx ${sourceTxId} in the Alh tree of tx ${targetTxId}`);
  } else if (inclusion.length > 0) {
    throw new VerificationError(`${tag}: unexpected inclusion proof (tx ${sourceTxId} is not in the Alh tree of tx ${targetTxId})`);
  }

  if (source.blTxId > 0) {
    verifyAhtConsistency(consistency, source.blTxId, target.blTxId, source.blRoot, target.blRoot,
      `${tag}: consistency proof`);
  } else if (consistency.length > 0) {
    throw new VerificationError(`${tag}: unexpected consistency proof (tx ${sourceTxId} has an empty Alh tree)`);
  }

  if (target.blTxId > 0) {
    verifyAhtLastInclusion(lastInclusion, target.blTxId, targetBlTxAlh, target.blRoot,
      `${tag}: last inclusion proof (targetBlTxAlh of tx ${target.blTxId})`);
  } else if (lastInclusion.length > 0 || !isZeroHash(targetBlTxAlh)) {
    throw new VerificationError(`${tag}: unexpected last inclusion proof or targetBlTxAlh (tx ${targetTxId} has an empty Alh tree)`);
  }

  if (sourceInTargetTree) {
    verifyLinearProof(p.linearProof, target.blTxId, targetTxId, targetBlTxAlh, targetAlh, `${tag}: linear proof`);
    verifyLinearAdvanceProof(p.LinearAdvanceProof, source.blTxId, sourceTxId, sourceAlh, target.blRoot, target.blTxId,
      `${tag}: linear advance proof`);
  } else {
    verifyLinearProof(p.linearProof, sourceTxId, targetTxId, sourceAlh, targetAlh, `${tag}: linear proof`);
    verifyLinearAdvanceProof(p.LinearAdvanceProof, source.blTxId, target.blTxId, targetBlTxAlh, target.blRoot, target.blTxId,
      `${tag}: linear advance proof`);
  }
  return { source, target };
}

/**
 * The txs a linear advance proof must cover for this dual proof, or null when none is needed.
 * immudb's Go client fetches a missing one with extra VerifiableTxById calls (older servers);
 * a caller doing the same can use this range.
 */
export function linearAdvanceRange(proof: DualProof): { startTxId: number; endTxId: number } | null {
  const source = parseTxHeader(proof.sourceTxHeader, 'dual proof: source tx header');
  const target = parseTxHeader(proof.targetTxHeader, 'dual proof: target tx header');
  const startTxId = source.blTxId;
  const endTxId = Math.min(source.id, target.blTxId);
  return linearAdvanceNeeded(startTxId, endTxId) ? { startTxId, endTxId } : null;
}
