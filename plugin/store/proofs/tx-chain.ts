// A range of consecutive transactions checked as one Alh chain, as read by a plain TxScan:
// every header's Alh is recomputed here, every header's prevAlh must be the Alh recomputed for
// the transaction before it, and every transaction must list all its entries, which must hash
// (values included) into its header's eH. The chain is then anchored by the caller:
//  - at its start by a known Alh (the trusted state's, when the range starts right after it, or
//    immudb's initial Alh, sha256 of nothing, when the range starts at tx 1);
//  - wherever it passes the trusted state, by the trusted Alh itself;
//  - at its end by the Alh a dual proof established for the last transaction (`finish`).
// Since Alh(n) = sha256(n ‖ prevAlh(n) ‖ innerHash(header n)), an Alh proven for the last
// transaction fixes its header, hence the Alh of the one before, and so on back to the first:
// a server that altered any header, entry, value or the order of the range cannot produce a
// chain ending in the proven Alh without a sha256 collision.
import type { Tx } from '../immudb-types.js';
import { VerificationError } from './errors.js';
import { sha256 } from './hashing.js';
import { parseTxHeader, txAlh, type ParsedTxHeader } from './tx-header.js';
import { verifyListedEntries } from './tx-entries.js';
import { parseTxId, requireHash, requirePresent } from './shape.js';

/** immudb's Alh before its first transaction: the prevAlh of tx 1. */
export const INITIAL_ALH: Buffer = sha256();

export interface ChainedTx {
  header: ParsedTxHeader;
  /** The Alh recomputed from the header (and chained to the transaction before it). */
  alh: Buffer;
}

export class TxChain {
  private next: number;
  private prevAlh: Buffer | undefined;
  private readonly expected = new Map<number, Buffer>();

  /**
   * A chain starting at tx `firstTxId`. `anchor`, when known, is the Alh of tx firstTxId - 1
   * (INITIAL_ALH before tx 1): the first header's prevAlh must equal it.
   */
  constructor(firstTxId: number, anchor?: Buffer) {
    this.next = parseTxId(firstTxId, 'tx chain: first tx id');
    this.prevAlh = anchor ? requireHash(anchor, `tx chain: Alh of tx ${this.next - 1}`) : undefined;
  }

  /** The id the next transaction must have. */
  get nextTxId(): number {
    return this.next;
  }

  /** The Alh of the last transaction appended (or the anchor). */
  get lastAlh(): Buffer | undefined {
    return this.prevAlh;
  }

  /** When the chain reaches tx `txId`, its Alh must be `alh` (a state trusted before). */
  expectAlh(txId: number, alh: Buffer): void {
    const id = parseTxId(txId, 'tx chain: expected tx id');
    const a = requireHash(alh, `tx chain: expected Alh of tx ${id}`);
    if (id < this.next) throw new VerificationError(`tx chain: tx ${id} is before the start of the chain (tx ${this.next})`);
    this.expected.set(id, Buffer.from(a));
  }

  /** Checks the next transaction of the scan and links it to the chain. */
  append(tx: Tx | null | undefined): ChainedTx {
    const id = this.next;
    const t = requirePresent(tx, `tx ${id}`);
    const header = parseTxHeader(t.header, `tx ${id} header`);
    if (header.id !== id) {
      throw new VerificationError(`tx ${id}: the scan returned tx ${header.id} in its place (a transaction dropped, repeated or out of order)`);
    }
    if (this.prevAlh && !header.prevAlh.equals(this.prevAlh)) {
      throw new VerificationError(`tx ${id}: its header's prevAlh is not the Alh of tx ${id - 1}: the chain of headers is broken`);
    }
    if (!verifyListedEntries(t, header, `tx ${id}`)) {
      throw new VerificationError(`tx ${id} lists none of its ${header.nentries} entries; they were asked for`);
    }
    const alh = txAlh(header);
    const want = this.expected.get(id);
    if (want && !want.equals(alh)) {
      throw new VerificationError(`tx ${id}: its header does not hash to the Alh trusted for tx ${id}`);
    }
    this.prevAlh = alh;
    this.next = id + 1;
    return { header, alh };
  }

  /**
   * Closes the chain at tx `lastTxId`, whose Alh `provenAlh` a dual proof established: the
   * scan must have reached it, and the recomputed chain must end in that Alh.
   */
  finish(lastTxId: number, provenAlh: Buffer): void {
    const last = parseTxId(lastTxId, 'tx chain: last tx id');
    const proven = requireHash(provenAlh, `tx chain: proven Alh of tx ${last}`);
    if (this.next - 1 !== last) {
      throw new VerificationError(`the scan ended at tx ${this.next - 1}, but tx ${last} was proven: transactions are missing from the scan`);
    }
    for (const id of this.expected.keys()) {
      if (id > last) throw new VerificationError(`tx chain: the trusted tx ${id} is after the end of the chain (tx ${last})`);
    }
    if (!this.prevAlh || !this.prevAlh.equals(proven)) {
      throw new VerificationError(`the chain of headers up to tx ${last} does not end in the Alh proven for tx ${last}`);
    }
  }
}
