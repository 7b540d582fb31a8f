// The plugin's own log lines. The plugin server's stdout/stderr go to Kong's error log, so a
// line is prefixed with the plugin name; repeated problems are reported once per key (with a
// count later) so a flood of bad requests cannot flood the log. Never pass secrets in here.

export type Level = 'debug' | 'info' | 'warn' | 'error';

const order: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const threshold = order[(process.env.IMMUDB_AUDIT_LOG_LEVEL as Level) ?? 'info'] ?? order.info;

export interface Logger {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
  /** Logs `msg` the first time `key` is seen; later occurrences are only counted. */
  once(level: Level, key: string, msg: string): void;
  /** How many times `key` was reported through once(). */
  count(key: string): number;
}

export function createLogger(scope: string, write: (line: string) => void = (l) => process.stderr.write(l + '\n')): Logger {
  const seen = new Map<string, number>();
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
      const n = (seen.get(key) ?? 0) + 1;
      seen.set(key, n);
      if (n === 1) emit(level, `${msg} (reported once; further occurrences are counted)`);
    },
    count: (key) => seen.get(key) ?? 0,
  };
}
