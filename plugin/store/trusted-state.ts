// The state a client trusts in one audit log: the last transaction it verified (id and Alh),
// the server that proved it last, and (for a writer that waits for replicas) the last
// transaction known to be held by them. Kept per log (`<dir>/logs/<log>.json`), not per server:
// any server that proves its history extends this state may serve the log (decisions #23).
// Written atomically (temp file, fsync, rename, fsync of the directory) so a crash leaves
// either the old or the new state, never a torn one. The plugin and each auditor keep their
// own directory: trusting what somebody else verified would defeat the point.
//
// Saving is asynchronous (the fsyncs run off the event loop) and its promise resolves once the
// state is durable: callers await it before they report success. Saves of the same file are
// serialized within the process (they share the temp file); a save asked for while another is
// being written waits for the next write, and when several wait, only the newest state is
// written: each of them resolves once that newer state is durable.
//
// A state file that exists but cannot be read or parsed is reported (UnusableTrustFile), never
// taken for a missing one: that would silently reset trust. Only the trusted session
// (trusted-session.ts) uses this store. States of earlier versions, kept per server identity
// (`<dir>/<server uuid>/<database>.json`), are read by loadLegacy() for their migration.
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

export class TrustedStateStore {
  constructor(readonly dir: string) {}

  path(log: string): string {
    return join(this.dir, 'logs', `${safeName(log)}.json`);
  }

  /** The file of a state kept by an earlier version, per server identity. */
  legacyPath(serverUuid: string, database: string): string {
    return join(this.dir, safeName(serverUuid), `${safeName(database)}.json`);
  }

  /** The state kept for this log; undefined only when there is no file. */
  load(log: string, database: string): TrustedState | undefined {
    const file = this.path(log);
    const f = readJson(file) as Partial<StateFile> | undefined;
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
