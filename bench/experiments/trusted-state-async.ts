// plugin/store/trusted-state.ts with a save() that does not block the event loop: the newest
// state is written asynchronously (temp file, fsync, rename, fsync of the directory, as today),
// and saves that arrive while one is being written are coalesced into the next write. The
// writer continues with the next batch meanwhile. A crash can then leave the state one batch
// behind: still a state this writer verified, so proofs and rollback detection stay sound, only
// the rollback window grows by that one batch.
import { mkdir, open, rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import { TrustedStateStore as SyncStore, type TrustedState } from '../../plugin/store/trusted-state.js';

export type { TrustedState };

export class TrustedStateStore extends SyncStore {
  private pending = new Map<string, TrustedState>();
  private writing = new Set<string>();

  override save(state: TrustedState): void {
    const file = this.path(state.serverUuid, state.database);
    this.pending.set(file, state);
    if (!this.writing.has(file)) void this.drain(file);
  }

  private async drain(file: string): Promise<void> {
    this.writing.add(file);
    try {
      for (let s = this.pending.get(file); s; s = this.pending.get(file)) {
        this.pending.delete(file);
        await writeState(file, s);
      }
    } catch (e) {
      process.stderr.write(`trusted state ${file}: ${(e as Error).message}\n`);
    } finally {
      this.writing.delete(file);
    }
  }
}

async function writeState(file: string, state: TrustedState): Promise<void> {
  const dir = dirname(file);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const body = {
    server_uuid: state.serverUuid,
    database: state.database,
    tx_id: state.txId,
    alh: state.alh.toString('hex'),
    updated_at: new Date().toISOString(),
  };
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
