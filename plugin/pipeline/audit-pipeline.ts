// One pipeline per immudb destination (host, port, database): every plugin configuration
// and worker instance that writes there shares it. An entry is made durable in the spool, then
// queued in memory (bounded); when memory is full the spool alone holds it and the queue is
// refilled from disk as it drains. While the writer cannot write, memory keeps only the batch
// being retried: the spool is the buffer, so memory stays flat however long immudb is down. A
// batch leaves the spool once immudb has proven it.
//
// When the spool cannot write (disk full, I/O error, no permission, spool_max_bytes reached),
// entries are held in memory (at most queue.max_entries) and written to immudb directly through
// the verified writer; each goes back into the spool as soon as it takes writes again. submit()
// of a held entry resolves once it is proven in immudb or spooled again. Kong cannot be told
// that an entry was refused, so only when the spool and immudb both fail and that memory is
// full is an entry lost: counted, logged, and recorded for the auditors in a loss record
// (loss-record.ts) once something can be written again.
import { hostname } from 'node:os';
import type { AuditRecord, SequenceRef } from '../capture/encode.js';
import type { QueueConfig } from '../config/config.js';
import type { Logger } from '../log.js';
import { AuditWriter, type KeyValue, type WriteResult } from '../store/audit-writer.js';
import { VerificationError } from '../store/proofs/index.js';
import { Batcher } from './batcher.js';
import { comparePos, Spool, SpoolFullError, type SpoolPosition, type SpooledRecord } from './spool.js';
import { describeNumbers, encodeLossRecord, keyPrefixOf, noteLoss, parseLossWindows, type LossWindow } from './loss-record.js';
import type { AuditTracing, BatchSpan, EntrySpanRef } from '../telemetry/tracing.js';
import type { PipelineStats } from '../telemetry/metrics.js';
import { WriteHealth } from '../telemetry/write-health.js';
import { processSettingsLenient } from '../settings.js';

/** A record in memory: as spooled, plus the entry's span (for links) when it was traced. */
export interface QueuedRecord extends SpooledRecord {
  span?: EntrySpanRef;
}

/** An entry the spool could not take, held in memory until proven or spooled again. */
interface HeldEntry extends KeyValue {
  at: number;
  span?: EntrySpanRef;
  settle: (ok: boolean) => void;
  /** The entry's number, named in the loss record if it is lost at shutdown. */
  sequence?: SequenceRef | null;
  /** Set on a loss record: the window it records. */
  loss?: LossWindow;
}

export interface PipelineTracing {
  tracing: AuditTracing;
  destination: { host: string; port: number; database: string };
}

const isFatal = (e: unknown) => e instanceof VerificationError;
const LIFECYCLE_KEY = ':lifecycle:';

/** Entries read back from the spool at a time (a few batches ahead of the writer), and the level that triggers it. */
function refillLevels(queue: QueueConfig): [number, number] {
  const target = Math.min(queue.max_entries, 4 * queue.max_batch_size);
  return [target, Math.max(1, Math.floor(target / 2))];
}

export class AuditPipeline {
  readonly stats = { captured: 0, spooled: 0, written: 0, duplicates: 0, refused: 0, lost: 0, lossRecords: 0, retries: 0, batches: 0 };
  private readonly batcher: Batcher<QueuedRecord>;
  /** The span of each batch in flight, across its retries. */
  private readonly batchSpans = new WeakMap<readonly KeyValue[], BatchSpan>();
  private readonly attempts = new WeakMap<readonly KeyValue[], number>();
  /** Records up to this position are in memory (or written); later ones only on disk. */
  private inMemoryUntil: SpoolPosition | undefined;
  private overflow: boolean;
  /** Bytes of the entries held in memory (queue.max_bytes). */
  private memoryBytes = 0;
  /** See refillLevels. */
  private refillTarget: number;
  private lowWater: number;
  /** Entries the spool could not take, oldest first (loss records in front). */
  private held: HeldEntry[] = [];
  /** Entries are being held (logged when it starts and when it ends). */
  private holding = false;
  private heldRunning = false;
  private wakeHeld: (() => void) | undefined;
  private stopped = false;
  private lastWriteError = 'held entries not written yet';
  /** Losses not yet handed over as loss records, per key prefix. */
  private readonly openLosses = new Map<string, LossWindow>();
  /** Loss records handed over but not yet durable (spooled or proven). */
  private readonly unrecorded = new Set<LossWindow>();
  private lossEpisode: { count: number; reason: string } | undefined;
  private refillTimer: NodeJS.Timeout | undefined;
  private ledgerTimer: NodeJS.Timeout | undefined;
  /** Writing, retrying or halted, and the last error (docs/operations.md, "Alerts"). */
  readonly health: WriteHealth;
  /** The last spool append was refused (fail-closed routes answer 503 until one succeeds). */
  spoolRefusing = false;

  constructor(
    public queue: QueueConfig,
    readonly spool: Spool,
    readonly writer: AuditWriter,
    private readonly logger: Logger,
    readonly onBatch?: (batch: readonly KeyValue[], result: WriteResult, ms: number) => void,
    private readonly tracing?: PipelineTracing,
    private readonly node: string = processSettingsLenient().nodeId ?? hostname(),
  ) {
    [this.refillTarget, this.lowWater] = refillLevels(queue);
    this.health = new WriteHealth(logger);
    this.batcher = new Batcher<QueuedRecord>(
      { write: (batch) => this.traced(batch) },
      {
        ...batcherLimits(queue),
        isFatal,
        onWritten: (batch, res, ms) => this.written(batch, res as WriteResult, ms),
        onRetry: (err, attempt, delay) => {
          this.stats.retries++;
          this.lastWriteError = (err as Error).message;
          this.health.failed(err);
          this.shed();
          if (attempt === 1 || attempt % 10 === 0) {
            this.logger.warn(`write to immudb failed (attempt ${attempt}), retrying in ${delay} ms; entries stay in the spool: ${(err as Error).message}`);
          }
        },
        onFatal: (err) => {
          this.health.failed(err);
          this.shed();
          this.logger.error(`audit entries are held in the spool, not written: ${(err as Error).message}`);
        },
      },
    );
    // Losses a previous run could not record yet are recorded first.
    const left = parseLossWindows(spool.losses.text);
    if (left.length) {
      this.logger.error(`${left.reduce((n, w) => n + w.count, 0)} audit entries were LOST in a previous run (${left.map((w) => `${w.count} under ${w.prefix || '(no prefix)'} from ${new Date(w.from).toISOString()} to ${new Date(w.to).toISOString()}: ${w.reasons.join('; ')}`).join('; ')}); writing the loss record(s) now`);
      for (const w of left) this.recordLoss(w);
    }
    // Whatever a previous run left in the spool is replayed first.
    this.overflow = spool.pendingRecords > 0;
    if (this.overflow) this.refill();
  }

  /**
   * Makes a record durable and queues it. Resolves true once it is in the spool, or (when the
   * spool cannot write) once it is proven in immudb or spooled again; false when it was lost
   * (counted, logged, recorded in a loss record). Never rejects.
   */
  submit(record: AuditRecord, span?: EntrySpanRef, lifecycle = false): Promise<boolean> {
    // Lifecycle entries (lifecycle.ts) are not entries built from Kong log events: not counted as such.
    if (!lifecycle) this.stats.captured++;
    const at = Date.now();
    // One promise per entry: the spool calls back (appendThen) instead of resolving its own.
    return new Promise<boolean>((resolve) => {
      this.spool.appendThen(record.key, record.value, at, (pos) => {
        this.spoolRefusing = false;
        if (!lifecycle) this.stats.spooled++;
        try {
          this.enqueue(pos, { key: record.key, value: record.value, at, ...(span ? { span } : {}) });
          if (this.held.length || this.openLosses.size) this.recovered();
        } catch (e) {
          // Durable in the spool all the same: read back from there.
          this.overflow = true;
          this.logger.error(`queueing a spooled entry failed (it is read back from the spool): ${(e as Error).stack ?? String(e)}`);
        }
        resolve(true);
      }, (e) => resolve(this.hold(record, at, span, e)));
    });
  }

  /**
   * A newer configuration's queue settings (plugin/pipeline/registry.ts), from the next batch
   * on. Only what is held in memory follows them; the spool keeps every entry either way.
   */
  setQueue(queue: QueueConfig) {
    this.queue = queue;
    [this.refillTarget, this.lowWater] = refillLevels(queue);
    this.batcher.setLimits(batcherLimits(queue));
  }

  /** A durable record into the memory queue, unless memory is full (then refilled from disk). */
  private enqueue(pos: SpoolPosition, r: Omit<QueuedRecord, 'pos'>) {
    if (this.inMemoryUntil && comparePos(pos, this.inMemoryUntil) <= 0) return; // already read back from disk
    if (!this.overflow && this.roomFor(r.value.length) && this.batcher.add({ ...r, pos })) {
      this.inMemoryUntil = pos;
      this.memoryBytes += r.value.length;
    } else {
      this.overflow = true;
    }
  }

  /** The spool refused or failed: hold the entry for a direct write, or count it lost. */
  private hold(record: AuditRecord, at: number, span: EntrySpanRef | undefined, err: unknown): Promise<boolean> | boolean {
    this.stats.refused++;
    this.spoolRefusing = true;
    const reason = `spool: ${err instanceof SpoolFullError ? 'spool_max_bytes reached' : ((err as NodeJS.ErrnoException).code ?? (err as Error).message)}`;
    if (this.held.length < this.queue.max_entries && !this.stopped) {
      if (!this.holding) {
        this.holding = true;
        this.logger.error(`the spool cannot take entries (${reason}); they go to immudb directly, held in memory (at most ${this.queue.max_entries}) until proven or spooled again`);
      }
      return new Promise<boolean>((settle) => {
        this.held.push({ key: record.key, value: record.value, at, ...(span ? { span } : {}), sequence: record.sequence, settle });
        void this.runHeld();
      });
    }
    this.lose(record.key, at, `${reason}; immudb: ${this.lastWriteError}`, record.sequence);
    return false;
  }

  /** Counts a lost entry (and its number, named in the loss record) in its prefix's open window. */
  private lose(key: Buffer, at: number, reason: string, sequence: SequenceRef | null | undefined) {
    this.stats.lost++;
    const prefix = keyPrefixOf(key);
    this.openLosses.set(prefix, noteLoss(this.openLosses.get(prefix), prefix, this.node, at, reason.slice(0, 300), sequence));
    if (!this.lossEpisode) {
      this.lossEpisode = { count: 0, reason };
      this.logger.error(`audit entries are being LOST: the spool cannot write and immudb cannot take them (${reason}), and the memory for such entries (${this.queue.max_entries}) is full; they are counted and recorded in a loss record once something can be written`);
    }
    this.lossEpisode.count++;
    // The first loss of an episode is saved at once; later counts at most once a second (a
    // sync fsync per lost entry would slow the thread while losses pour in).
    if (this.lossEpisode.count === 1) this.saveLosses();
    else this.ledgerTimer ??= setTimeout(() => this.saveLosses(), 1000).unref();
  }

  /** Losses not yet recorded in immudb, kept in the spool's ledger for the next start. */
  private saveLosses() {
    clearTimeout(this.ledgerTimer);
    this.ledgerTimer = undefined;
    const windows = [...this.openLosses.values(), ...this.unrecorded];
    try {
      this.spool.losses.save(JSON.stringify(windows));
    } catch (e) {
      if (windows.length) this.logger.once('error', 'loss-ledger', `the count of lost entries cannot be saved (${(e as Error).message}); it is in memory and this log only until a loss record is written`);
    }
  }

  /** Something was written again: the open loss windows become loss records (written first). */
  private recovered() {
    if (!this.openLosses.size) {
      void this.runHeld();
      return;
    }
    const windows = [...this.openLosses.values()];
    this.openLosses.clear();
    if (this.lossEpisode) {
      this.logger.error(`${this.lossEpisode.count} audit entries were LOST (${windows.map((w) => `${w.count} under ${w.prefix || '(no prefix)'} from ${new Date(w.from).toISOString()} to ${new Date(w.to).toISOString()}`).join('; ')}): ${this.lossEpisode.reason}; writing the loss record(s)`);
      this.lossEpisode = undefined;
    }
    for (const w of windows) this.recordLoss(w);
  }

  /** A loss record goes in front of the held entries, beyond their bound (one per window). */
  private recordLoss(w: LossWindow) {
    const rec = encodeLossRecord(w);
    this.unrecorded.add(w);
    this.saveLosses();
    this.held.unshift({
      key: rec.key,
      value: rec.value,
      at: Date.now(),
      loss: w,
      settle: (ok) => {
        if (!ok) return;
        this.unrecorded.delete(w);
        this.stats.lossRecords++;
        this.saveLosses();
        this.logger.error(`loss record ${rec.key.toString()} stored: ${w.count} audit entries lost from ${new Date(w.from).toISOString()} to ${new Date(w.to).toISOString()}${describeNumbers(w)} (${w.reasons.join('; ')})`);
      },
    });
    void this.runHeld();
  }

  /**
   * Works off the held entries: back into the spool when it takes writes again, else straight to
   * immudb (verified), with backoff while neither works.
   */
  private async runHeld() {
    if (this.heldRunning) {
      this.wakeHeld?.();
      return;
    }
    this.heldRunning = true;
    let delay = this.queue.initial_retry_delay * 1000;
    try {
      while (this.held.length) {
        if (await this.respoolHeld()) {
          delay = this.queue.initial_retry_delay * 1000;
          continue;
        }
        const batch = this.held.slice(0, this.queue.max_batch_size);
        try {
          const t0 = performance.now();
          const res = await this.traced(batch);
          // By identity: a loss record may have been put in front meanwhile.
          const done = new Set(batch);
          this.held = this.held.filter((h) => !done.has(h));
          this.count(res, batch);
          this.onBatch?.(batch, res, performance.now() - t0);
          for (const h of batch) h.settle(true);
          delay = this.queue.initial_retry_delay * 1000;
          if (this.openLosses.size) this.recovered();
        } catch (e) {
          this.lastWriteError = (e as Error).message;
          this.health.failed(e);
          if (this.stopped) return;
          await new Promise<void>((r) => {
            const timer = setTimeout(r, isFatal(e) ? this.queue.max_retry_delay * 1000 : delay);
            timer.unref?.();
            this.wakeHeld = () => {
              clearTimeout(timer);
              r();
            };
          });
          this.wakeHeld = undefined;
          delay = Math.min(this.queue.max_retry_delay * 1000, delay * 2);
        }
      }
    } finally {
      this.heldRunning = false;
    }
    if (this.holding && !this.held.length && !this.stopped) {
      this.holding = false;
      this.logger.warn('every held entry is proven in immudb or back in the spool');
    }
  }

  /** Appends the held entries to the spool if it takes a probe (the oldest); true when any went. */
  private async respoolHeld(): Promise<boolean> {
    if (this.stopped) return false;
    const first = this.held[0]!;
    try {
      await this.toSpool(first);
    } catch {
      return false;
    }
    const spooled = new Set([first]);
    await Promise.all(this.held.filter((h) => h !== first).map((h) => this.toSpool(h).then(() => spooled.add(h), () => undefined)));
    this.held = this.held.filter((h) => !spooled.has(h));
    for (const h of spooled) h.settle(true);
    return true;
  }

  /** One held entry into the spool and the normal path (its submit() resolves after). */
  private async toSpool(h: HeldEntry) {
    const pos = await this.spool.append(h.key, h.value, h.at);
    this.spoolRefusing = false;
    this.stats.spooled++;
    this.enqueue(pos, { key: h.key, value: h.value, at: h.at, ...(h.span ? { span: h.span } : {}) });
  }

  /** One write attempt of a batch, inside the batch's `audit.write` span when it is traced. */
  private async traced(batch: ReadonlyArray<KeyValue & { span?: EntrySpanRef }>): Promise<WriteResult> {
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
      if (isFatal(e)) span?.fail(e);
      else span?.retry(e, attempt);
      throw e;
    }
  }

  private count(res: WriteResult, batch: readonly KeyValue[]) {
    // Lifecycle entries written are not counted as audit entries (entries_written_total).
    let lifecycle = 0;
    for (const r of batch) if (r.key.includes(LIFECYCLE_KEY)) lifecycle++;
    this.stats.written += Math.max(0, res.written - lifecycle);
    this.stats.duplicates += res.duplicates;
    this.stats.batches++;
    this.health.written();
  }

  private written(batch: readonly QueuedRecord[], res: WriteResult, ms: number) {
    this.count(res, batch);
    this.spool.ack(batch[batch.length - 1]!.pos, batch.length);
    for (const r of batch) this.memoryBytes -= r.value.length;
    this.onBatch?.(batch, res, ms);
    if (this.overflow && this.batcher.length <= this.lowWater) this.refill();
    if (this.held.length || this.openLosses.size) this.recovered();
  }

  /**
   * The writer cannot write: entries durable in the spool leave memory, all but the batch being
   * retried, and are read back (refill) once it writes again. The memory queue always holds the
   * spool's unacknowledged records from the first one on without a gap (the batch in flight
   * first), so acknowledging a written batch's last position acknowledges exactly that batch.
   */
  private shed() {
    const dropped = this.batcher.shed(this.queue.max_batch_size);
    if (!dropped.length) return;
    for (const r of dropped) this.memoryBytes -= r.value.length;
    const kept = this.batcher.pending();
    // Nothing kept means nothing in flight: the refill starts at the acknowledged position.
    this.inMemoryUntil = kept.length ? kept[kept.length - 1]!.pos : undefined;
    this.overflow = true;
  }

  /** Within queue.max_bytes (always room for one entry, so that a large one cannot stall the queue). */
  private roomFor(bytes: number): boolean {
    const max = this.queue.max_bytes;
    return max === null || max === undefined || this.memoryBytes === 0 || this.memoryBytes + bytes <= max;
  }

  /** Moves records that only the spool holds into memory, in order, while there is room. */
  private refill() {
    try {
      while (this.overflow) {
        const room = this.refillTarget - this.batcher.length;
        if (room <= 0) return;
        const recs = this.spool.read(this.inMemoryUntil, Math.min(room, 1024));
        for (const r of recs) {
          if (!this.roomFor(r.value.length) || !this.batcher.add(r)) return;
          this.inMemoryUntil = r.pos;
          this.memoryBytes += r.value.length;
        }
        if (recs.length < Math.min(room, 1024)) this.overflow = false;
      }
    } catch (e) {
      // A read that failed (EIO): try again shortly; the records stay on disk.
      this.logger.once('error', 'spool-read', `spool ${this.spool.dir}: cannot read waiting entries (${(e as Error).message}); retrying`);
      this.refillTimer ??= setTimeout(() => {
        this.refillTimer = undefined;
        this.refill();
      }, 1000);
      this.refillTimer.unref?.();
    }
  }

  /**
   * Resolves when everything submitted so far is written and proven (or spooled, when held);
   * rejects once the pipeline has stopped with some of it not written (it stays in the spool, or
   * was lost and counted), rather than waiting for good.
   */
  async flush(): Promise<void> {
    for (;;) {
      if (this.stopped && (this.overflow || this.batcher.length > 0 || this.held.length > 0)) {
        throw new Error('the pipeline stopped before everything submitted was written (what is left stays in the spool)');
      }
      await this.batcher.forceFlush();
      if (this.held.length) {
        await new Promise((r) => setTimeout(r, 20));
        continue;
      }
      // A refill after a write (written()) may have queued more than this flush waited for.
      if (!this.overflow && this.batcher.length === 0) return;
      const queued = this.batcher.length;
      this.refill();
      // Nothing came back from the spool (reading it failed, or the queue takes no more): wait
      // for the refill retry instead of looping on settled promises, which would starve every
      // timer, that retry and any caller's deadline included.
      if (this.overflow && this.batcher.length === queued) await new Promise((r) => setTimeout(r, 50));
    }
  }

  snapshot(): PipelineStats {
    const head = this.batcher.pending()[0];
    const oldest = Math.min(head?.at ?? Infinity, this.held[0]?.at ?? Infinity);
    return {
      captured: this.stats.captured,
      spooled: this.stats.spooled,
      written: this.stats.written,
      verified_batches: this.stats.batches,
      duplicates: this.stats.duplicates,
      refused: this.stats.refused,
      lost: this.stats.lost,
      loss_records: this.stats.lossRecords,
      retries: this.stats.retries,
      queued_memory: this.batcher.length,
      held_memory: this.held.length,
      queued_memory_bytes: this.memoryBytes,
      spool_entries: this.spool.pendingRecords,
      spool_bytes: this.spool.bytes,
      spool_missing: this.spool.recovery.missing,
      loss_ledger_damaged: this.spool.losses.damaged ? 1 : 0,
      oldest_unacked_ms: Number.isFinite(oldest) ? Date.now() - oldest : null,
      last_tx_id: this.writer.lastTxId,
      server_changes: this.writer.events?.serverChanges ?? 0,
      failovers: this.writer.events?.failovers ?? 0,
      lag_recoveries: this.writer.events?.lagRecoveries ?? 0,
      halted: this.writer.halted ? this.writer.halted.message : null,
      ...this.health.snapshot(Boolean(this.writer.halted)),
    };
  }

  /**
   * Flushes for at most timeoutMs; what is left stays in the spool for the next start. Held
   * entries not proven or spooled by then are lost: counted, and saved in the loss ledger when
   * the disk allows, so the next start records them.
   */
  async shutdown(timeoutMs: number): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    await this.batcher.shutdown(timeoutMs);
    while (this.held.some((h) => !h.loss) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    this.stopped = true;
    this.wakeHeld?.();
    const unwritten = this.held;
    this.held = [];
    for (const h of unwritten) {
      if (h.loss) continue; // still in the ledger (unrecorded): recorded on the next start
      this.lose(h.key, h.at, `shut down while the spool could not write; immudb: ${this.lastWriteError}`, h.sequence);
      h.settle(false);
    }
    this.saveLosses();
    if (this.refillTimer) clearTimeout(this.refillTimer);
    await this.spool.close();
    const left = this.spool.pendingRecords;
    if (left) this.logger.warn(`${left} audit entries stay in the spool (${this.spool.dir}) and are written on the next start`);
    return left;
  }
}

/** The batcher's sizes and delays of a queue configuration. */
function batcherLimits(queue: QueueConfig) {
  return {
    maxBatchSize: queue.max_batch_size,
    maxDelayMs: queue.max_coalescing_delay * 1000,
    maxEntries: queue.max_entries,
    initialRetryMs: queue.initial_retry_delay * 1000,
    maxRetryMs: queue.max_retry_delay * 1000,
  };
}
