// A bounded queue in front of a batch writer, modelled on OpenTelemetry's BatchSpanProcessor:
// entries are coalesced into batches (by size or delay), one batch is in flight at a time (the
// verified writes chain), failed writes are retried with exponential backoff and jitter and
// never dropped. When the queue is full, add() refuses the entry and says so; the caller
// decides what to do with it (count, log, spool).

export interface BatchWriter<T> {
  write(batch: T[]): Promise<unknown>;
}

export interface BatcherOptions<T> {
  maxBatchSize: number;
  maxDelayMs: number;
  maxEntries: number;
  initialRetryMs: number;
  maxRetryMs: number;
  /** A write error the writer will never recover from: stop retrying and hold the queue. */
  isFatal?: (err: unknown) => boolean;
  onWritten?: (batch: readonly T[], result: unknown, ms: number) => void;
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
  onFatal?: (err: unknown) => void;
}

const shutDown = () => new Error('the queue shut down before everything submitted was written');

export class Batcher<T> {
  private queue: T[] = [];
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private stopped = false;
  /** Shut down and its wait over: no more attempts (what is left belongs to the caller now). */
  private abandoned = false;
  private fatal: unknown;
  private waiters: Array<{ upTo: number; resolve: () => void; reject: (e: unknown) => void }> = [];
  /** Entries ever added (a sequence: entry n is written once `written >= n`). */
  private added = 0;
  private written = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private wakeRetry: (() => void) | undefined;
  /** Entries of the batch being written (the head of the queue). */
  private inFlight = 0;

  constructor(private readonly writer: BatchWriter<T>, private readonly opts: BatcherOptions<T>) {}

  get length(): number {
    return this.queue.length;
  }

  /** Queues an entry; false when the queue is full or shut down (the entry was NOT taken). */
  add(item: T): boolean {
    if (this.stopped || this.queue.length >= this.opts.maxEntries) return false;
    this.queue.push(item);
    this.added++;
    if (this.queue.length >= this.opts.maxBatchSize) this.kick();
    else if (!this.timer && !this.running) {
      this.timer = setTimeout(() => this.kick(), this.opts.maxDelayMs);
      this.timer.unref?.();
    }
    return true;
  }

  /** New sizes and delays (a configuration change), from the next batch on. */
  setLimits(limits: Pick<BatcherOptions<T>, 'maxBatchSize' | 'maxDelayMs' | 'maxEntries' | 'initialRetryMs' | 'maxRetryMs'>) {
    Object.assign(this.opts, limits);
    if (this.queue.length >= this.opts.maxBatchSize) this.kick();
  }

  private kick() {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.running || this.fatal || this.abandoned) return;
    this.running = true;
    void this.drain();
  }

  private async drain() {
    try {
      while (this.queue.length && !this.fatal) {
        const batch = this.queue.slice(0, this.opts.maxBatchSize);
        this.inFlight = batch.length;
        const done = await this.writeWithRetry(batch);
        this.inFlight = 0;
        if (!done) break;
        // Out of the queue before onWritten: a caller refilling from it sees the room it has.
        this.queue.splice(0, batch.length);
        this.written += batch.length;
        this.opts.onWritten?.(batch, done.result, done.ms);
        this.settleWaiters();
        // A partial batch waits for company unless someone asked for a flush.
        if (this.queue.length < this.opts.maxBatchSize && !this.waiters.length && !this.stopped) break;
      }
    } finally {
      this.running = false;
    }
    if (this.fatal) {
      this.rejectWaiters(this.fatal);
      return;
    }
    if (this.abandoned) {
      this.rejectWaiters(shutDown());
      return;
    }
    if (this.queue.length && !this.timer) {
      this.timer = setTimeout(() => this.kick(), this.opts.maxDelayMs);
      this.timer.unref?.();
    }
  }

  /** The batch's write result and duration; undefined when the writer failed for good or the queue shut down. */
  private async writeWithRetry(batch: T[]): Promise<{ result: unknown; ms: number } | undefined> {
    for (let attempt = 1; !this.abandoned; attempt++) {
      const t0 = performance.now();
      try {
        const result = await this.writer.write(batch);
        return { result, ms: performance.now() - t0 };
      } catch (err) {
        if (this.opts.isFatal?.(err)) {
          this.fatal = err;
          this.opts.onFatal?.(err);
          return undefined;
        }
        const base = Math.min(this.opts.maxRetryMs, this.opts.initialRetryMs * 2 ** Math.min(attempt - 1, 30));
        const delay = Math.round(base / 2 + Math.random() * (base / 2));
        this.opts.onRetry?.(err, attempt, delay);
        await new Promise<void>((r) => {
          this.wakeRetry = r;
          this.retryTimer = setTimeout(r, delay);
        });
        this.retryTimer = undefined;
        this.wakeRetry = undefined;
      }
    }
    return undefined;
  }

  private settleWaiters() {
    this.waiters = this.waiters.filter((w) => {
      if (this.written >= w.upTo) {
        w.resolve();
        return false;
      }
      return true;
    });
  }

  private rejectWaiters(err: unknown) {
    for (const w of this.waiters) w.reject(err);
    this.waiters = [];
  }

  /** Resolves when every entry added before the call is written; rejects if the writer halted or the queue shut down. */
  forceFlush(): Promise<void> {
    if (this.fatal) return Promise.reject(this.fatal);
    if (this.abandoned && this.written < this.added) return Promise.reject(shutDown());
    if (this.written >= this.added) return Promise.resolve();
    const p = new Promise<void>((resolve, reject) => this.waiters.push({ upTo: this.added, resolve, reject }));
    // Skip the coalescing delay and any backoff wait: flush means now.
    this.wakeRetry?.();
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.kick();
    return p;
  }

  /**
   * Stops taking entries and flushes, waiting at most timeoutMs; returns entries left unwritten.
   * Then it stops retrying: a write still failing would otherwise go on for good after its
   * caller closed what the entries came from (a write in flight still ends as it ends).
   */
  async shutdown(timeoutMs: number): Promise<number> {
    this.stopped = true;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.forceFlush().catch(() => undefined),
      new Promise<void>((r) => {
        timer = setTimeout(r, timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if (this.timer) clearTimeout(this.timer);
    this.abandoned = true;
    this.wakeRetry?.();
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (!this.running) this.rejectWaiters(shutDown());
    return this.queue.length;
  }

  /**
   * Gives up the entries after the first `keep` (never those of the batch being written); the
   * caller holds them elsewhere and adds them again later. They no longer count as added.
   */
  shed(keep: number): T[] {
    const from = Math.max(keep, this.inFlight);
    if (this.queue.length <= from) return [];
    const dropped = this.queue.splice(from);
    this.added -= dropped.length;
    return dropped;
  }

  /** Entries in the queue (for status and for handing to a spool on shutdown). */
  pending(): readonly T[] {
    return this.queue;
  }
}
