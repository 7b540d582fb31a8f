// The per-node sequence of a log (docs/decisions.md #30): every record the plugin writes under a
// key prefix of one destination (audit entries and lifecycle entries) carries the next number of
// that prefix's stream, so an auditor can prove that none is missing. The stream's state is a
// small file in the destination's spool directory, `sequence.<prefix>.json`:
//   stream       a UUID made when the file is created (a new disk starts a new stream, never
//                reuses numbers of the old one under the same name)
//   reserved_to  numbers up to this one may have been handed out; a run reserves blocks ahead,
//                written and fsynced before any number of the block is used
//   clean_last   set by a clean stop: the last number used; the next run continues right after
// A crash leaves reserved_to ahead of the last number used: the next run continues after
// reserved_to, and its `started` lifecycle entry says which numbers were reserved and never
// written (an explained gap, not a missing entry). A number is never handed out twice.
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { open as openAsync, rename as renameAsync } from 'node:fs/promises';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';

/** Numbers reserved per write of the state file (one small fsync per block). */
export const SEQUENCE_BLOCK = 4096;

/** How the run before this one ended, as the state file says. */
export interface PreviousRun {
  /** A clean stop (its last number known) or not (a crash: only the reservation is known). */
  clean: boolean;
  /** The last number a clean stop used; for a crash, the end of its reservation. */
  last: number;
}

interface StateFile {
  stream: string;
  reserved_to: number;
  clean_last: number | null;
}

export class SequenceStream {
  /** The last number handed out (0: none yet in this stream). */
  private last: number;
  private reservedTo: number;
  /** The first number of this run. */
  readonly first: number;
  readonly stream: string;
  /** The previous run of this stream; null when the stream is new. */
  readonly previous: PreviousRun | null;

  private constructor(private readonly file: string, state: StateFile | null, private readonly block: number) {
    if (state) {
      this.stream = state.stream;
      this.previous = state.clean_last !== null ? { clean: true, last: state.clean_last } : { clean: false, last: state.reserved_to };
      this.last = this.previous.last;
    } else {
      this.stream = randomUUID();
      this.previous = null;
      this.last = 0;
    }
    this.first = this.last + 1;
    // Marks the run as open (clean_last null) before its first number is used.
    this.reservedTo = this.last;
    this.reserve();
  }

  /** Opens (creating) the stream of `prefix` in the spool directory `dir`. */
  static open(dir: string, prefix: string, block = SEQUENCE_BLOCK): SequenceStream {
    const file = join(dir, `sequence.${prefix}.json`);
    let state: StateFile | null = null;
    try {
      state = parseState(readFileSync(file, 'utf8'));
      if (!state) throw new Error(`${file} is not a sequence state file; remove it to start a new stream`);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    return new SequenceStream(file, state, block);
  }

  /**
   * The next number; reserves the next block first when this one is used up (throws when it
   * cannot). Halfway through a block the next one is reserved off the thread, so the sync
   * fsync (14 ms measured on a loaded machine) is only paid when that has not finished yet.
   */
  next(): number {
    if (this.last >= this.reservedTo) this.reserve();
    else if (!this.ahead && this.reservedTo - this.last <= this.block / 2) this.reserveAhead();
    return ++this.last;
  }

  /** A reservation written off the thread, if one is under way. */
  private ahead: Promise<void> | undefined;
  /** Bumped by close() and by sync reservations: an earlier async one then changes nothing. */
  private epoch = 0;

  private reserveAhead() {
    const epoch = this.epoch;
    const to = this.reservedTo + this.block;
    const tmp = `${this.file}.ahead.tmp`;
    const state: StateFile = { stream: this.stream, reserved_to: to, clean_last: null };
    this.ahead = (async () => {
      const fh = await openAsync(tmp, 'w', 0o600);
      try {
        await fh.writeFile(JSON.stringify(state) + '\n');
        await fh.sync();
      } finally {
        await fh.close();
      }
      // Only if nothing was saved since: a clean stop or a sync reservation must not be undone.
      if (epoch !== this.epoch) return;
      await renameAsync(tmp, this.file);
      const dh = await openAsync(join(this.file, '..'), 'r');
      try {
        await dh.sync();
      } finally {
        await dh.close();
      }
      if (epoch === this.epoch && to > this.reservedTo) this.reservedTo = to;
    })().catch(() => undefined).finally(() => {
      this.ahead = undefined;
    });
  }

  /** The last number handed out by this stream (0 when none ever). */
  get lastNumber(): number {
    return this.last;
  }

  /** A clean stop: the next run continues right after the last number used. */
  close(): void {
    this.epoch++;
    this.save({ stream: this.stream, reserved_to: this.last, clean_last: this.last });
    // A number asked for after this (an entry still arriving during the shutdown) reserves a new
    // block first: the file no longer covers the rest of the old one.
    this.reservedTo = this.last;
  }

  private reserve() {
    this.epoch++;
    const to = this.last + this.block;
    this.save({ stream: this.stream, reserved_to: to, clean_last: null });
    this.reservedTo = to;
  }

  /** Whole or not at all: written under another name, fsynced, renamed, the directory fsynced. */
  private save(s: StateFile) {
    const tmp = `${this.file}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, JSON.stringify(s) + '\n');
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.file);
    const dfd = openSync(join(this.file, '..'), 'r');
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  }
}

function parseState(text: string): StateFile | null {
  try {
    const v = JSON.parse(text) as Partial<StateFile>;
    if (typeof v.stream !== 'string' || !Number.isSafeInteger(v.reserved_to) || v.reserved_to! < 0) return null;
    const clean = v.clean_last === null || v.clean_last === undefined ? null : v.clean_last;
    if (clean !== null && !Number.isSafeInteger(clean)) return null;
    return { stream: v.stream, reserved_to: v.reserved_to!, clean_last: clean };
  } catch {
    return null;
  }
}
