// The plugin's own log lines. The plugin server's stdout/stderr go to Kong's error log, so a
// line is prefixed with the plugin name; repeated problems are reported once per key so a
// flood of bad requests cannot flood the log. Never pass secrets in here.
import { processSettingsLenient } from './settings.js';

export type Level = 'debug' | 'info' | 'warn' | 'error';

const order: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const threshold = order[processSettingsLenient().logLevel];

export interface Logger {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
  /** Logs `msg` the first time `key` is seen; later occurrences are not logged. */
  once(level: Level, key: string, msg: string): void;
}

export function createLogger(scope: string, write: (line: string) => void = (l) => process.stderr.write(l + '\n')): Logger {
  const seen = new Set<string>();
  const emit = (level: Level, msg: string) => {
    if (order[level] < threshold) return;
    write(`${new Date().toISOString()} [immudb-audit] ${level} ${scope}: ${msg}`);
  };
  return {
    debug: (m) => emit('debug', m),
    info: (m) => emit('info', m),
    warn: (m) => emit('warn', m),
    error: (m) => emit('error', m),
    once(level, key, msg) {
      if (seen.has(key)) return;
      seen.add(key);
      emit(level, `${msg} (reported once)`);
    },
  };
}
