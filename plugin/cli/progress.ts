// One line of progress for long work (verify --all, index updates, export, bundles): written to
// stderr, redrawn in place at most a few times a second, and only for a person watching a
// terminal. Under --json or when stderr is not a TTY (a pipe, a log file, cron) it writes
// nothing, so that output meant for machines stays clean.

/** What the progress line needs of its stream (process.stderr, or a fake in tests). */
export interface ProgressStream {
  isTTY?: boolean;
  write(text: string): unknown;
}

export interface ProgressOptions {
  /** What is being done, e.g. "verify --all". */
  label: string;
  stream?: ProgressStream;
  /** Machine-readable output asked for: no progress. */
  json?: boolean;
  /** Redraws per second at most (default 5). */
  perSecond?: number;
  now?: () => number;
}

export interface Progress {
  /** The amount of work, once known (transactions, entries). */
  total(n: number): void;
  /** `done` units of the total so far, and `items` found (e.g. audit entries). */
  update(done: number, items?: number): void;
  /** Clears the line (before the result is printed). */
  finish(): void;
  /** Whether anything is drawn at all. */
  readonly enabled: boolean;
}

const count = (n: number, [one, many]: readonly [string, string]) => `${n.toLocaleString('en-US')} ${n === 1 ? one : many}`;

function duration(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '?';
  if (s < 60) return `${Math.ceil(s)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.ceil(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/**
 * A progress line for `label`. `unit` names what `done` counts (tx), `itemUnit` what `items`
 * counts (singular and plural: entry, entries). Disabled (every call a no-op) unless the stream is a TTY and not --json.
 */
export function createProgress(o: ProgressOptions & { unit?: string; itemUnit?: readonly [string, string] }): Progress {
  const stream = o.stream ?? process.stderr;
  const enabled = Boolean(stream.isTTY) && !o.json;
  const now = o.now ?? Date.now;
  const gap = 1000 / (o.perSecond ?? 5);
  const unit = o.unit ?? 'tx';
  const itemUnit = o.itemUnit ?? (['entry', 'entries'] as const);
  const started = now();
  let total: number | undefined;
  let last = -Infinity;
  let drawn = 0;
  const draw = (done: number, items: number | undefined) => {
    const elapsed = (now() - started) / 1000;
    // No rate (nor ETA) in the first second: a few transactions say nothing about the rest.
    const rate = elapsed >= 1 ? done / elapsed : 0;
    const parts = [`${o.label}: ${unit} ${done.toLocaleString('en-US')}${total !== undefined ? `/${total.toLocaleString('en-US')} (${total ? Math.floor((done / total) * 100) : 100}%)` : ''}`];
    if (items !== undefined) parts.push(count(items, itemUnit));
    if (rate > 0) parts.push(`${Math.round(rate).toLocaleString('en-US')} ${unit}/s`);
    if (total !== undefined && rate > 0 && done < total) parts.push(`ETA ${duration((total - done) / rate)}`);
    const line = parts.join(', ');
    // \r and a clear to the end of the line: the line is redrawn in place.
    stream.write(`\r${line}\x1b[K`);
    drawn = line.length;
  };
  return {
    enabled,
    total(n) {
      total = n;
    },
    update(done, items) {
      if (!enabled) return;
      const t = now();
      if (t - last < gap && !(total !== undefined && done >= total)) return;
      last = t;
      draw(done, items);
    },
    finish() {
      if (enabled && drawn) stream.write('\r\x1b[K');
      drawn = 0;
    },
  };
}
