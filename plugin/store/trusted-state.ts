// The state a client trusts: the last transaction it verified (id and Alh), per server identity
// and database. Written atomically (temp file, fsync, rename, fsync of the directory) so a crash
// leaves either the old or the new state, never a torn one. The plugin and each auditor keep
// their own directory: trusting what somebody else verified would defeat the point.
//
// Saving is asynchronous (the fsyncs run off the event loop) and its promise resolves once the
// state is durable: callers await it before they report success. Saves of the same file are
// serialized within the process (they share the temp file); a save asked for while another is
// being written waits for the next write, and when several wait, only the newest state is
// written: each of them resolves once that newer state is durable.
//
// A state file that exists but cannot be read or parsed is reported (UnusableTrustFile), never
// taken for a missing one: that would silently reset trust. Only the trusted session
// (trusted-session.ts) uses this store.
import { readFileSync } from 'node:fs';
import { mkdir, open, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { VerificationError } from './proofs/index.js';

/** A trust file (state or binding) that exists but cannot be used; the session says what to do. */
export class UnusableTrustFile extends Error {
  override readonly name = 'UnusableTrustFile';
  constructor(readonly what: 'trusted state file' | 'server binding file', readonly file: string, readonly problem: string) {
    super(`${what} ${file} ${problem}`);
  }
}

export interface TrustedState {
  serverUuid: string;
  database: string;
  txId: number;
  /** Accumulated linear hash of tx `txId`. */
  alh: Buffer;
}

interface StateFile {
  server_uuid: string;
  database: string;
  tx_id: number;
  alh: string;
  updated_at: string;
}

function safeName(s: string): string {
  if (!/^[A-Za-z0-9_.-]+$/.test(s) || s === '.' || s === '..') throw new VerificationError(`unsafe name for a trusted state file: ${JSON.stringify(s)}`);
  return s;
}

export class TrustedStateStore {
  constructor(readonly dir: string) {}

  path(serverUuid: string, database: string): string {
    return join(this.dir, safeName(serverUuid), `${safeName(database)}.json`);
  }

  /** The state kept for this identity and database; undefined only when there is no file. */
  load(serverUuid: string, database: string): TrustedState | undefined {
    const file = this.path(serverUuid, database);
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new UnusableTrustFile('trusted state file', file, `cannot be read (${(e as Error).message})`);
    }
    let f: Partial<StateFile>;
    try {
      f = JSON.parse(text) as Partial<StateFile>;
    } catch (e) {
      throw new UnusableTrustFile('trusted state file', file, `is not valid JSON (${(e as Error).message})`);
    }
    if (typeof f !== 'object' || f === null || f.server_uuid !== serverUuid || f.database !== database || !Number.isSafeInteger(f.tx_id) || f.tx_id! < 1 || typeof f.alh !== 'string' || !/^[0-9a-f]{64}$/.test(f.alh)) {
      throw new UnusableTrustFile('trusted state file', file, `does not hold a valid state for server ${serverUuid} database ${database}`);
    }
    return { serverUuid, database, txId: f.tx_id!, alh: Buffer.from(f.alh, 'hex') };
  }

  /** Writes `state` durably; resolves once it (or a newer state of the same file) is on disk. */
  save(state: TrustedState): Promise<void> {
    const file = this.path(state.serverUuid, state.database);
    const dir = join(this.dir, safeName(state.serverUuid));
    const body: StateFile = {
      server_uuid: state.serverUuid,
      database: state.database,
      tx_id: state.txId,
      alh: state.alh.toString('hex'),
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

async function writeStateFile(file: string, dir: string, body: StateFile): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(JSON.stringify(body, null, 2) + '\n');
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, file);
  const dh = await open(dir, 'r');
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}
