// Fail-closed gates (docs/decisions.md #32): for each fail-closed plugin instance, one shared
// Int32 that says whether its route must answer 503, and why. Written here, off the request path,
// from the destination's pipeline every GATE_TICK_MS; read by the thread that answers Kong's access
// event with one Atomics.load, so that event never waits for the audit thread.
import type { FailClosedConfig } from '../config/config.js';
import type { Logger } from '../log.js';
import type { AuditPipeline } from './audit-pipeline.js';

/** Gate values: 0 lets requests through, any other value is why they are refused. */
export const GATE_OPEN = 0;
export const GATE_HALTED = 1;
export const GATE_SPOOL_REFUSING = 2;
export const GATE_BACKLOG = 3;
export const GATE_BACKLOG_AGE = 4;
/** Set by the main thread when the audit thread failed; cleared when a new one starts the instance. */
export const GATE_NO_AUDIT_THREAD = 5;

export const GATE_REASONS: readonly string[] = [
  'open',
  'the writer is halted by a trust failure',
  'the spool refuses entries',
  'the backlog passed fail_closed.max_backlog',
  'the oldest unproven entry is older than fail_closed.max_backlog_age',
  'the audit thread failed',
];

/** How often gates are re-evaluated: the longest a route keeps answering after auditing changed. */
export const GATE_TICK_MS = 100;

type Bounds = FailClosedConfig['fail_closed'];

/** Why a fail-closed route of this pipeline must answer 503 now (GATE_OPEN: it need not). */
export function gateReason(p: AuditPipeline, bounds: Bounds): number {
  if (p.writer.halted) return GATE_HALTED;
  if (p.spoolRefusing) return GATE_SPOOL_REFUSING;
  const s = p.snapshot();
  if (s.spool_entries + s.held_memory > bounds.max_backlog) return GATE_BACKLOG;
  if (s.oldest_unacked_ms !== null && s.oldest_unacked_ms > bounds.max_backlog_age * 1000) return GATE_BACKLOG_AGE;
  return GATE_OPEN;
}

interface Gate {
  pipeline: AuditPipeline;
  bounds: Bounds;
  destination: string;
  /** Dropped with its instance (closed, or collected when the plugin server never says). */
  flag: WeakRef<Int32Array>;
  /** Routes with the same destination and bounds share log lines. */
  group: string;
}

/** Keeps every live gate of the process current. */
export class FailClosedWatch {
  private readonly gates = new Set<Gate>();
  /** Last reason logged per group, so a state change is logged once, not once per worker. */
  private readonly logged = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly logger: Logger) {}

  /** Starts keeping `flag` current for a fail-closed instance; returns its removal. */
  add(pipeline: AuditPipeline, bounds: Bounds, flag: Int32Array, destination: string): () => void {
    const gate: Gate = { pipeline, bounds, destination, flag: new WeakRef(flag), group: `${destination} ${bounds.max_backlog} ${bounds.max_backlog_age}` };
    this.gates.add(gate);
    this.update(gate, flag);
    this.timer ??= setInterval(() => this.tick(), GATE_TICK_MS).unref();
    return () => this.remove(gate);
  }

  get size(): number {
    return this.gates.size;
  }

  /** Per destination with fail-closed routes: whether any of them answers 503 now (for metrics). */
  refusing(): Map<string, boolean> {
    const out = new Map<string, boolean>();
    for (const gate of this.gates) {
      const flag = gate.flag.deref();
      out.set(gate.destination, (out.get(gate.destination) ?? false) || (flag !== undefined && Atomics.load(flag, 0) !== GATE_OPEN));
    }
    return out;
  }

  private remove(gate: Gate) {
    this.gates.delete(gate);
    if (this.gates.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  private tick() {
    for (const gate of this.gates) {
      const flag = gate.flag.deref();
      if (flag) this.update(gate, flag);
      else this.remove(gate);
    }
  }

  private update(gate: Gate, flag: Int32Array) {
    let reason: number;
    try {
      reason = gateReason(gate.pipeline, gate.bounds);
    } catch {
      reason = GATE_SPOOL_REFUSING; // a pipeline that cannot say how it is: refuse, never guess open
    }
    Atomics.store(flag, 0, reason);
    const before = this.logged.get(gate.group) ?? GATE_OPEN;
    if (reason === before) return;
    this.logged.set(gate.group, reason);
    if (reason !== GATE_OPEN) this.logger.error(`fail-closed routes writing to ${gate.destination} answer 503: ${GATE_REASONS[reason]}`);
    else this.logger.warn(`fail-closed routes writing to ${gate.destination} are served again: auditing recovered`);
  }
}

let shared: FailClosedWatch | undefined;

/** The process's (or the audit thread's) watch, created on first use. */
export function sharedFailClosedWatch(logger: Logger): FailClosedWatch {
  shared ??= new FailClosedWatch(logger);
  return shared;
}
