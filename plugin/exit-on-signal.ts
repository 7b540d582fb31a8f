// Kong stops the plugin server with SIGTERM (SIGINT when run by hand). Signals reach the main
// thread only: the one that holds the pipelines (in process) or the audit thread's client
// installs this, and the process exits once `flush` settles.
import type { Logger } from './log.js';

export function flushThenExitOnSignal(logger: Logger, flush: () => Promise<unknown>): void {
  let stopping = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    logger.info(`${sig}: flushing audit entries before exit`);
    void flush().finally(() => process.exit(0));
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
}
