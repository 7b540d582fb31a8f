// Reads V8's --trace-gc lines (see test/fixtures/preload/sample-gc.cts) from a process's output:
// the heap that is still live after each full collection, per isolate. Unlike RSS, which follows
// the heap V8 has reserved (it grows in steps towards --max-old-space-size however little is
// live), this is what a leak makes grow.
import { fileURLToPath } from 'node:url';

/** NODE_OPTIONS fragment: GC traced, and a full collection every 250 ms, in every thread. */
export function sampleGcOption(): string {
  return `--require=${fileURLToPath(new URL('../fixtures/preload/sample-gc.cjs', import.meta.url))}`;
}

export interface FullGc {
  /** V8 isolate address: one per thread. */
  isolate: string;
  /** Offset of the line in the text it was read from. */
  offset: number;
  /** Heap in use after the collection, MB. */
  liveMb: number;
}

//   [20793:0x84ed000]    20400 ms: Mark-Compact 58.8 (153.8) -> 22.5 (154.0) MB, ...
const MARK_COMPACT = /\[\d+:(0x[0-9a-f]+)\]\s+[\d.]+ ms: Mark-Compact(?: \(reduce\))? [\d.]+ \([\d.]+\) -> ([\d.]+) \([\d.]+\) MB/g;

export function fullGcs(text: string): FullGc[] {
  const out: FullGc[] = [];
  for (const m of text.matchAll(MARK_COMPACT)) out.push({ isolate: m[1]!, offset: m.index, liveMb: Number(m[2]) });
  return out;
}
