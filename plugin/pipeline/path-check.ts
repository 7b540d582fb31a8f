// Directories the plugin writes to (a destination's spool, the trusted state) are checked, and
// created, before anything else touches them. Node's mkdir({ recursive: true }) never returns
// on /proc (Node 24.21: ENOENT there makes it climb and retry forever, sync and async alike,
// 100 % of a core): one bad spool_dir took the audit thread, every route's log events and the
// SIGTERM exit with it. So: bounded work (at most MAX_CREATE missing levels, created one mkdir
// at a time, never recursively), pseudo file systems refused by their statfs magic number, a
// non-directory refused, and a write probe (root ignores permission bits; EROFS does not).
// The same steps run with async calls under a deadline (the audit thread: a hung file system
// cannot stall the thread nor StartInstance beyond it) or with sync calls (IMMUDB_AUDIT_THREAD=off:
// a handful of system calls on the event loop).
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, statfsSync, statSync, unlinkSync, writeSync, type Stats, type StatsFs } from 'node:fs';
import { mkdir, open, stat, statfs, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

/** Directory levels a check may create below the nearest existing one. */
const MAX_CREATE = 32;
/** How long the async check may take (StartInstance waits up to 60 s for the audit thread). */
export const CHECK_TIMEOUT_MS = 10_000;

/** statfs f_type of file systems that hold no files of ours (linux/magic.h). */
const PSEUDO_FS = new Map<number, string>([
  [0x9fa0, 'proc'],
  [0x62656572, 'sysfs'],
  [0x27e0eb, 'cgroup'],
  [0x63677270, 'cgroup2'],
  [0x64626720, 'debugfs'],
  [0x74726163, 'tracefs'],
  [0x73636673, 'securityfs'],
  [0x1cd1, 'devpts'],
  [0x42494e4d, 'binfmt_misc'],
  [0xcafe4a11, 'bpf'],
  [0x6e736673, 'nsfs'],
  [0x62656570, 'configfs'],
  [0x65735543, 'fusectl'],
  [0xf97cff8c, 'selinuxfs'],
  [0x5a3c69f0, 'apparmorfs'],
  [0x6165676c, 'pstore'],
  [0xde5e81e4, 'efivarfs'],
  [0x19800202, 'mqueue'],
  [0x958458f6, 'hugetlbfs'],
]);

export class PathError extends Error {
  override readonly name = 'PathError';
}

/** One file-system call: its name and its one argument (a path, or the probe's open file). */
type Op = 'stat' | 'statfs' | 'mkdir' | 'open' | 'write' | 'close' | 'unlink';
type Call = [Op, unknown];

const code = (e: unknown) => (e as NodeJS.ErrnoException).code;

/** The check as steps (each one file-system call), run by a sync or an async driver. */
function* steps(dir: string): Generator<Call, void, unknown> {
  // 1. The nearest existing ancestor, bounded.
  const missing: string[] = [];
  let at = dir;
  let st: Stats;
  for (;;) {
    try {
      st = (yield ['stat', at]) as Stats;
      break;
    } catch (e) {
      if (code(e) !== 'ENOENT' && code(e) !== 'ENOTDIR') throw new PathError(`${at}: ${(e as Error).message}`);
      const parent = dirname(at);
      if (parent === at || missing.length >= MAX_CREATE) throw new PathError(`more than ${MAX_CREATE} directory levels would have to be created`);
      missing.unshift(at);
      at = parent;
    }
  }
  // 2. Where it is and what it is.
  const fsType = PSEUDO_FS.get(Number(((yield ['statfs', at]) as StatsFs).type));
  if (fsType) throw new PathError(`${at} is on ${fsType}, a pseudo file system, not a place for files`);
  if (!st.isDirectory()) throw new PathError(`${at} is not a directory`);
  // 3. The missing levels, one at a time.
  for (const d of missing) {
    try {
      yield ['mkdir', d];
    } catch (e) {
      if (code(e) !== 'EEXIST') throw new PathError(`cannot create ${d}: ${(e as Error).message}`);
      if (!((yield ['stat', d]) as Stats).isDirectory()) throw new PathError(`${d} is not a directory`);
    }
  }
  // 4. Writable, by whoever we run as. A full disk is not a bad path: the spool runs degraded
  //    on it (entries held in memory and written to immudb directly) and recovers with space.
  try {
    const file = `${dir}/.write-probe-${process.pid}-${randomBytes(4).toString('hex')}`;
    const handle = yield ['open', file];
    try {
      yield ['write', handle];
    } finally {
      yield ['close', handle];
      yield ['unlink', file];
    }
  } catch (e) {
    if (code(e) === 'ENOSPC' || code(e) === 'EDQUOT') return;
    throw new PathError(`cannot be written: ${(e as Error).message}`);
  }
}

/** Each call, sync (IMMUDB_AUDIT_THREAD=off) and async (the audit thread): the same system call. */
const SYNC: Record<Op, (arg: unknown) => unknown> = {
  stat: (path) => statSync(path as string),
  statfs: (path) => statfsSync(path as string),
  mkdir: (path) => mkdirSync(path as string, { mode: 0o700 }),
  open: (file) => openSync(file as string, 'wx', 0o600),
  write: (fd) => writeSync(fd as number, 'x'),
  close: (fd) => closeSync(fd as number),
  unlink: (file) => unlinkSync(file as string),
};
const ASYNC: Record<Op, (arg: unknown) => Promise<unknown>> = {
  stat: (path) => stat(path as string),
  statfs: (path) => statfs(path as string),
  mkdir: (path) => mkdir(path as string, { mode: 0o700 }),
  open: (file) => open(file as string, 'wx', 0o600),
  write: (fh) => (fh as FileHandle).write('x'),
  close: (fh) => (fh as FileHandle).close(),
  unlink: (file) => unlink(file as string),
};

function described(what: string, dir: string, e: unknown): Error {
  return e instanceof PathError ? new PathError(`${what} ${dir}: ${e.message}`) : (e as Error);
}

/**
 * Runs the steps with `call`: a sync call's result goes straight back in, a promise's when it
 * settles; the one driver serves both checks. Returns a promise only when a call did.
 */
function drive(gen: Generator<Call, void, unknown>, call: (c: Call) => unknown, next = gen.next()): void | Promise<void> {
  while (!next.done) {
    let result: unknown;
    try {
      result = call(next.value);
    } catch (e) {
      next = gen.throw(e);
      continue;
    }
    if (result instanceof Promise) return result.then((r) => drive(gen, call, gen.next(r)), (e: unknown) => drive(gen, call, gen.throw(e)));
    next = gen.next(result);
  }
}

/**
 * Checks `path` (creating the missing levels) with sync calls: bounded, for the thread that
 * runs the pipeline when there is no audit thread. Returns the absolute path.
 */
export function checkDirectorySync(path: string, what: string): string {
  const dir = resolve(path);
  try {
    drive(steps(dir), ([op, arg]) => SYNC[op](arg));
  } catch (e) {
    throw described(what, dir, e);
  }
  return dir;
}

/** Checks `path` as checkDirectorySync does, with async calls, within `timeoutMs`. */
export async function checkDirectory(path: string, what: string, timeoutMs = CHECK_TIMEOUT_MS): Promise<string> {
  const dir = resolve(path);
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      drive(steps(dir), ([op, arg]) => ASYNC[op](arg)),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new PathError(`not checked within ${timeoutMs / 1000} s (a hung file system?)`)), timeoutMs);
      }),
    ]);
  } catch (e) {
    throw described(what, dir, e);
  } finally {
    clearTimeout(timer);
  }
  return dir;
}
