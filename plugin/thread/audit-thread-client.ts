// The main thread's side of the audit thread (plugin/thread/audit-thread.ts): starts it on the
// first plugin instance, hands it each log event, settles the calls it reports, restarts it if
// it fails, and turns Kong's SIGTERM into a flush in the thread before the process exits.
import { MessageChannel, Worker, receiveMessageOnPort, type ResourceLimits, type TransferListItem } from 'node:worker_threads';
import { createLogger } from '../log.js';
import { flushThenExitOnSignal } from '../exit-on-signal.js';
import { processSettingsLenient } from '../settings.js';
import type { FromAuditThread, LogEvent, StartResult, ToAuditThread } from './protocol.js';
import { bootFailure, newBootStatus } from './boot-status.js';
import { GATE_NO_AUDIT_THREAD } from '../pipeline/fail-closed-gate.js';

const logger = createLogger('audit-thread');

/** How long StartInstance waits for the thread (its first start loads gRPC and OpenTelemetry). */
const START_TIMEOUT_MS = 60_000;

interface Pending {
  resolve(): void;
  reject(e: Error): void;
}

export class AuditThreadClient {
  private worker: Worker | undefined;
  /** Load status of the current thread (written by audit-thread-boot.ts). */
  private bootStatus = newBootStatus();
  private nextCall = 0;
  private readonly pending = new Map<number, Pending>();
  /** Configurations of the live instances, to start them again in a new thread after a failure. */
  private readonly configs = new Map<number, Record<string, unknown>>();
  /** Fail-closed instances' gates (shared with the thread, which keeps them current). */
  private readonly gates = new Map<number, SharedArrayBuffer>();
  private readonly shutdowns = new Map<number, (left: number) => void>();
  private hooked = false;
  /** Events of this turn of the event loop, posted together (one wake-up of the thread). */
  private outbox: LogEvent[] = [];
  private readonly flushOutbox = () => {
    const events = this.outbox;
    this.outbox = [];
    // Without a thread (it failed since), failed() has already failed these calls.
    if (this.worker) this.post(this.worker, { op: 'log', events });
  };

  /**
   * `script`: the thread's module (tests give a stand-in speaking the same protocol).
   * `limits`: the thread's heap limits; by default the process's V8 flags
   * (plugin/pluginserver/memory-flags.ts), which win over a Worker's resourceLimits anyway.
   * A thread that reaches its limit dies like any failed thread (ERR_WORKER_OUT_OF_MEMORY).
   */
  constructor(
    private readonly script = new URL('./audit-thread.js', import.meta.url),
    private readonly limits?: ResourceLimits,
  ) {}

  /**
   * Starts an instance in the thread and waits for it: a bad configuration throws its reason.
   * `gate`: a fail-closed route's flag, which the thread keeps current.
   */
  startInstance(instance: number, config: Record<string, unknown>, gate?: SharedArrayBuffer): void {
    const w = this.thread();
    const { port1, port2 } = new MessageChannel();
    const signal = new SharedArrayBuffer(4);
    this.post(w, { op: 'start', instance, config, reply: port2, signal, ...(gate ? { gate } : {}) }, [port2]);
    // Kong's StartInstance is synchronous in kong-pdk (the constructor): block until answered,
    // looking every 50 ms whether the thread failed to load (its error event cannot reach us).
    const deadline = Date.now() + START_TIMEOUT_MS;
    const flag = new Int32Array(signal);
    let answered = false;
    for (;;) {
      answered = Atomics.wait(flag, 0, 0, 50) !== 'timed-out';
      if (answered) break;
      const failure = bootFailure(this.bootStatus);
      if (failure !== undefined) {
        port1.close();
        throw new Error(`the audit thread could not load: ${failure}`);
      }
      if (Date.now() > deadline) break;
    }
    const answer = receiveMessageOnPort(port1)?.message as StartResult | undefined;
    port1.close();
    if (!answered || !answer) {
      this.post(w, { op: 'close', instance });
      throw new Error(`the audit thread did not start instance ${instance} within ${START_TIMEOUT_MS / 1000} s`);
    }
    if (answer.error) {
      const e = new Error(answer.error.message);
      e.name = answer.error.name;
      throw e;
    }
    this.configs.set(instance, config);
    if (gate) this.gates.set(instance, gate);
    this.hookShutdown();
  }

  /** Resolves once the thread has the event's entry durable in the spool. */
  log(instance: number, raw: unknown, failure: string | undefined): Promise<void> {
    this.thread();
    const call = ++this.nextCall;
    return new Promise<void>((resolve, reject) => {
      // Calls in flight keep the process alive; an idle thread does not.
      if (this.pending.size === 0) this.worker?.ref();
      this.pending.set(call, { resolve, reject });
      if (this.outbox.length === 0) setImmediate(this.flushOutbox);
      this.outbox.push([instance, call, raw, failure]);
    });
  }

  closeInstance(instance: number): void {
    this.gates.delete(instance);
    if (!this.configs.delete(instance)) return;
    if (this.worker) this.post(this.worker, { op: 'close', instance });
  }

  /** Asks the thread to flush and stop its writers; resolves with the entries left in the spool. */
  shutdown(timeoutMs: number): Promise<number | undefined> {
    const w = this.worker;
    if (!w) return Promise.resolve(0);
    const call = ++this.nextCall;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.shutdowns.delete(call);
        resolve(undefined);
      }, timeoutMs);
      this.shutdowns.set(call, (left) => {
        clearTimeout(timer);
        resolve(left);
      });
      this.post(w, { op: 'shutdown', call });
    });
  }

  private post(w: Worker, m: ToAuditThread, transfer?: TransferListItem[]) {
    w.postMessage(m, transfer);
  }

  private thread(): Worker {
    if (this.worker) return this.worker;
    this.bootStatus = newBootStatus();
    const w = new Worker(new URL('./audit-thread-boot.js', import.meta.url), { workerData: { script: this.script.href, status: this.bootStatus }, ...(this.limits ? { resourceLimits: this.limits } : {}) });
    w.on('message', (m: FromAuditThread) => this.onMessage(m));
    w.on('error', (e) => this.failed(w, e));
    w.on('exit', (code) => this.failed(w, new Error(`the audit thread exited with code ${code}`)));
    // The plugin server lives as long as Kong's socket; the thread must not keep it alive.
    // (After the listeners: adding a 'message' listener refs the worker's port again.)
    w.unref();
    this.worker = w;
    // After a failure: the instances Kong started are started again; their spool is replayed.
    for (const [instance, config] of this.configs) {
      const gate = this.gates.get(instance);
      this.post(w, { op: 'start', instance, config, ...(gate ? { gate } : {}) });
    }
    return w;
  }

  private onMessage(m: FromAuditThread) {
    if (m.op === 'settled') {
      for (const call of m.done) this.settle(call);
      for (const [call, message] of m.failed) this.settle(call, new Error(message));
    } else if (m.op === 'shutdown-done') {
      this.shutdowns.get(m.call)?.(m.left);
      this.shutdowns.delete(m.call);
    }
  }

  private settle(call: number, error?: Error) {
    const p = this.pending.get(call);
    if (!p) return;
    this.pending.delete(call);
    if (this.pending.size === 0) this.worker?.unref();
    if (error) p.reject(error);
    else p.resolve();
  }

  /** The thread failed: the events in flight fail (Kong logs them); the next event restarts it. */
  private failed(w: Worker, e: Error) {
    if (this.worker !== w) return;
    this.worker = undefined;
    if (this.pending.size || this.configs.size) logger.error(`audit thread failed (${e.message}); ${this.pending.size} event(s) in flight fail, the next event starts a new thread and its spool is replayed`);
    // Nothing audits now: fail-closed routes answer 503 until a new thread starts their instance.
    for (const gate of this.gates.values()) Atomics.store(new Int32Array(gate), 0, GATE_NO_AUDIT_THREAD);
    const err = new Error(`audit thread failed: ${e.message}`);
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    for (const done of this.shutdowns.values()) done(-1);
    this.shutdowns.clear();
  }

  /** Kong stops the plugin server with SIGTERM (SIGINT by hand): flush in the thread, then exit. */
  private hookShutdown() {
    if (this.hooked) return;
    this.hooked = true;
    // The thread stops writing after timeoutMs itself; the margin covers closing its writers.
    const timeoutMs = processSettingsLenient().shutdownTimeoutMs + 5_000;
    flushThenExitOnSignal(logger, () => this.shutdown(timeoutMs));
  }
}

let shared: AuditThreadClient | undefined;

/** The process's audit thread (created on first use). */
export function auditThread(): AuditThreadClient {
  shared ??= new AuditThreadClient();
  return shared;
}
