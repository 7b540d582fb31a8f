// Which immudb identity (server UUID) sits behind an address and database. The first verified
// contact records it; a different identity later means another server or data directory was put
// behind the same address, and trusting it afresh would hide a rewrite of history.
import { mkdirSync, readFileSync, writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';

export class ServerBinding {
  constructor(private readonly dir: string) {}

  private file(host: string, port: number, database: string): string {
    const name = `${host}_${port}_${database}`.replace(/[^A-Za-z0-9_.-]/g, '_');
    return join(this.dir, 'bindings', `${name}.json`);
  }

  /** The identity recorded for this address and database, if any. */
  known(host: string, port: number, database: string): string | undefined {
    try {
      return (JSON.parse(readFileSync(this.file(host, port, database), 'utf8')) as { server_uuid: string }).server_uuid;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  }

  /** Records the identity on first contact; reports a mismatch otherwise. */
  check(host: string, port: number, database: string, serverUuid: string): { mismatch: boolean; expected?: string } {
    const file = this.file(host, port, database);
    try {
      const known = JSON.parse(readFileSync(file, 'utf8')) as { server_uuid: string };
      return known.server_uuid === serverUuid ? { mismatch: false } : { mismatch: true, expected: known.server_uuid };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    mkdirSync(join(this.dir, 'bindings'), { recursive: true, mode: 0o700 });
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify({ host, port, database, server_uuid: serverUuid, since: new Date().toISOString() }, null, 2) + '\n', { mode: 0o600 });
    renameSync(tmp, file);
    return { mismatch: false };
  }
}
