// Acceptance of the server's verifiable answers against a trusted state, as a verified write,
// tx read or key read must do before believing them. Each returns the state to trust next.
import type { VerifiableEntry, VerifiableTx } from '../immudb-types.js';
import { verifyDualProof } from './dual-proof.js';
import { entryDigest } from './entry-digest.js';
import { verifyEntryInclusion } from './entry-inclusion.js';
import { VerificationError } from './errors.js';
import { parseTxHeader, txAlh } from './tx-header.js';
import { type ExpectedEntry, verifyListedEntries, verifyTxEntries } from './tx-entries.js';
import { parseTxId, requireBytes, requireHash, requirePresent } from './shape.js';

/** The state a client trusts: a tx id and the Alh (accumulative linear hash) up to it. */
export interface TrustedState {
  txId: number;
  alh: Buffer;
}

/** A trusted state with tx id 0 (or none) means: nothing trusted yet. */
function checkTrusted(trusted: TrustedState | null | undefined): TrustedState | undefined {
  if (!trusted) return undefined;
  const txId = parseTxId(trusted.txId, 'trusted state: txId', 0);
  if (txId === 0) return undefined;
  return { txId, alh: requireHash(trusted.alh, `trusted state (tx ${txId}): alh`) };
}

export interface VerifyTxOptions {
  /**
   * Which entries the tx must list: 'all' (asked for with RAW_VALUE or ONLY_DIGEST), 'none'
   * (EXCLUDE) or, when not given, either all or none. Listed entries are always checked.
   */
  listedEntries?: 'all' | 'none';
}

/**
 * Verifies a VerifiableTx (from VerifiableSet or VerifiableTxById) against the trusted state:
 * the listed entries (if any) rebuild eH, and the dual proof links the trusted tx and this tx in
 * whichever order they are. Without a trusted state the server must have proved the tx against
 * itself (proveSinceTx 0): nothing anchors it then, but the proof must still be consistent.
 * Returns the newer of the two states.
 */
export function verifyVerifiableTx(
  vtx: VerifiableTx | null | undefined,
  trusted?: TrustedState | null,
  options: VerifyTxOptions = {},
): TrustedState {
  const v = requirePresent(vtx, 'verifiable tx');
  const tx = requirePresent(v.tx, 'verifiable tx: tx');
  const header = parseTxHeader(tx.header, 'verifiable tx: tx header');
  const alh = txAlh(header);
  const listed = verifyListedEntries(tx, header, `verifiable tx ${header.id}`);
  if (options.listedEntries === 'all' && !listed) {
    throw new VerificationError(`verifiable tx ${header.id} lists none of its ${header.nentries} entries, all were asked for`);
  }
  if (options.listedEntries === 'none' && listed) {
    throw new VerificationError(`verifiable tx ${header.id} lists entries although none were asked for`);
  }
  const t = checkTrusted(trusted);
  if (!t) {
    verifyDualProof(v.dualProof, header.id, header.id, alh, alh);
    return { txId: header.id, alh };
  }
  if (t.txId <= header.id) {
    verifyDualProof(v.dualProof, t.txId, header.id, t.alh, alh);
    return { txId: header.id, alh };
  }
  verifyDualProof(v.dualProof, header.id, t.txId, alh, t.alh);
  return { txId: t.txId, alh: Buffer.from(t.alh) };
}

/**
 * Verifies the answer to a VerifiableSet of `written`: the new tx holds exactly those entries,
 * comes after the trusted tx, and descends from it. One pass: the entries are hashed once
 * (verifyTxEntries also refuses resolved entries, as verifyVerifiableTx would), then the dual
 * proof links the trusted tx to the new one.
 */
export function verifyVerifiableSet(vtx: VerifiableTx | null | undefined, written: readonly ExpectedEntry[], trusted?: TrustedState | null): TrustedState {
  const v = requirePresent(vtx, 'verifiable tx');
  const header = verifyTxEntries(v.tx, written);
  const t = checkTrusted(trusted);
  if (t && t.txId >= header.id) {
    throw new VerificationError(`verified write: new tx ${header.id} is not after the trusted tx ${t.txId}`);
  }
  const alh = txAlh(header);
  // Without a trusted state the server proves the tx against itself (proveSinceTx 0).
  verifyDualProof(v.dualProof, t ? t.txId : header.id, header.id, t ? t.alh : alh, alh);
  return { txId: header.id, alh };
}

/**
 * Verifies a VerifiableEntry (VerifiableGet): the entry is included in its tx, and that tx is
 * linked to the trusted state. Pass the requested key (and atTx if any): the digest is computed
 * from the requested key, so an answer for another key cannot pass. References are refused.
 * The tx must list all its entries (immudb sends their digests with every VerifiableGet).
 */
export function verifyVerifiableEntry(
  ve: VerifiableEntry | null | undefined,
  trusted?: TrustedState | null,
  request?: { key?: Buffer; atTx?: number },
): TrustedState {
  const v = requirePresent(ve, 'verifiable entry');
  const entry = requirePresent(v.entry, 'verifiable entry: entry');
  if (entry.referencedBy) throw new VerificationError('verifiable entry: references are not supported by this verifier');
  const entryTx = parseTxId(entry.tx, 'verifiable entry: entry.tx');
  const key = requireBytes(entry.key, 'verifiable entry: entry.key');
  if (request?.key && !key.equals(request.key)) {
    throw new VerificationError(`verifiable entry: entry is for key ${key.toString('hex')}, not the requested ${request.key.toString('hex')}`);
  }
  if (request?.atTx && entryTx !== request.atTx) {
    throw new VerificationError(`verifiable entry: entry is from tx ${entryTx}, not the requested tx ${request.atTx}`);
  }
  const vtx = requirePresent(v.verifiableTx, 'verifiable entry: verifiableTx');
  const header = parseTxHeader(requirePresent(vtx.tx, 'verifiable entry: tx').header, 'verifiable entry: tx header');
  if (header.id !== entryTx) throw new VerificationError(`verifiable entry: entry is from tx ${entryTx} but the proof is for tx ${header.id}`);
  const what = `entry inclusion proof (key ${(request?.key ?? key).toString('hex')} in tx ${entryTx})`;
  const digest = entryDigest(header.version, { userKey: request?.key ?? key, userValue: entry.value, metadata: entry.metadata }, what);
  verifyEntryInclusion(v.inclusionProof, digest, header.eH, header.nentries, what);
  // VerifiableGet always lists the digests of all the tx's entries.
  return verifyVerifiableTx(vtx, trusted, { listedEntries: 'all' });
}
