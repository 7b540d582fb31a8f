// Runs the built `immudb-audit` CLI as a user would, capturing exit code and output.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { projectRoot } from './kong-driver.js';
import type { ImmudbServer } from '../../scripts/lib/immudb-server.js';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(projectRoot(), 'dist/plugin/cli.js'), ...args], { env: { ...process.env, ...env }, timeout: 120_000, maxBuffer: 256 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as NodeJS.ErrnoException).code === 'number' ? Number((err as NodeJS.ErrnoException).code) : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Connection flags for a test server. */
export function cliTarget(immudb: ImmudbServer, database: string, prefix: string, stateDir: string): string[] {
  return ['--address', `${immudb.host}:${immudb.port}`, '--username', immudb.username, '--database', database, '--prefix', prefix, '--state-dir', stateDir];
}
