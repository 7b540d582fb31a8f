// One pipeline per plugin configuration (Kong starts an instance per worker and configuration;
// they all share this): encode an entry once, queue it, write it in verified batches.
import { encodeEntry, type AuditRecord } from '../capture/encode.js';
import type { AuditEntry } from '../capture/audit-entry.js';
import type { PluginConfig } from '../config/config.js';
import type { Logger } from '../log.js';
import { AuditWriter, TamperError, type WriteResult } from '../store/audit-writer.js';
import { VerificationError } from '../store/proofs/index.js';
import { Batcher } from './batcher.js';

export interface PipelineStats {
  captured: number;
  written: number;
  duplicates: number;
  refused: number;
  retries: number;
  batches: number;
  queued: number;
  lastTxId: number;
  halted: string | null;
}

export class AuditPipeline {
  readonly stats = { captured: 0, written: 0, duplicates: 0, refused: 0, retries: 0, batches: 0 };
  private readonly batcher: Batcher<AuditRecord>;
  lastUsed = Date.now();

  constructor(readonly config: PluginConfig, readonly writer: AuditWriter, private readonly logger: Logger) {
    const q = config.queue;
    this.batcher = new Batcher<AuditRecord>(writer, {
      maxBatchSize: q.max_batch_size,
      maxDelayMs: q.max_coalescing_delay * 1000,
      maxEntries: q.max_entries,
      initialRetryMs: q.initial_retry_delay * 1000,
      maxRetryMs: q.max_retry_delay * 1000,
      isFatal: (e) => e instanceof VerificationError || e instanceof TamperError,
      onWritten: (_n, res) => {
        const r = res as WriteResult;
        this.stats.written += r.written;
        this.stats.duplicates += r.duplicates;
        this.stats.batches++;
      },
      onRetry: (err, attempt, delay) => {
        this.stats.retries++;
        const msg = `write to immudb ${config.immudb_host}:${config.immudb_port}/${config.immudb_database} failed (attempt ${attempt}), retrying in ${delay} ms: ${(err as Error).message}`;
        if (attempt === 1 || attempt % 10 === 0) this.logger.warn(msg);
      },
      onFatal: (err) => this.logger.error(`audit entries are held, not written: ${(err as Error).message}`),
    });
  }

  /** Encodes and queues an entry; returns false (and logs) when it could not be queued. */
  submit(entry: AuditEntry): boolean {
    this.lastUsed = Date.now();
    this.stats.captured++;
    const record = encodeEntry(this.config.key_prefix, entry);
    if (this.batcher.add(record)) return true;
    this.stats.refused++;
    this.logger.once('error', 'queue-full', `audit queue full (${this.config.queue.max_entries} entries waiting for immudb): entry ${entry.id} refused`);
    return false;
  }

  flush(): Promise<void> {
    return this.batcher.forceFlush();
  }

  snapshot(): PipelineStats {
    return {
      ...this.stats,
      queued: this.batcher.length,
      lastTxId: this.writer.lastTxId,
      halted: this.writer.halted ? this.writer.halted.message : null,
    };
  }

  async shutdown(timeoutMs: number): Promise<number> {
    const left = await this.batcher.shutdown(timeoutMs);
    if (left) this.logger.error(`${left} audit entries were not written to immudb before shutdown`);
    return left;
  }
}
