// Which immudb identity (server UUID) earlier versions bound to an address and database, in
// `<state dir>/bindings/`. Trust now belongs to the audit log (decisions #23), so bindings are
// no longer written: they are read once, to migrate the trusted state an earlier version kept
// per server identity, and moved aside by `trust reset`. A binding file that cannot be read is
// reported (UnusableTrustFile), never taken for a missing one.
import { readFileSync } from 'node:fs';
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
}
