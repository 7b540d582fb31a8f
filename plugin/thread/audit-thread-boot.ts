// Entry point of the audit thread: loads the thread's module (plugin/thread/audit-thread.ts, or
// another one speaking its protocol in tests) and reports a failure to load where a blocked
// StartInstance can see it (boot-status.ts), then fails as it would have.
import { workerData } from 'node:worker_threads';
import { markBootFailed } from './boot-status.js';

const { script, status } = workerData as { script: string; status: SharedArrayBuffer };

await import(script).catch((e: unknown) => {
  markBootFailed(status, e);
  throw e;
});
