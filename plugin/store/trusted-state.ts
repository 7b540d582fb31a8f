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
import { readFileSync } from 'node:fs';
import { mkdir, open, rename } from 'node:fs/promises';
import { join } from 'node:path';

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
  if (!/^[A-Za-z0-9_.-]+$/.test(s) || s === '.' || s === '..') throw new Error(`unsafe name for a state file: ${JSON.stringify(s)}`);
  return s;
}

export class TrustedStateStore {
  constructor(readonly dir: string) {}

  path(serverUuid: string, database: string): string {
    return join(this.dir, safeName(serverUuid), `${safeName(database)}.json`);
  }

  load(serverUuid: string, database: string): TrustedState | undefined {
    let text: string;
    try {
      text = readFileSync(this.path(serverUuid, database), 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
    const f = JSON.parse(text) as StateFile;
    if (f.server_uuid !== serverUuid || f.database !== database || !Number.isSafeInteger(f.tx_id) || !/^[0-9a-f]{64}$/.test(f.alh)) {
      throw new Error(`trusted state file ${this.path(serverUuid, database)} is corrupt`);
    }
    return { serverUuid, database, txId: f.tx_id, alh: Buffer.from(f.alh, 'hex') };
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
        for (const w of job.waiters) w.reject(e);
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
