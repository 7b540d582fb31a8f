// Brings the index up to date by the same verified walk as `verify --all` (AuditReader.verifyAll,
// from the first transaction not yet indexed): rows are added as transactions are checked and
// committed, with the tx they are complete up to, only when the whole range verified.
import type { AuditReader } from '../verify/verified-read.js';
import type { AuditIndex, IndexState } from './audit-index.js';
import { indexRow } from './index-row.js';

export interface UpdateResult {
  state: IndexState;
  /** Transactions and audit entries read by this run. */
  transactions: number;
  entries: number;
}

export async function updateIndex(reader: AuditReader, index: AuditIndex, now: () => Date = () => new Date()): Promise<UpdateResult> {
  const from = index.state().txId + 1;
  index.begin();
  let added = 0;
  try {
    const r = await reader.verifyAll({
      fromTx: from,
      onEntries: (tx, entries) => {
        for (const e of entries) {
          const json = e.value.toString('utf8');
          index.add(indexRow(e.key.toString('utf8'), json, tx.id), tx.time, json);
        }
        added += entries.length;
      },
    });
    // Nothing new: the state stays as the last run that proved it left it.
    if (r.transactions === 0) index.rollback();
    else index.commit(r.toTx, now().toISOString(), added);
    return { state: index.state(), transactions: r.transactions, entries: added };
  } catch (e) {
    index.rollback();
    throw e;
  }
}
