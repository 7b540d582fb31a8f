// A proposal for `verify --all`: prove a whole range of transactions with ONE dual proof
// instead of one per transaction. The transactions are read with TxScan (values included, as a
// plain read would), and checked locally: every listed entry hashes into its header's eH
// (verifyListedEntries), and each header's prevAlh is the Alh of the transaction before it, so
// the range forms one unbroken Alh chain. One VerifiableTxById of the last transaction, proven
// against the auditor's trusted state, then anchors the end of the chain: a server that changed
// any transaction, entry or header in the range cannot produce a chain ending in the proven Alh.
// The start is anchored by the trusted state itself (its Alh must be the prevAlh of the tx after
// it) or, from tx 1, by immudb's initial Alh, sha256 of nothing.
import { createHash } from 'node:crypto';
import type { ImmudbClient } from '../../plugin/store/immudb-client.js';
import { EntryTypeAction, type Tx } from '../../plugin/store/immudb-types.js';
import {
  VerificationError, parseTxHeader, txAlh, verifyListedEntries, verifyVerifiableTx, type TrustedState,
} from '../../plugin/store/proofs/index.js';
import { toSafeInt } from '../../plugin/store/longs.js';
import { verifyListedEntriesOnce } from './verify-set-fast.js';

export interface ChainResult {
  fromTx: number;
  toTx: number;
  transactions: number;
  entries: number;
  trusted: TrustedState;
}

/**
 * Verifies txs (trusted.txId, current] (or [1, current] with no trusted state) by one Alh chain
 * and one dual proof. `pageTxs` transactions per TxScan call. `onTx` sees every verified tx.
 */
export async function verifyChain(
  client: ImmudbClient,
  trusted: TrustedState | undefined,
  opts: { pageTxs?: number; toTx?: number; onTx?: (tx: Tx, entries: number) => void; fastHashing?: boolean } = {},
): Promise<ChainResult> {
  const listed = opts.fastHashing ? verifyListedEntriesOnce : verifyListedEntries;
  const toTx = opts.toTx ?? toSafeInt((await client.currentState()).txId, 'current tx id');
  const fromTx = (trusted?.txId ?? 0) + 1;
  if (trusted && toTx < trusted.txId) throw new VerificationError(`server reports tx ${toTx}, but tx ${trusted.txId} was verified before`);
  // 1. The end of the range, proven against what we trust.
  const last = await client.verifiableTxById(toTx, trusted?.txId ?? 0, EntryTypeAction.EXCLUDE);
  const end = verifyVerifiableTx(last, trusted, { listedEntries: 'none' });
  const lastAlh = txAlh(parseTxHeader(last.tx!.header));
  // 2. The chain from the start of the range to the end.
  // Before tx 1 the Alh is sha256 of nothing (immudb's initial state).
  let prevAlh = trusted ? trusted.alh : createHash('sha256').digest();
  let expected = fromTx;
  let entries = 0;
  const page = opts.pageTxs ?? 8;
  while (expected <= toTx) {
    const txs = await client.txScan(expected, Math.min(page, toTx - expected + 1), EntryTypeAction.RAW_VALUE);
    if (txs.length === 0) throw new VerificationError(`tx ${expected} is missing from the server's history`);
    for (const tx of txs) {
      const h = parseTxHeader(tx.header, `tx ${expected} header`);
      if (h.id !== expected) throw new VerificationError(`asked for tx ${expected}, got tx ${h.id}`);
      if (!h.prevAlh.equals(prevAlh)) throw new VerificationError(`tx ${h.id}: prevAlh does not chain to tx ${h.id - 1}`);
      if (!listed(tx, h, `tx ${h.id}`)) throw new VerificationError(`tx ${h.id}: entries not listed`);
      prevAlh = txAlh(h);
      entries += h.nentries;
      opts.onTx?.(tx, h.nentries);
      expected++;
      if (expected > toTx) break;
    }
  }
  if (toTx >= fromTx && !prevAlh.equals(lastAlh)) throw new VerificationError(`the chain of txs ${fromTx}..${toTx} does not end in the proven Alh of tx ${toTx}`);
  return { fromTx, toTx, transactions: Math.max(0, toTx - fromTx + 1), entries, trusted: end };
}
