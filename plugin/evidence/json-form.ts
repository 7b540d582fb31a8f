// The JSON form of immudb's proof messages in evidence bundles and checkpoints: hashes as
// lowercase hex, other bytes as base64, tx ids and counts as JSON numbers. Decoding is strict
// (one spelling per byte string: no upper-case hex, no non-canonical base64), so that any changed
// character of a bundle changes the bytes the proofs are checked on. Pure functions.
import type { DualProof, InclusionProof, KVMetadata, TxHeader } from '../store/immudb-types.js';
import { parseTxHeader, VerificationError } from '../store/proofs/index.js';

/** A bundle or checkpoint part that does not hold: `part` names where (e.g. `entries[2].inclusion_proof`). */
export class EvidenceError extends VerificationError {
  override readonly name = 'EvidenceError';
  constructor(readonly part: string, message: string) {
    super(`${part}: ${message}`);
  }
}

const HEX = /^(?:[0-9a-f]{2})*$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

export function hexOf(b: Buffer): string {
  return b.toString('hex');
}

export function fromHex(s: unknown, part: string, size?: number): Buffer {
  if (typeof s !== 'string' || !HEX.test(s)) throw new EvidenceError(part, 'is not lowercase hex');
  const b = Buffer.from(s, 'hex');
  if (size !== undefined && b.length !== size) throw new EvidenceError(part, `is ${b.length} bytes, expected ${size}`);
  return b;
}

/** Standard base64 (RFC 4648 §4), refused unless it is the one canonical spelling of its bytes. */
export function fromBase64(s: unknown, part: string): Buffer {
  if (typeof s !== 'string' || !BASE64.test(s) || s.length % 4 !== 0) throw new EvidenceError(part, 'is not base64');
  const b = Buffer.from(s, 'base64');
  if (b.toString('base64') !== s) throw new EvidenceError(part, 'is not canonical base64');
  return b;
}

export interface TxHeaderJson {
  id: number;
  prev_alh: string;
  ts: number;
  version: number;
  metadata: { truncated_tx_id: number; extra: string } | null;
  nentries: number;
  eh: string;
  bl_tx_id: number;
  bl_root: string;
}

function safeInt(n: unknown, part: string): number {
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw new EvidenceError(part, 'is not a non-negative integer');
  return n;
}

/** A header the proof checks accepted, in bundle form. */
export function txHeaderJson(h: TxHeader): TxHeaderJson {
  const p = parseTxHeader(h);
  const md = h.metadata;
  const truncated = md ? Number(md.truncatedTxID ?? '0') : 0;
  const extra = md?.extra?.length ? md.extra.toString('base64') : '';
  return {
    id: p.id,
    prev_alh: hexOf(p.prevAlh),
    ts: Number(p.ts),
    version: p.version,
    metadata: truncated || extra ? { truncated_tx_id: truncated, extra } : null,
    nentries: p.nentries,
    eh: hexOf(p.eH),
    bl_tx_id: p.blTxId,
    bl_root: hexOf(p.blRoot),
  };
}

/** Back to immudb's message form; hashes are checked for shape here, the rest by parseTxHeader. */
export function txHeaderOf(j: TxHeaderJson, part: string): TxHeader {
  if (!j || typeof j !== 'object') throw new EvidenceError(part, 'is missing');
  return {
    id: String(safeInt(j.id, `${part}.id`)),
    prevAlh: fromHex(j.prev_alh, `${part}.prev_alh`, 32),
    ts: String(safeInt(j.ts, `${part}.ts`)),
    version: safeInt(j.version, `${part}.version`),
    metadata: j.metadata
      ? { truncatedTxID: String(safeInt(j.metadata.truncated_tx_id, `${part}.metadata.truncated_tx_id`)), extra: fromBase64(j.metadata.extra, `${part}.metadata.extra`) }
      : null,
    nentries: safeInt(j.nentries, `${part}.nentries`),
    eH: fromHex(j.eh, `${part}.eh`, 32),
    blTxId: String(safeInt(j.bl_tx_id, `${part}.bl_tx_id`)),
    blRoot: fromHex(j.bl_root, `${part}.bl_root`, 32),
  };
}

export interface InclusionProofJson {
  leaf: number;
  width: number;
  terms: string[];
}

export function inclusionProofJson(p: InclusionProof): InclusionProofJson {
  return { leaf: p.leaf, width: p.width, terms: (p.terms ?? []).map(hexOf) };
}

function hashes(list: unknown, part: string): Buffer[] {
  if (!Array.isArray(list)) throw new EvidenceError(part, 'is not a list of hashes');
  return list.map((h, i) => fromHex(h, `${part}[${i}]`, 32));
}

export function inclusionProofOf(j: InclusionProofJson, part: string): InclusionProof {
  if (!j || typeof j !== 'object') throw new EvidenceError(part, 'is missing');
  return { leaf: safeInt(j.leaf, `${part}.leaf`), width: safeInt(j.width, `${part}.width`), terms: hashes(j.terms, `${part}.terms`) };
}

export interface KvMetadataJson {
  deleted: boolean;
  expires_at: number | null;
  non_indexable: boolean;
}

export function kvMetadataJson(md: KVMetadata | null | undefined): KvMetadataJson | null {
  if (!md || (!md.deleted && !md.expiration && !md.nonIndexable)) return null;
  return { deleted: Boolean(md.deleted), expires_at: md.expiration ? Number(md.expiration.expiresAt) : null, non_indexable: Boolean(md.nonIndexable) };
}

export function kvMetadataOf(j: KvMetadataJson | null, part: string): KVMetadata | null {
  if (j === null || j === undefined) return null;
  return {
    deleted: j.deleted === true,
    expiration: j.expires_at === null ? null : { expiresAt: String(safeInt(j.expires_at, `${part}.expires_at`)) },
    nonIndexable: j.non_indexable === true,
  };
}

/** A dual proof without its two headers: the bundle holds them once (the entry's tx, the signed state). */
export interface DualProofJson {
  inclusion_proof: string[];
  consistency_proof: string[];
  target_bl_tx_alh: string;
  last_inclusion_proof: string[];
  linear_proof: { source_tx_id: number; target_tx_id: number; terms: string[] };
  linear_advance_proof: { linear_proof_terms: string[]; inclusion_proofs: InclusionProofJson[] } | null;
}

export function dualProofJson(p: DualProof): DualProofJson {
  const lp = p.linearProof;
  if (!lp) throw new VerificationError('dual proof without a linear proof');
  const la = p.LinearAdvanceProof;
  return {
    inclusion_proof: (p.inclusionProof ?? []).map(hexOf),
    consistency_proof: (p.consistencyProof ?? []).map(hexOf),
    target_bl_tx_alh: hexOf(p.targetBlTxAlh),
    last_inclusion_proof: (p.lastInclusionProof ?? []).map(hexOf),
    linear_proof: { source_tx_id: Number(lp.sourceTxId), target_tx_id: Number(lp.TargetTxId), terms: (lp.terms ?? []).map(hexOf) },
    linear_advance_proof: la && ((la.linearProofTerms?.length ?? 0) > 0 || (la.inclusionProofs?.length ?? 0) > 0)
      ? { linear_proof_terms: la.linearProofTerms.map(hexOf), inclusion_proofs: la.inclusionProofs.map(inclusionProofJson) }
      : null,
  };
}

export function dualProofOf(j: DualProofJson, source: TxHeader, target: TxHeader, part: string): DualProof {
  if (!j || typeof j !== 'object') throw new EvidenceError(part, 'is missing');
  const lp = j.linear_proof;
  if (!lp || typeof lp !== 'object') throw new EvidenceError(`${part}.linear_proof`, 'is missing');
  const la = j.linear_advance_proof;
  return {
    sourceTxHeader: source,
    targetTxHeader: target,
    inclusionProof: hashes(j.inclusion_proof, `${part}.inclusion_proof`),
    consistencyProof: hashes(j.consistency_proof, `${part}.consistency_proof`),
    targetBlTxAlh: fromHex(j.target_bl_tx_alh, `${part}.target_bl_tx_alh`, 32),
    lastInclusionProof: hashes(j.last_inclusion_proof, `${part}.last_inclusion_proof`),
    linearProof: {
      sourceTxId: String(safeInt(lp.source_tx_id, `${part}.linear_proof.source_tx_id`)),
      TargetTxId: String(safeInt(lp.target_tx_id, `${part}.linear_proof.target_tx_id`)),
      terms: hashes(lp.terms, `${part}.linear_proof.terms`),
    },
    LinearAdvanceProof: la
      ? {
          linearProofTerms: hashes(la.linear_proof_terms, `${part}.linear_advance_proof.linear_proof_terms`),
          inclusionProofs: (Array.isArray(la.inclusion_proofs) ? la.inclusion_proofs : []).map((p, i) => inclusionProofOf(p, `${part}.linear_advance_proof.inclusion_proofs[${i}]`)),
        }
      : null,
  };
}

/** Runs a proof check, naming the bundle part in the error it throws. */
export function checkPart<T>(part: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof EvidenceError) throw e;
    if (e instanceof VerificationError) throw new EvidenceError(part, e.message);
    throw e;
  }
}
