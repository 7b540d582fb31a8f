// The state a client trusts: the last transaction it verified (id and Alh), per server identity
// and database. Written atomically (temp file, fsync, rename, fsync of the directory) so a crash
// leaves either the old or the new state, never a torn one. The plugin and each auditor keep
// their own directory: trusting what somebody else verified would defeat the point.
import { mkdirSync, openSync, writeSync, fsyncSync, closeSync, renameSync, readFileSync } from 'node:fs';
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

  save(state: TrustedState): void {
    const file = this.path(state.serverUuid, state.database);
    const dir = join(this.dir, safeName(state.serverUuid));
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const body: StateFile = {
      server_uuid: state.serverUuid,
      database: state.database,
      tx_id: state.txId,
      alh: state.alh.toString('hex'),
      updated_at: new Date().toISOString(),
    };
    const tmp = `${file}.${process.pid}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, JSON.stringify(body, null, 2) + '\n');
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
    const dfd = openSync(dir, 'r');
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  }
}
