// The health of one destination's writer, for operators: writing, retrying or halted, the last
// error with its time and kind. A permanent error (it will not go away by retrying: wrong
// credentials, a database that does not exist, missing rights, a failed check) is logged at
// error level once per change; transient ones (immudb down) stay warnings with a retry count.
import type { Logger } from '../log.js';
import { VerificationError } from '../store/proofs/index.js';

export type WriterState = 'writing' | 'retrying' | 'halted';
export const WRITER_STATES: readonly WriterState[] = ['writing', 'retrying', 'halted'];

/** What kind of failure an error is; all but `transient` need an operator. */
export type ErrorKind = 'authentication' | 'database' | 'permission' | 'verification' | 'transient';

export function errorKind(e: unknown): ErrorKind {
  if (e instanceof VerificationError) return 'verification';
  const msg = e instanceof Error ? e.message : String(e);
  if (/invalid user name or password|not logged in|invalid token|UNAUTHENTICATED/i.test(msg)) return 'authentication';
  if (/database does not exist|database .* not found|no database selected/i.test(msg)) return 'database';
  if (/permission denied|PERMISSION_DENIED/i.test(msg)) return 'permission';
  return 'transient';
}

export interface WriteHealthSnapshot {
  state: WriterState;
  last_error: string | null;
  /** ISO 8601 time of the last failed write attempt. */
  last_error_at: string | null;
  last_error_kind: ErrorKind | null;
  /** 1 while the last attempt failed (retrying or halted). */
  failing: boolean;
  /** The current failure needs an operator. */
  permanent: boolean;
}

export class WriteHealth {
  private failingSince: number | null = null;
  private failedAttempts = 0;
  private lastError: { message: string; at: number; kind: ErrorKind } | null = null;
  /** The last permanent error logged: logged again only when it changes. */
  private logged: string | null = null;

  /** `logger` names the destination. */
  constructor(private readonly logger: Logger) {}

  /** A write attempt failed (retried, or halting the writer). */
  failed(e: unknown) {
    const message = e instanceof Error ? e.message : String(e);
    const kind = errorKind(e);
    this.lastError = { message, at: Date.now(), kind };
    this.failingSince ??= this.lastError.at;
    this.failedAttempts++;
    if (kind !== 'transient' && kind !== 'verification' && this.logged !== `${kind}:${message}`) {
      // Verification failures are logged by the writer as it halts.
      this.logged = `${kind}:${message}`;
      this.logger.error(`writes to immudb fail with a permanent error (${kind}); entries stay in the spool and are retried until it is fixed: ${message}`);
    }
  }

  /** A batch was written and proven. */
  written() {
    if (this.failingSince === null) return;
    if (this.logged) this.logger.info(`writes to immudb succeed again after ${this.failedAttempts} failed attempts`);
    this.failingSince = null;
    this.failedAttempts = 0;
    this.logged = null;
  }

  snapshot(halted: boolean): WriteHealthSnapshot {
    const state: WriterState = halted ? 'halted' : this.failingSince !== null ? 'retrying' : 'writing';
    const e = this.lastError;
    return {
      state,
      last_error: e?.message ?? null,
      last_error_at: e ? new Date(e.at).toISOString() : null,
      last_error_kind: e?.kind ?? null,
      failing: state !== 'writing',
      permanent: state === 'halted' || (state === 'retrying' && e !== null && e.kind !== 'transient'),
    };
  }
}
