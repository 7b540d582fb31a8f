// The transactions of a range read by TxScan, page after page, with the next page asked for as
// soon as one arrives: immudb reads and sends it while the caller checks the one before (the
// walk of `verify --all` hashes every entry; overlapped, the network and the server's work cost
// it no wall time). Nothing here is trusted or checked: the pages come out as received, in
// order, and the caller's checks decide (a page received ahead is only ever used after the
// pages before it passed, and is dropped when the caller stops).
import type { ImmudbClient } from './immudb-client.js';
import { ImmudbError } from './immudb-client.js';
import { EntryTypeAction, type Tx } from './immudb-types.js';
import { VerificationError } from './proofs/errors.js';

/** Transactions per TxScan call (halved while a page is too large for one message). */
export const SCAN_PAGE_TXS = 8;
/**
 * Transactions of the first call; each next call asks for twice as many, up to SCAN_PAGE_TXS.
 * The first page is the one nothing overlaps (immudb reads and sends it while the caller waits):
 * a small one lets the checks start early (~10 ms for a 1024-entry tx instead of ~70 for 8).
 */
export const FIRST_PAGE_TXS = 1;
/** gRPC status of a message over the size limit. */
const GRPC_RESOURCE_EXHAUSTED = 8;

export interface TxScanPage {
  /** The id asked for first; `txs` should start with it (the caller checks). */
  start: number;
  txs: Tx[];
}

/**
 * Pages of transactions `first`..`last` (values included), one page read ahead. Each page holds
 * at most the transactions asked for; the next page starts after them. An empty page before
 * `last` is an error (the server reported `last` as committed).
 */
export async function* txScanPages(
  client: Pick<ImmudbClient, 'txScan'>,
  first: number,
  last: number,
  opts: { pageTxs?: number; firstPageTxs?: number; action?: EntryTypeAction } = {},
): AsyncGenerator<TxScanPage, void, undefined> {
  let max = opts.pageTxs ?? SCAN_PAGE_TXS;
  let page = Math.min(max, opts.firstPageTxs ?? FIRST_PAGE_TXS);
  const action = opts.action ?? EntryTypeAction.RAW_VALUE;
  const ask = (start: number) => {
    const limit = Math.min(page, last - start + 1);
    const reply = client.txScan(start, limit, action);
    // Settled later (or dropped when the caller stops): never an unhandled rejection meanwhile.
    reply.catch(() => undefined);
    return { start, limit, reply };
  };
  let next: ReturnType<typeof ask> | undefined = first <= last ? ask(first) : undefined;
  while (next) {
    const { start, limit, reply } = next;
    let txs: Tx[];
    try {
      txs = await reply;
    } catch (e) {
      // A page too large for one message: fewer transactions per call, from the same tx.
      if (limit > 1 && e instanceof ImmudbError && e.code === GRPC_RESOURCE_EXHAUSTED) {
        page = max = limit >> 1;
        next = ask(start);
        continue;
      }
      throw e;
    }
    if (!txs?.length) throw new VerificationError(`tx ${start}: the scan returned no transactions, but the server reports tx ${last}`);
    const got = txs.length > limit ? txs.slice(0, limit) : txs;
    const after = start + got.length;
    page = Math.min(max, page * 2);
    next = after <= last ? ask(after) : undefined;
    yield { start, txs: got };
  }
}
