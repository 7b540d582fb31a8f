// Messages between the plugin server's main thread (which answers Kong) and the audit thread
// (which captures, spools, writes and traces). Structured-cloned by postMessage.
import type { MessagePort } from 'node:worker_threads';

/** Main -> audit thread. */
export type ToAuditThread =
  /**
   * A plugin instance. With `reply`, the main thread is blocked in Atomics.wait on `signal`
   * until the result is posted on `reply` (StartInstance must fail with the reason). `gate`: a
   * fail-closed route's shared flag, kept current by the thread, read by the main thread.
   */
  | { op: 'start'; instance: number; config: Record<string, unknown>; reply?: MessagePort; signal?: SharedArrayBuffer; gate?: SharedArrayBuffer }
  /** Log events received in one turn of the main thread's event loop, in one message. */
  | { op: 'log'; events: LogEvent[] }
  | { op: 'close'; instance: number }
  /** Flush everything (bounded by IMMUDB_AUDIT_SHUTDOWN_TIMEOUT_MS) and answer. */
  | { op: 'shutdown'; call: number };

/** One log event: what kong.log.serialize() returned, or why it failed (then raw is null). */
export type LogEvent = [instance: number, call: number, raw: unknown, failure?: string];

/** Audit thread -> main: log calls settled since the last message, in one message. */
export interface Settled {
  op: 'settled';
  done: number[];
  failed: Array<[call: number, message: string]>;
}

export interface ShutdownDone {
  op: 'shutdown-done';
  call: number;
  /** Entries left in the spool for the next start. */
  left: number;
}

export type FromAuditThread = Settled | ShutdownDone;

/** Result of a synchronous start, posted on the start message's reply port. */
export interface StartResult {
  error?: { name: string; message: string };
}
