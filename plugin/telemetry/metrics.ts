// Prometheus metrics of the plugin server process, and an opt-in HTTP endpoint serving them
// (/metrics, text format) and the same figures as JSON (/status, read by `immudb-audit status`).
// Enabled by IMMUDB_AUDIT_METRICS_PORT; binds to IMMUDB_AUDIT_METRICS_HOST (default 127.0.0.1).
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Logger } from '../log.js';
import { WRITER_STATES, type WriteHealthSnapshot } from './write-health.js';

const P = 'kong_immudb_audit_';

/** The figures of one destination's pipeline (served as /status and as metrics). */
export interface PipelineStats extends WriteHealthSnapshot {
  captured: number;
  spooled: number;
  written: number;
  verified_batches: number;
  duplicates: number;
  /** Entries the spool could not take (held in memory for a direct write, or lost). */
  refused: number;
  /** Entries lost: the spool and immudb both failed and the memory for held entries was full. */
  lost: number;
  /** Loss records stored (spooled or proven in immudb). */
  loss_records: number;
  retries: number;
  queued_memory: number;
  /** Bytes of the entries queued in memory (queue.max_bytes). */
  queued_memory_bytes: number;
  /** Entries held in memory because the spool could not take them. */
  held_memory: number;
  /** Entries durably in the spool and not yet proven in immudb. */
  spool_entries: number;
  spool_bytes: number;
  /** Records found missing or damaged in the spool when it was opened. */
  spool_missing: number;
  /** 1 when the loss ledger of a previous run could not be read (losses it held may be unrecorded). */
  loss_ledger_damaged: number;
  oldest_unacked_ms: number | null;
  last_tx_id: number;
  /** Another server proved the log; the writer moved to another address; it re-anchored after lag (decisions #23). */
  server_changes: number;
  failovers: number;
  lag_recoveries: number;
  halted: string | null;
}

/** What the metrics read: anything with a snapshot (the pipeline, without importing it). */
export interface StatsSource {
  snapshot(): PipelineStats;
}

/** Per destination, whether its fail-closed routes answer 503 now (pipeline/fail-closed-gate.ts). */
export type FailClosedSource = () => ReadonlyMap<string, boolean>;

export class AuditMetrics {
  readonly registry = new Registry();
  private readonly pipelines = new Map<string, StatsSource>();
  readonly writeSeconds: Histogram<'destination'>;
  private failClosed: FailClosedSource | undefined;

  constructor() {
    const pipelines = this.pipelines;
    const failClosed = () => this.failClosed?.() ?? new Map<string, boolean>();
    const counter = (name: string, help: string, pick: (s: PipelineStats) => number) =>
      new Counter({
        name: P + name,
        help,
        labelNames: ['destination'],
        registers: [this.registry],
        collect() {
          this.reset();
          for (const [d, p] of pipelines) this.inc({ destination: d }, pick(p.snapshot()));
        },
      });
    const gauge = (name: string, help: string, pick: (s: PipelineStats) => number) =>
      new Gauge({
        name: P + name,
        help,
        labelNames: ['destination'],
        registers: [this.registry],
        collect() {
          for (const [d, p] of pipelines) this.set({ destination: d }, pick(p.snapshot()));
        },
      });
    counter('entries_captured_total', 'Audit entries built from Kong log events.', (s) => s.captured);
    counter('entries_spooled_total', 'Entries made durable in the local spool.', (s) => s.spooled);
    counter('entries_written_total', 'Entries written to immudb in transactions whose proofs we checked.', (s) => s.written);
    counter('entries_verified_total', 'Entries in verified transactions (equal to written: nothing counts as written unverified).', (s) => s.written);
    counter('entries_duplicate_total', 'Replayed entries found already stored with the same value (not written twice).', (s) => s.duplicates);
    counter('entries_refused_total', 'Entries the spool could not take (disk full, I/O error, spool_max_bytes): held in memory and written to immudb directly, or lost.', (s) => s.refused);
    counter('entries_lost_total', 'Entries lost: the spool and immudb both failed and the memory for held entries was full (logged; a loss record is written).', (s) => s.lost);
    counter('loss_records_total', 'Loss records stored for the auditors (key <key_prefix>:loss:<id>).', (s) => s.loss_records);
    counter('spool_missing_records_total', 'Records found missing or damaged in the spool on open: durably written, never proven, gone.', (s) => s.spool_missing);
    counter('write_retries_total', 'Failed immudb writes that were retried.', (s) => s.retries);
    counter('batches_verified_total', 'immudb transactions written and verified.', (s) => s.verified_batches);
    counter('server_changes_total', 'Times another immudb server (another UUID) proved it holds the log and was accepted (a failover, a restore).', (s) => s.server_changes);
    counter('failovers_total', 'Times the writer moved to another of the configured immudb addresses.', (s) => s.failovers);
    counter('lag_recoveries_total', 'Times the writer re-anchored at the last transaction its replicas held, after a failover to a replica that lagged.', (s) => s.lag_recoveries);
    gauge('loss_ledger_damaged', '1 when the loss ledger left by a previous run could not be read (neither copy valid): losses it held, if any, may never be recorded.', (s) => s.loss_ledger_damaged);
    gauge('spool_entries', 'Entries durably in the spool, not yet proven in immudb.', (s) => s.spool_entries);
    gauge('spool_bytes', 'Bytes of the spool on disk.', (s) => s.spool_bytes);
    gauge('queue_entries', 'Entries held in memory for the writer.', (s) => s.queued_memory);
    gauge('held_entries', 'Entries the spool could not take, held in memory until proven in immudb or spooled again.', (s) => s.held_memory);
    gauge('oldest_unacked_seconds', 'Age of the oldest entry not yet proven in immudb (0 when none).', (s) => (s.oldest_unacked_ms ?? 0) / 1000);
    gauge('last_tx_id', 'Last immudb transaction written and verified.', (s) => s.last_tx_id);
    gauge('writer_halted', '1 when the writer stopped because a check failed (tampering or a lying server).', (s) => (s.halted ? 1 : 0));
    // Alerting (docs/operations.md, "Alerts"): whether writes fail, and whether an operator must act.
    gauge('write_failing', '1 while the last write attempt failed (retrying or halted): audit logging is failing.', (s) => (s.failing ? 1 : 0));
    gauge('permanent_error', '1 while writes fail with an error retrying cannot fix (authentication, missing database, permission, failed check).', (s) => (s.permanent ? 1 : 0));
    gauge('last_error_timestamp_seconds', 'Unix time of the last failed write attempt (0 when none).', (s) => (s.last_error_at ? Date.parse(s.last_error_at) / 1000 : 0));
    new Gauge({
      name: P + 'writer_state',
      help: 'The writer state of a destination: 1 for the current one of writing, retrying, halted.',
      labelNames: ['destination', 'state'],
      registers: [this.registry],
      collect() {
        for (const [d, p] of pipelines) {
          const state = p.snapshot().state;
          for (const s of WRITER_STATES) this.set({ destination: d, state: s }, s === state ? 1 : 0);
        }
      },
    });
    new Gauge({
      name: P + 'fail_closed_refusing',
      help: "1 while the destination's fail-closed routes answer 503 (halted, spool refusing entries, or backlog past fail_closed bounds); only destinations with fail-closed routes.",
      labelNames: ['destination'],
      registers: [this.registry],
      collect() {
        for (const [d, refusing] of failClosed()) this.set({ destination: d }, refusing ? 1 : 0);
      },
    });
    this.writeSeconds = new Histogram({
      name: P + 'immudb_write_seconds',
      help: 'Latency of one verified batch write (VerifiableSet and proof checks).',
      labelNames: ['destination'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [this.registry],
    });
  }

  track(destination: string, pipeline: StatsSource) {
    this.pipelines.set(destination, pipeline);
  }

  /** Where the fail-closed gates' state comes from (set when the first fail-closed route starts). */
  trackFailClosed(source: FailClosedSource) {
    this.failClosed = source;
  }

  status(): Record<string, unknown> {
    return {
      pid: process.pid,
      destinations: Object.fromEntries([...this.pipelines].map(([d, p]) => [d, p.snapshot()])),
    };
  }

  /** Serves /metrics and /status; resolves with the server once listening. */
  listen(port: number, host: string, logger: Logger): Promise<Server> {
    const server = createServer((req, res) => {
      if (req.url === '/metrics') {
        this.registry.metrics().then((text) => {
          res.writeHead(200, { 'content-type': this.registry.contentType });
          res.end(text);
        }, (e: Error) => {
          res.writeHead(500).end(e.message);
        });
      } else if (req.url === '/status') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(this.status()));
      } else {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics or /status\n');
      }
    });
    server.unref();
    return new Promise((resolve, reject) => {
      server.once('error', (e) => {
        logger.error(`metrics endpoint ${host}:${port} could not start: ${e.message}`);
        reject(e);
      });
      server.listen(port, host, () => {
        logger.info(`metrics on http://${host}:${port}/metrics, status on /status`);
        resolve(server);
      });
    });
  }
}
