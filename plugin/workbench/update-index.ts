// Brings the index up to date by the same verified walk as `verify --all` (AuditReader.verifyAll,
// from the first transaction not yet indexed). The walk hands each checked transaction's entries
// to the index's writer thread (index-worker.ts), which appends their bytes to the index's side
// file and inserts their rows inside one SQLite transaction; that commits, with the tx the index
// is then complete up to and the side file's length, only when the whole range verified, and is
// rolled back otherwise (the side file truncated back to its committed length).
import { Worker } from 'node:worker_threads';
import type { AuditReader, VerifiedEntry } from '../reader/audit-reader.js';
import type { IndexState } from './audit-index.js';
import type { FromWorker, ToWorker, WorkerInput } from './index-worker.js';

export interface UpdateResult {
  state: IndexState;
  /** Transactions and audit entries read by this run. */
  transactions: number;
  entries: number;
  /** Wall time of the verified walk (rows inserted meanwhile) and of the commit after it, ms. */
  walkMs: number;
  commitMs: number;
}

export interface UpdateOptions {
  now?: () => Date;
  /** Told how many rows the writer has added (inside the uncommitted update). */
  onRows?: (rows: number) => void;
  /** Entries per message to the writer (default 512). */
  batch?: number;
}

const BATCH = 512;
/** The most entries handed over but not yet inserted before the walk waits for the writer. */
const MAX_IN_FLIGHT = 16_384;

/** The writer thread and its answers. */
class IndexWriter {
  private readonly worker: Worker;
  private failure: Error | undefined;
  private inFlight = 0;
  private waiters: Array<{ resolve: () => void; reject: (e: Error) => void; until: () => boolean }> = [];
  private replies: FromWorker[] = [];

  constructor(input: WorkerInput, private readonly onRows?: (rows: number) => void) {
    this.worker = new Worker(new URL('./index-worker.js', import.meta.url), { workerData: input });
    this.worker.on('message', (m: FromWorker) => this.receive(m));
    this.worker.on('error', (e) => this.fail(e));
    this.worker.on('exit', (code) => this.fail(new Error(`the index writer thread exited (code ${code})`)));
  }

  private receive(m: FromWorker) {
    if (m.t === 'error') return this.fail(new Error(`index: ${m.message}`));
    if (m.t === 'ack') {
      this.inFlight -= m.rows;
      this.onRows?.(m.rows);
    } else this.replies.push(m);
    this.settle();
  }

  private fail(e: Error) {
    this.failure ??= e;
    this.settle();
  }

  private settle() {
    this.waiters = this.waiters.filter((w) => {
      if (this.failure) w.reject(this.failure);
      else if (w.until()) w.resolve();
      else return true;
      return false;
    });
  }

  private wait(until: () => boolean): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (until()) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject, until }));
  }

  /** The next 'begun' or 'done' answer. */
  async reply<T extends 'begun' | 'done'>(t: T): Promise<Extract<FromWorker, { t: T }>> {
    await this.wait(() => this.replies.some((r) => r.t === t));
    return this.replies.splice(this.replies.findIndex((r) => r.t === t), 1)[0] as Extract<FromWorker, { t: T }>;
  }

  send(m: ToWorker, transfer: ArrayBuffer[] = []) {
    if (this.failure) throw this.failure;
    this.worker.postMessage(m, transfer);
  }

  /** Packs entries into one buffer (transferred, not copied) and hands them over. */
  sendRows(rows: ReadonlyArray<{ txId: number; txTime: number; entry: VerifiedEntry }>) {
    let size = 0;
    for (const r of rows) size += r.entry.key.length + r.entry.value.length;
    const bytes = Buffer.allocUnsafeSlow(size);
    const meta = new Float64Array(rows.length * 6);
    let at = 0;
    for (let i = 0, m = 0; i < rows.length; i++) {
      const { txId, txTime, entry: { key, value } } = rows[i]!;
      meta[m++] = txId;
      meta[m++] = txTime;
      meta[m++] = at;
      meta[m++] = key.length;
      meta[m++] = at + key.length;
      meta[m++] = value.length;
      key.copy(bytes, at);
      value.copy(bytes, at + key.length);
      at += key.length + value.length;
    }
    this.inFlight += rows.length;
    this.send({ t: 'rows', meta, bytes: bytes.buffer as ArrayBuffer }, [bytes.buffer as ArrayBuffer, meta.buffer]);
  }

  /** Resolves once the writer has caught up enough (rejects when it failed). */
  backlog(): Promise<void> | undefined {
    if (this.failure) throw this.failure;
    return this.inFlight > MAX_IN_FLIGHT ? this.wait(() => this.inFlight <= MAX_IN_FLIGHT / 2) : undefined;
  }

  stop(): Promise<number> {
    this.worker.removeAllListeners('exit');
    return this.worker.terminate();
  }
}

export async function updateIndex(reader: AuditReader, input: WorkerInput, opts: UpdateOptions = {}): Promise<UpdateResult> {
  const writer = new IndexWriter(input, opts.onRows);
  const t0 = performance.now();
  let began = false;
  try {
    const { state: before } = await writer.reply('begun');
    began = true;
    let batch: Array<{ txId: number; txTime: number; entry: VerifiedEntry }> = [];
    let added = 0;
    const flush = () => {
      if (batch.length) writer.sendRows(batch);
      batch = [];
    };
    const r = await reader.verifyAll({
      fromTx: before.txId + 1,
      onEntries: (tx, entries) => {
        for (const entry of entries) batch.push({ txId: tx.id, txTime: tx.time, entry });
        added += entries.length;
        if (batch.length >= (opts.batch ?? BATCH)) flush();
        return writer.backlog();
      },
      // Lifecycle entries for coverage reports (coverage-table.ts), in walk order with the rows.
      onLifecycle: (_tx, records) => {
        flush();
        writer.send({ t: 'lifecycle', rows: records.map((r) => ({ key: r.key.toString('utf8'), json: r.value.toString('utf8') })) });
      },
    });
    flush();
    const t1 = performance.now();
    // Nothing new: the state stays as the last run that proved it left it.
    if (r.transactions === 0) writer.send({ t: 'rollback' });
    else writer.send({ t: 'commit', txId: r.toTx, verifiedAt: (opts.now?.() ?? new Date()).toISOString(), added });
    began = false;
    const { state } = await writer.reply('done');
    return { state, transactions: r.transactions, entries: added, walkMs: t1 - t0, commitMs: performance.now() - t1 };
  } catch (e) {
    if (began) {
      try {
        writer.send({ t: 'rollback' });
        await writer.reply('done');
      } catch {
        // The writer failed: terminating it drops its connection, which rolls the update back.
      }
    }
    throw e;
  } finally {
    await writer.stop();
  }
}
