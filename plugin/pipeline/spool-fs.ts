// The file calls the spool makes, behind one small interface: node:fs by default, and a seam
// where unit tests inject ENOSPC, EIO or EACCES at a chosen call (faultyFs).
import { fdatasync, mkdirSync, openSync, closeSync, readdirSync, readSync, renameSync, unlinkSync, ftruncateSync, fsyncSync, write, writeSync } from 'node:fs';

export type SpoolFsCall = 'open' | 'write' | 'fsync' | 'truncate' | 'rename' | 'unlink' | 'read';

export interface SpoolFs {
  open(path: string, flags: string, mode?: number): number;
  close(fd: number): void;
  /** Writes all of `data` at `position`. */
  write(fd: number, data: Buffer, position: number): Promise<void>;
  writeSync(fd: number, data: Buffer, position: number): void;
  fsync(fd: number): Promise<void>;
  fsyncSync(fd: number): void;
  truncate(fd: number, length: number): void;
  rename(from: string, to: string): void;
  unlink(path: string): void;
  /** Bytes [start, end) of a file (fewer when it is shorter); the whole file without `end`. */
  read(path: string, start?: number, end?: number): Buffer;
  readdir(dir: string): string[];
  mkdir(dir: string): void;
}

export const nodeFs: SpoolFs = {
  open: (path, flags, mode) => openSync(path, flags, mode),
  close: (fd) => closeSync(fd),
  write: (fd, data, position) => new Promise((resolve, reject) => {
    const next = (at: number) => {
      write(fd, data, at, data.length - at, position + at, (err, n) => {
        if (err) return reject(err);
        if (at + n < data.length) return next(at + n);
        resolve();
      });
    };
    next(0);
  }),
  writeSync(fd, data, position) {
    let at = 0;
    while (at < data.length) at += writeSync(fd, data, at, data.length - at, position + at);
  },
  // fdatasync: the spool's files only grow by writes or are overwritten in place; their size is
  // data for fdatasync, so nothing the spool needs is left out.
  fsync: (fd) => new Promise((resolve, reject) => fdatasync(fd, (err) => (err ? reject(err) : resolve()))),
  fsyncSync: (fd) => fsyncSync(fd),
  truncate: (fd, length) => ftruncateSync(fd, length),
  rename: (from, to) => renameSync(from, to),
  unlink: (path) => unlinkSync(path),
  read(path, start = 0, end = Infinity) {
    const fd = openSync(path, 'r');
    try {
      const chunks: Buffer[] = [];
      let at = start;
      while (at < end) {
        const buf = Buffer.allocUnsafe(Math.min(end - at, 1 << 20));
        const n = readSync(fd, buf, 0, buf.length, at);
        if (n === 0) break;
        chunks.push(n === buf.length ? buf : buf.subarray(0, n));
        at += n;
      }
      return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
    } finally {
      closeSync(fd);
    }
  },
  readdir: (dir) => readdirSync(dir),
  mkdir: (dir) => void mkdirSync(dir, { recursive: true, mode: 0o700 }),
};

/** An errno error as node:fs raises it. */
export function fsError(code: 'ENOSPC' | 'EIO' | 'EACCES', call: string, path = ''): NodeJS.ErrnoException {
  const msg = { ENOSPC: 'no space left on device', EIO: 'i/o error', EACCES: 'permission denied' }[code];
  const e: NodeJS.ErrnoException = new Error(`${code}: ${msg}, ${call}${path ? ` '${path}'` : ''}`);
  e.code = code;
  e.syscall = call;
  return e;
}

/**
 * A SpoolFs that asks `fault` before each call (counted per kind from 1) and fails it with the
 * error returned. A failed write may first write `partial` bytes, as a real ENOSPC does.
 */
export function faultyFs(
  base: SpoolFs,
  fault: (call: SpoolFsCall, n: number, path?: string) => { error: NodeJS.ErrnoException; partial?: number } | undefined,
): SpoolFs {
  const counts = new Map<SpoolFsCall, number>();
  const ask = (call: SpoolFsCall, path?: string) => {
    const n = (counts.get(call) ?? 0) + 1;
    counts.set(call, n);
    return fault(call, n, path);
  };
  const sync = <T>(call: SpoolFsCall, path: string | undefined, run: () => T): T => {
    const f = ask(call, path);
    if (f) throw f.error;
    return run();
  };
  return {
    ...base,
    open: (path, flags, mode) => sync('open', path, () => base.open(path, flags, mode)),
    async write(fd, data, position) {
      const f = ask('write');
      if (f) {
        if (f.partial) base.writeSync(fd, data.subarray(0, Math.min(f.partial, data.length)), position);
        throw f.error;
      }
      return base.write(fd, data, position);
    },
    writeSync: (fd, data, position) => sync('write', undefined, () => base.writeSync(fd, data, position)),
    async fsync(fd) {
      const f = ask('fsync');
      if (f) throw f.error;
      return base.fsync(fd);
    },
    fsyncSync: (fd) => sync('fsync', undefined, () => base.fsyncSync(fd)),
    truncate: (fd, length) => sync('truncate', undefined, () => base.truncate(fd, length)),
    rename: (from, to) => sync('rename', from, () => base.rename(from, to)),
    unlink: (path) => sync('unlink', path, () => base.unlink(path)),
    read: (path, start, end) => sync('read', path, () => base.read(path, start, end)),
  };
}
