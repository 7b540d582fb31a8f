// The index's writer thread: parses the verified entries the walk hands over, appends their
// bytes to the side file and inserts their rows inside the update's SQLite transaction, while
// the main thread goes on verifying (the two run on different cores). Commits or rolls back when
// told; says so, or why it failed.
import { parentPort, workerData } from 'node:worker_threads';
import { AuditIndex, type IndexState } from './audit-index.js';
import { parseEntry } from './index-row.js';

/** Entries of several transactions packed in one transferred buffer. */
export interface RowsMessage {
  t: 'rows';
  /** Per entry: tx id, tx time (ms), key offset, key length, value offset, value length. */
  meta: Float64Array;
  bytes: ArrayBuffer;
}
/** Lifecycle entries of the walk (few: coverage reports, coverage-table.ts). */
export interface LifecycleMessage {
  t: 'lifecycle';
  rows: Array<{ key: string; json: string }>;
}
export type ToWorker = RowsMessage | LifecycleMessage | { t: 'commit'; txId: number; verifiedAt: string; added: number } | { t: 'rollback' };
export type FromWorker = { t: 'begun'; state: IndexState } | { t: 'ack'; rows: number } | { t: 'done'; state: IndexState } | { t: 'error'; message: string };

export interface WorkerInput {
  file: string;
  ident: Pick<IndexState, 'serverUuid' | 'database' | 'prefix'>;
}

const port = parentPort!;
const post = (m: FromWorker) => port.postMessage(m);
const { file, ident } = workerData as WorkerInput;

let index: AuditIndex | undefined;
try {
  index = AuditIndex.open(file, ident);
  index.begin();
  post({ t: 'begun', state: index.state() });
} catch (e) {
  post({ t: 'error', message: (e as Error).message });
}

port.on('message', (m: ToWorker) => {
  if (!index) return;
  try {
    if (m.t === 'rows') {
      const bytes = Buffer.from(m.bytes);
      const meta = m.meta;
      const n = meta.length / 6;
      for (let j = 0; j < meta.length; j += 6) {
        const [txId, txTime, ko, kl, vo, vl] = [meta[j]!, meta[j + 1]!, meta[j + 2]!, meta[j + 3]!, meta[j + 4]!, meta[j + 5]!];
        const value = bytes.subarray(vo, vo + vl);
        // Parsed once, for the row and the coverage table; the bytes go to the side file as verified.
        const { row, sequence } = parseEntry(bytes.toString('utf8', ko, ko + kl), value.toString('utf8'), txId);
        index.add(row, txTime, value, sequence);
      }
      index.flush();
      post({ t: 'ack', rows: n });
    } else if (m.t === 'lifecycle') {
      for (const r of m.rows) index.addLifecycle(r.key, r.json);
    } else {
      if (m.t === 'commit') index.commit(m.txId, m.verifiedAt, m.added);
      else index.rollback();
      const state = index.state();
      index.close();
      index = undefined;
      post({ t: 'done', state });
    }
  } catch (e) {
    index?.close(); // rolls back what the update added
    index = undefined;
    post({ t: 'error', message: (e as Error).message });
  }
});
