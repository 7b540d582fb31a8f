// In-process timing of one function: warm up, then the median of a few timed repetitions, in
// microseconds per call. Used for the capture and proof-check stages, and for the proposed
// replacements next to the code they would replace (same inputs, same process, same run).

export interface MicroResult {
  name: string;
  usPerOp: number;
  ops: number;
}

export function micro(name: string, fn: (i: number) => unknown, opts: { minMs?: number; reps?: number; warmup?: number } = {}): MicroResult {
  const minMs = opts.minMs ?? 200;
  const reps = opts.reps ?? 3;
  let sink: unknown;
  for (let i = 0; i < (opts.warmup ?? 200); i++) sink = fn(i);
  // Calibrate a batch size that takes about minMs.
  let n = 1;
  for (;;) {
    const t = performance.now();
    for (let i = 0; i < n; i++) sink = fn(i);
    const ms = performance.now() - t;
    if (ms >= minMs / 4 || n > 1e7) break;
    n *= 2;
  }
  n *= 4;
  const times: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t = performance.now();
    for (let i = 0; i < n; i++) sink = fn(i);
    times.push(((performance.now() - t) * 1000) / n);
  }
  if (sink === Symbol.for('never')) throw new Error('unreachable');
  times.sort((a, b) => a - b);
  return { name, usPerOp: times[times.length >> 1]!, ops: n * reps };
}
