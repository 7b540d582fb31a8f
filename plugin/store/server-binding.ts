// Which immudb identity (server UUID) sits behind an address and database. The first verified
// contact records it; a different identity later means another server or data directory was put
// behind the same address, and trusting it afresh would hide a rewrite of history. A binding
// file that cannot be read is reported (UnusableTrustFile), never taken for a missing one.
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { UnusableTrustFile } from './trusted-state.js';

export class ServerBinding {
  constructor(private readonly dir: string) {}

  file(host: string, port: number, database: string): string {
    const name = `${host}_${port}_${database}`.replace(/[^A-Za-z0-9_.-]/g, '_');
    return join(this.dir, 'bindings', `${name}.json`);
  }

  /** The identity recorded for this address and database; undefined when none was recorded. */
  read(host: string, port: number, database: string): string | undefined {
    const file = this.file(host, port, database);
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new UnusableTrustFile('server binding file', file, `cannot be read (${(e as Error).message})`);
    }
    let uuid: unknown;
    try {
      uuid = (JSON.parse(text) as { server_uuid?: unknown }).server_uuid;
    } catch (e) {
      throw new UnusableTrustFile('server binding file', file, `is not valid JSON (${(e as Error).message})`);
    }
    if (typeof uuid !== 'string' || !uuid) throw new UnusableTrustFile('server binding file', file, 'has no server_uuid');
    return uuid;
  }

  /** Records the identity of a first contact, durably (temp file, fsync, rename, fsync of the directory). */
  record(host: string, port: number, database: string, serverUuid: string): void {
    const file = this.file(host, port, database);
    const dir = join(this.dir, 'bindings');
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const tmp = `${file}.${process.pid}.tmp`;
      writeFileSync(tmp, JSON.stringify({ host, port, database, server_uuid: serverUuid, since: new Date().toISOString() }, null, 2) + '\n', { mode: 0o600, flush: true });
      renameSync(tmp, file);
      const fd = openSync(dir, 'r');
      try {
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    } catch (e) {
      throw new UnusableTrustFile('server binding file', file, `cannot be written (${(e as Error).message})`);
    }
  }
}
