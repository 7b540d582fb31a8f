// The state a client trusts in one audit log: the last transaction it verified (id and Alh),
// the server that proved it last, and (for a writer that waits for replicas) the last
// transaction known to be held by them. Kept per log (`<dir>/logs/<log>.json`), not per server:
// any server that proves its history extends this state may serve the log (decisions #23).
// The plugin and each auditor keep their own directory: trusting what somebody else verified
// would defeat the point.
//
// The file holds two copies of the state (two-slot.ts: 4 KiB slots, each `magic | generation |
// length | crc32 | the state as JSON text`), overwritten in place alternately: a save is one
// positional write and one fdatasync (decisions #44), needs no new blocks (it works on a full
// disk), and a save torn by a crash leaves the copy before it, which is the newest state any
// caller was told is saved. The generation moves on only once a write and its fdatasync
// succeeded, so a failed save is retried into the same slot, never over the last durable copy.
// The file is created whole (temp file, fsync, rename, fsync of the directory): the first save,
// the first save over the JSON file of earlier versions (still read), and after a trust reset
// moved the file aside (checked by inode before every save: never write a file moved away).
//
// Saving is asynchronous (the writes and fdatasyncs run off the event loop) and its promise
// resolves once the state is durable: callers await it before they report success. Saves of the
// same file are serialized within the thread; a save asked for while another is being written
// waits for the next write, and when several wait, only the newest state is written: each of
// them resolves once that newer state is durable.
//
// A state file that exists but cannot be read or parsed is reported (UnusableTrustFile), never
// taken for a missing one: that would silently reset trust. Only the trusted session
// (trusted-session.ts) uses this store. States of earlier versions, kept per server identity
// (`<dir>/<server uuid>/<database>.json`), are read by loadLegacy() for their migration.
import { close, closeSync, fdatasync, fstatSync, fsync, mkdir, open, openSync, readFileSync, rename, statSync, write } from 'node:fs';
import { join } from 'node:path';
import { threadId } from 'node:worker_threads';
import { nodeFs } from '../pipeline/spool-fs.js';
import { encodeSlot, readSlots, SLOT_HEADER, type SlotRead } from '../pipeline/two-slot.js';
import { VerificationError } from './proofs/index.js';

/** A trust file (state or binding) that exists but cannot be used; the session says what to do. */
export class UnusableTrustFile extends Error {
  override readonly name = 'UnusableTrustFile';
  constructor(readonly what: 'trusted state file' | 'server binding file', readonly file: string, readonly problem: string) {
    super(`${what} ${file} ${problem}`);
  }
}

export interface TrustedState {
  /** The audit log this state belongs to (decisions #23: the database name unless configured). */
  log: string;
  database: string;
  txId: number;
  /** Accumulated linear hash of tx `txId`. */
  alh: Buffer;
  /** The server (immudb UUID) that proved it last: a change is logged and counted, not refused. */
  serverUuid: string;
  /** The last tx the required replicas were seen to hold (writers with replica acks only). */
  durable?: { txId: number; alh: Buffer } | undefined;
}

interface StateFile {
  log: string;
  database: string;
  tx_id: number;
  alh: string;
  server_uuid: string;
  durable_tx_id?: number;
  durable_alh?: string;
  updated_at: string;
}

function safeName(s: string): string {
  if (!/^[A-Za-z0-9_.-]+$/.test(s) || s === '.' || s === '..') throw new VerificationError(`unsafe name for a trusted state file: ${JSON.stringify(s)}`);
  return s;
}

const HEX32 = /^[0-9a-f]{64}$/;

function readJson(file: string): Record<string, unknown> | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new UnusableTrustFile('trusted state file', file, `cannot be read (${(e as Error).message})`);
  }
  try {
    const v = JSON.parse(text) as unknown;
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch (e) {
    throw new UnusableTrustFile('trusted state file', file, `is not valid JSON (${(e as Error).message})`);
  }
  return {};
}

/** One copy of the state: a page, so that a torn write of one copy cannot reach the other. */
const SLOT = 4096;

/**
 * The newer valid copy of a state file, or the whole file of earlier versions (JSON).
 * `onDamagedCopy`: told when the other copy is not valid (a save torn by a crash, or damage).
 */
function readStateFile(file: string, onDamagedCopy?: () => void): Record<string, unknown> | undefined {
  let read: SlotRead;
  try {
    read = readSlots(nodeFs, file, SLOT);
  } catch (e) {
    throw new UnusableTrustFile('trusted state file', file, `cannot be read (${(e as Error).message})`);
  }
  if (read.kind === 'absent') return undefined;
  if (read.kind === 'ok' && read.otherDamaged) onDamagedCopy?.();
  const text = (read.kind === 'ok' ? read.body : read.bytes).toString('utf8');
  try {
    const v = JSON.parse(text) as unknown;
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch (e) {
    throw new UnusableTrustFile('trusted state file', file, `is not valid JSON, nor does either of its two copies hold a valid state (${(e as Error).message})`);
  }
  return {};
}

export class TrustedStateStore {
  constructor(readonly dir: string) {}

  path(log: string): string {
    return join(this.dir, 'logs', `${safeName(log)}.json`);
  }

  /** The file of a state kept by an earlier version, per server identity. */
  legacyPath(serverUuid: string, database: string): string {
    return join(this.dir, safeName(serverUuid), `${safeName(database)}.json`);
  }

  /**
   * The state kept for this log; undefined only when there is no file. `onDamagedCopy`: told
   * when one of the file's two copies is not valid; the other, older or newer, is used.
   */
  load(log: string, database: string, onDamagedCopy?: (file: string) => void): TrustedState | undefined {
    const file = this.path(log);
    const f = readStateFile(file, () => onDamagedCopy?.(file)) as Partial<StateFile> | undefined;
    if (f === undefined) return undefined;
    const durable = f.durable_tx_id !== undefined || f.durable_alh !== undefined;
    if (
      f.log !== log || f.database !== database || !Number.isSafeInteger(f.tx_id) || f.tx_id! < 1 || typeof f.alh !== 'string' || !HEX32.test(f.alh) ||
      typeof f.server_uuid !== 'string' ||
      (durable && (!Number.isSafeInteger(f.durable_tx_id) || f.durable_tx_id! < 1 || f.durable_tx_id! > f.tx_id! || typeof f.durable_alh !== 'string' || !HEX32.test(f.durable_alh)))
    ) {
      throw new UnusableTrustFile('trusted state file', file, `does not hold a valid state for log ${log} (database ${database})`);
    }
    return {
      log, database, txId: f.tx_id!, alh: Buffer.from(f.alh, 'hex'), serverUuid: f.server_uuid,
      durable: durable ? { txId: f.durable_tx_id!, alh: Buffer.from(f.durable_alh!, 'hex') } : undefined,
    };
  }

  /** A state kept by an earlier version for this server identity and database (migration). */
  loadLegacy(serverUuid: string, database: string): { txId: number; alh: Buffer; file: string } | undefined {
    const file = this.legacyPath(serverUuid, database);
    const f = readJson(file) as { server_uuid?: unknown; database?: unknown; tx_id?: unknown; alh?: unknown } | undefined;
    if (f === undefined) return undefined;
    if (f.server_uuid !== serverUuid || f.database !== database || !Number.isSafeInteger(f.tx_id) || (f.tx_id as number) < 1 || typeof f.alh !== 'string' || !HEX32.test(f.alh)) {
      throw new UnusableTrustFile('trusted state file', file, `does not hold a valid state for server ${serverUuid} database ${database}`);
    }
    return { txId: f.tx_id as number, alh: Buffer.from(f.alh, 'hex'), file };
  }

  /**
   * Closes the state files this thread holds open for saves (a later save opens and reads its
   * file again, as a new process would). Not while a save is under way.
   */
  static closeFiles(): void {
    for (const f of slotFiles.values()) closeSync(f.fd);
    slotFiles.clear();
  }

  /** Writes `state` durably; resolves once it (or a newer state of the same file) is on disk. */
  save(state: TrustedState): Promise<void> {
    const file = this.path(state.log);
    const dir = join(this.dir, 'logs');
    const body: StateFile = {
      log: state.log,
      database: state.database,
      tx_id: state.txId,
      alh: state.alh.toString('hex'),
      server_uuid: state.serverUuid,
      ...(state.durable ? { durable_tx_id: state.durable.txId, durable_alh: state.durable.alh.toString('hex') } : {}),
      updated_at: '',
    };
    return new Promise<void>((resolve, reject) => {
      let q = queues.get(file);
      if (!q) {
        q = { writing: false };
        queues.set(file, q);
      }
      if (q.next) {
        q.next.body = body;
        q.next.waiters.push({ resolve, reject });
      } else {
        q.next = { dir, body, waiters: [{ resolve, reject }] };
      }
      if (!q.writing) void drain(file, q);
    });
  }
}

interface PendingWrite {
  dir: string;
  body: StateFile;
  waiters: Array<{ resolve: () => void; reject: (e: unknown) => void }>;
}

/** Per state file: whether a write is under way, and the newest state waiting for the next one. */
const queues = new Map<string, { writing: boolean; next?: PendingWrite | undefined }>();

async function drain(file: string, q: { writing: boolean; next?: PendingWrite | undefined }): Promise<void> {
  q.writing = true;
  try {
    for (let job = q.next; job; job = q.next) {
      q.next = undefined;
      try {
        await writeStateFile(file, job.dir, { ...job.body, updated_at: new Date().toISOString() });
        for (const w of job.waiters) w.resolve();
      } catch (e) {
        const err = new UnusableTrustFile('trusted state file', file, `cannot be written (${(e as Error).message})`);
        for (const w of job.waiters) w.reject(err);
      }
    }
  } finally {
    q.writing = false;
    queues.delete(file);
  }
}

// The file calls of a save through node:fs callbacks: lighter than fs/promises' FileHandle.
const done = <T>(resolve: (v: T) => void, reject: (e: unknown) => void) => (e: NodeJS.ErrnoException | null, v: T) => (e ? reject(e) : resolve(v));
const fsOpen = (path: string, flags: string, mode?: number) => new Promise<number>((res, rej) => open(path, flags, mode, done(res, rej)));
const fsSync = (fd: number) => new Promise<void>((res, rej) => fsync(fd, done(res, rej)));
const fsDatasync = (fd: number) => new Promise<void>((res, rej) => fdatasync(fd, done(res, rej)));
const fsClose = (fd: number) => new Promise<void>((res, rej) => close(fd, done(res, rej)));
const fsRename = (from: string, to: string) => new Promise<void>((res, rej) => rename(from, to, done(res, rej)));
const fsMkdir = (dir: string) => new Promise<void>((res, rej) => mkdir(dir, { recursive: true, mode: 0o700 }, (e) => (e ? rej(e) : res())));
function fsWrite(fd: number, data: Buffer, position: number, at = 0): Promise<void> {
  return new Promise<void>((res, rej) =>
    write(fd, data, at, data.length - at, position + at, (e, n) => (e ? rej(e) : at + n < data.length ? fsWrite(fd, data, position, at + n).then(res, rej) : res())),
  );
}

/** Directories this thread made sure exist (a save does not ask again; see tmpFile). */
const madeDirs = new Set<string>();

/** Opens the temp file, creating the directory first when it is not known to exist (or was removed since). */
async function tmpFile(tmp: string, dir: string): Promise<number> {
  if (!madeDirs.has(dir)) {
    await fsMkdir(dir);
    madeDirs.add(dir);
  }
  try {
    return await fsOpen(tmp, 'w', 0o600);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    madeDirs.delete(dir);
    await fsMkdir(dir);
    madeDirs.add(dir);
    return fsOpen(tmp, 'w', 0o600);
  }
}

/** A state file this thread overwrites in place: its descriptor, its inode, its newest durable generation. */
interface SlotFile {
  fd: number;
  dev: number;
  ino: number;
  generation: number;
}

const slotFiles = new Map<string, SlotFile>();

/** The file at `path` is still the one `f` has open (not moved aside by a trust reset, nor replaced). */
function stillAt(path: string, f: SlotFile): boolean {
  try {
    const st = statSync(path);
    return st.ino === f.ino && st.dev === f.dev;
  } catch {
    return false;
  }
}

/** Opens a state file of two copies for overwrites; undefined when there is none (or a file of earlier versions). */
function openSlotFile(file: string): SlotFile | undefined {
  const read = readSlots(nodeFs, file, SLOT);
  if (read.kind !== 'ok') return undefined;
  const fd = openSync(file, 'r+');
  try {
    const st = fstatSync(fd);
    if (st.size < 2 * SLOT) throw new Error(`${st.size} bytes, not two copies of ${SLOT}`);
    return { fd, dev: st.dev, ino: st.ino, generation: read.generation };
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

async function writeStateFile(file: string, dir: string, body: StateFile): Promise<void> {
  const text = Buffer.from(JSON.stringify(body, null, 2) + '\n');
  if (SLOT_HEADER + text.length > SLOT) throw new Error(`a state of ${text.length} bytes does not fit a copy of ${SLOT}`);
  let f = slotFiles.get(file);
  if (f && !stillAt(file, f)) {
    slotFiles.delete(file);
    closeSync(f.fd);
    f = undefined;
  }
  if (!f) {
    f = openSlotFile(file);
    if (!f) return createStateFile(file, dir, text);
    slotFiles.set(file, f);
  }
  const generation = f.generation + 1;
  // The whole slot: its padding overwrites what a longer state left there.
  const slot = Buffer.alloc(SLOT);
  encodeSlot(text, generation).copy(slot);
  await fsWrite(f.fd, slot, (generation % 2) * SLOT);
  await fsDatasync(f.fd);
  f.generation = generation;
}

/** The file whole, under another name, then renamed: its state is copy 1 (generation 1). */
async function createStateFile(file: string, dir: string, text: Buffer): Promise<void> {
  const whole = Buffer.alloc(2 * SLOT);
  encodeSlot(text, 1).copy(whole, SLOT);
  // Per thread: the plugin server's threads each have their own save queue (module state).
  const tmp = `${file}.${process.pid}.${threadId}.tmp`;
  const fd = await tmpFile(tmp, dir);
  try {
    await fsWrite(fd, whole, 0);
    await fsSync(fd);
  } finally {
    await fsClose(fd);
  }
  await fsRename(tmp, file);
  const dfd = await fsOpen(dir, 'r');
  try {
    await fsSync(dfd);
  } finally {
    await fsClose(dfd);
  }
}
