// One pipeline per immudb destination (host, port, database, user): every plugin configuration
// and worker instance that writes there shares it. An entry is made durable in the spool, then
// queued in memory (bounded); when memory is full the spool alone holds it and the queue is
// refilled from disk as it drains, so memory stays flat while immudb is down. A batch leaves
// the spool once immudb has proven it.
import type { AuditRecord } from '../capture/encode.js';
import type { QueueConfig } from '../config/config.js';
import type { Logger } from '../log.js';
import { AuditWriter, type WriteResult } from '../store/audit-writer.js';
import { VerificationError } from '../store/proofs/index.js';
import { Batcher } from './batcher.js';
import { comparePos, Spool, SpoolFullError, type SpoolPosition, type SpooledRecord } from './spool.js';
import type { AuditTracing, BatchSpan, EntrySpanRef } from '../telemetry/tracing.js';

/** A record in memory: as spooled, plus the entry's span (for links) when it was traced. */
export interface QueuedRecord extends SpooledRecord {
  span?: EntrySpanRef;
}

export interface PipelineTracing {
  tracing: AuditTracing;
  destination: { host: string; port: number; database: string };
}

export interface PipelineStats {
  captured: number;
  spooled: number;
  written: number;
  verified_batches: number;
  duplicates: number;
  refused: number;
  retries: number;
  queued_memory: number;
  spool_entries: number;
  spool_bytes: number;
  oldest_unacked_ms: number | null;
  last_tx_id: number;
  halted: string | null;
}

export class AuditPipeline {
  readonly stats = { captured: 0, spooled: 0, written: 0, duplicates: 0, refused: 0, retries: 0, batches: 0 };
  private readonly batcher: Batcher<QueuedRecord>;
  /** The span of each batch in flight, across its retries. */
  private readonly batchSpans = new WeakMap<readonly QueuedRecord[], BatchSpan>();
  /** Records up to this position are in memory (or written); later ones only on disk. */
  private inMemoryUntil: SpoolPosition | undefined;
  private overflow: boolean;
  private readonly lowWater: number;

  constructor(
    readonly queue: QueueConfig,
    readonly spool: Spool,
    readonly writer: AuditWriter,
    private readonly logger: Logger,
    readonly onBatch?: (batch: readonly SpooledRecord[], result: WriteResult, ms: number) => void,
    private readonly tracing?: PipelineTracing,
  ) {
    this.lowWater = Math.max(1, Math.floor(queue.max_entries / 2));
    this.batcher = new Batcher<QueuedRecord>(
      { write: (batch) => this.traced(batch) },
      {
        maxBatchSize: queue.max_batch_size,
        maxDelayMs: queue.max_coalescing_delay * 1000,
        maxEntries: queue.max_entries,
        initialRetryMs: queue.initial_retry_delay * 1000,
        maxRetryMs: queue.max_retry_delay * 1000,
        isFatal: (e) => e instanceof VerificationError,
        onWritten: (batch, res, ms) => this.written(batch, res as WriteResult, ms),
        onRetry: (err, attempt, delay) => {
          this.stats.retries++;
          if (attempt === 1 || attempt % 10 === 0) {
            this.logger.warn(`write to immudb failed (attempt ${attempt}), retrying in ${delay} ms; entries stay in the spool: ${(err as Error).message}`);
          }
        },
        onFatal: (err) => this.logger.error(`audit entries are held in the spool, not written: ${(err as Error).message}`),
      },
    );
    // Whatever a previous run left in the spool is replayed first.
    this.overflow = spool.pendingRecords > 0;
    if (this.overflow) this.refill();
  }

  /**
   * Makes a record durable and queues it. Resolves true once it is in the spool; false when it
   * was refused (spool full or unwritable), which is logged and counted, never silent.
   */
  async submit(record: AuditRecord, span?: EntrySpanRef): Promise<boolean> {
    this.stats.captured++;
    let pos: SpoolPosition;
    const at = Date.now();
    try {
      pos = await this.spool.append(record.key, record.value, at);
    } catch (e) {
      this.stats.refused++;
      const kind = e instanceof SpoolFullError ? 'spool-full' : 'spool-error';
      this.logger.once('error', kind, `audit entry ${record.id} REFUSED, not recorded: ${(e as Error).message}`);
      return false;
    }
    this.stats.spooled++;
    if (this.inMemoryUntil && comparePos(pos, this.inMemoryUntil) <= 0) return true; // already read back from disk
    if (!this.overflow && this.batcher.add({ key: record.key, value: record.value, at, pos, ...(span ? { span } : {}) })) {
      this.inMemoryUntil = pos;
    } else {
      this.overflow = true;
    }
    return true;
  }

  /** One write attempt of a batch, inside the batch's `audit.write` span when it is traced. */
  private async traced(batch: QueuedRecord[]): Promise<WriteResult> {
    const t = this.tracing;
    let span = this.batchSpans.get(batch);
    if (!span && t && batch.some((r) => r.span)) {
      span = t.tracing.batchSpan(t.destination, batch.map((r) => r.span));
      this.batchSpans.set(batch, span);
    }
    const attempt = (this.attempts.get(batch) ?? 0) + 1;
    this.attempts.set(batch, attempt);
    try {
      const res = await this.writer.write(batch);
      span?.ok(res.txId, res.written, res.duplicates);
      return res;
    } catch (e) {
      if (e instanceof VerificationError) span?.fail(e);
      else span?.retry(e, attempt);
      throw e;
    }
  }

  private readonly attempts = new WeakMap<readonly QueuedRecord[], number>();

  private written(batch: readonly SpooledRecord[], res: WriteResult, ms: number) {
    this.stats.written += res.written;
    this.stats.duplicates += res.duplicates;
    this.stats.batches++;
    this.spool.ack(batch[batch.length - 1]!.pos, batch.length);
    this.onBatch?.(batch, res, ms);
    if (this.overflow && this.batcher.length <= this.lowWater) this.refill();
  }

  /** Moves records that only the spool holds into memory, in order, while there is room. */
  private refill() {
    while (this.overflow) {
      const room = this.queue.max_entries - this.batcher.length;
      if (room <= 0) return;
      const recs = this.spool.read(this.inMemoryUntil, Math.min(room, 1024));
      for (const r of recs) {
        if (!this.batcher.add(r)) return;
        this.inMemoryUntil = r.pos;
      }
      if (recs.length < Math.min(room, 1024)) this.overflow = false;
    }
  }

  /** Resolves when everything submitted so far is written and proven. */
  async flush(): Promise<void> {
    for (;;) {
      await this.batcher.forceFlush();
      if (!this.overflow) return;
      this.refill();
    }
  }

  snapshot(): PipelineStats {
    const head = this.batcher.pending()[0];
    return {
      captured: this.stats.captured,
      spooled: this.stats.spooled,
      written: this.stats.written,
      verified_batches: this.stats.batches,
      duplicates: this.stats.duplicates,
      refused: this.stats.refused,
      retries: this.stats.retries,
      queued_memory: this.batcher.length,
      spool_entries: this.spool.pendingRecords,
      spool_bytes: this.spool.bytes,
      oldest_unacked_ms: head ? Date.now() - head.at : null,
      last_tx_id: this.writer.lastTxId,
      halted: this.writer.halted ? this.writer.halted.message : null,
    };
  }

  /** Flushes for at most timeoutMs; what is left stays in the spool for the next start. */
  async shutdown(timeoutMs: number): Promise<number> {
    await this.batcher.shutdown(timeoutMs);
    await this.spool.close();
    const left = this.spool.pendingRecords;
    if (left) this.logger.warn(`${left} audit entries stay in the spool (${this.spool.dir}) and are written on the next start`);
    return left;
  }
}
