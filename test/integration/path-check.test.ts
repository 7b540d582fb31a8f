// Directories the plugin writes to are checked before use, in the real plugin server: a spool_dir
// on /proc or /sys, a regular file, or a directory that cannot be written fails THAT instance's
// StartInstance promptly with the reason, while a route that worked keeps auditing and SIGTERM
// still flushes and exits. (Node's recursive mkdir never returns on /proc: before the check, the
// audit thread spun in it, StartInstance waited 60 s and SIGTERM could not end the process.)
import test, { type ExecutionContext } from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KongRpcClient, simulateWorkers, type KongInstance } from '../helpers/kong-driver.js';
import { anonymousLog } from '../fixtures/serialized-logs.js';
import { PLUGIN_NAME, startAuditStack, waitForEntries } from '../helpers/audit-stack.js';
import { cliTarget, runCli } from '../helpers/cli.js';

/** Generous: the check is a handful of system calls; before it, StartInstance took 60 s. */
const PROMPT_MS = 20_000;

/**
 * A directory nobody may write to. Root ignores permission bits, so as root it is a read-only
 * bind mount (needs CAP_SYS_ADMIN), else an immutable directory (chattr +i); as another user,
 * mode 0500 suffices. Undefined when none of these is possible here.
 */
function unwritableDir(t: ExecutionContext, base: string): string | undefined {
  const dir = join(base, 'read-only');
  mkdirSync(dir);
  if (process.getuid?.() !== 0) {
    execFileSync('chmod', ['0500', dir]);
    return dir;
  }
  try {
    execFileSync('mount', ['--bind', dir, dir], { stdio: 'ignore' });
    t.teardown(() => execFileSync('umount', [dir], { stdio: 'ignore' }));
    execFileSync('mount', ['-o', 'remount,ro,bind', dir], { stdio: 'ignore' });
    return dir;
  } catch {
    try {
      execFileSync('chattr', ['+i', dir], { stdio: 'ignore' });
      t.teardown(() => execFileSync('chattr', ['-i', dir], { stdio: 'ignore' }));
      return dir;
    } catch {
      return undefined;
    }
  }
}

for (const mode of ['on', 'off'] as const) {
  test.serial(`IMMUDB_AUDIT_THREAD=${mode}: a bad spool_dir fails its instance fast with the reason; other routes keep auditing; SIGTERM exits`, async (t) => {
    const stack = await startAuditStack({ env: { IMMUDB_AUDIT_THREAD: mode, OTEL_SDK_DISABLED: 'true', IMMUDB_AUDIT_SHUTDOWN_TIMEOUT_MS: '5000' } });
    t.teardown(() => stack.dispose());
    const tmp = mkdtempSync(join(tmpdir(), 'kia-paths-'));
    t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
    const file = join(tmp, 'a-file');
    writeFileSync(file, 'not a directory\n');
    const readOnly = unwritableDir(t, tmp);
    const db = `paths${mode}`;
    const [good] = (await simulateWorkers(stack.rpc, 1, PLUGIN_NAME, stack.config({ immudb_database: db, create_database: true, key_prefix: 'p', queue: { max_batch_size: 64, max_coalescing_delay: 0.05 } }))) as [KongInstance];
    let sent = 0;
    const logEvent = () => good.runLogEvent({ 'kong.log.serialize': anonymousLog(500 + sent++).json });
    t.true((await logEvent()).completed);

    const cases: Array<[string, RegExp]> = [
      ['/proc/nope/spool', /spool_dir \/proc\/nope\/spool\S*: \/proc is on proc, a pseudo file system/],
      ['/proc/self/status', /spool_dir \/proc\/self\/status\S*: \/proc\/self\/status is on proc, a pseudo file system/],
      ['/sys/kernel/nope', /spool_dir \/sys\/kernel\/nope\S*: \/sys\/kernel is on sysfs, a pseudo file system/],
      [join(file, 'spool'), new RegExp(`spool_dir ${file}/spool\\S*: ${file} is not a directory`)],
    ];
    if (readOnly) cases.push([readOnly, new RegExp(`spool_dir ${readOnly}\\S*: .*(EROFS|EPERM|EACCES)`)]);
    else t.log('no way to make an unwritable directory here (not root with CAP_SYS_ADMIN, no chattr): that case is skipped');
    // A client of its own: before the check, an instance on /proc answered only after 60 s (or never).
    const rpc = new KongRpcClient(stack.server.socketPath, { callTimeoutMs: 90_000 });
    t.teardown(() => rpc.close());
    for (const [i, [spoolDir, reason]] of cases.entries()) {
      const started = Date.now();
      // Each a new destination (its own database), so its pipeline and spool are new; a log event
      // of the good route is in flight meanwhile.
      const [start, event] = await Promise.allSettled([rpc.startInstance(PLUGIN_NAME, stack.config({ immudb_database: `bad${i}${mode}`, spool_dir: spoolDir })), logEvent()]);
      const took = Date.now() - started;
      if (start.status === 'fulfilled') return t.fail(`spool_dir ${spoolDir} was accepted`);
      t.regex((start.reason as Error).message, reason);
      t.true(took < PROMPT_MS, `StartInstance for ${spoolDir} answered after ${took} ms`);
      t.log(`${spoolDir}: refused after ${took} ms`);
      t.is(event.status, 'fulfilled', event.status === 'rejected' ? String(event.reason) : '');
    }
    t.true((await logEvent()).completed);
    const stored = await waitForEntries(await stack.client(db), 'p:entry:', sent, 60_000);
    if (mode === 'on') {
      // The auditor's CLI checks its --state-dir too (its trusted state would be saved there).
      const id = stored[0]!.key.toString().slice('p:entry:'.length);
      const cli = await runCli([...cliTarget(stack.immudb, db, 'p', '/proc/nope/auditor'), 'verify', id], { IMMUDB_PASSWORD: stack.immudb.password });
      // An unusable --state-dir is a usage error (decisions #24-25: usage errors exit 2 everywhere).
      t.is(cli.code, 2, cli.stderr);
      t.regex(cli.stderr, /--state-dir \/proc\/nope\/auditor: \/proc is on proc, a pseudo file system/);
    }
    // SIGTERM still flushes and exits (the driver SIGKILLs after 20 s: the signal would say so).
    const exit = await stack.server.stop('SIGTERM', 20_000);
    t.deepEqual(exit, { code: 0, signal: null }, stack.server.logs().slice(-3000));
  });
}

test.serial('a data directory on /proc fails StartInstance with the reason, promptly', async (t) => {
  const stack = await startAuditStack({ env: { IMMUDB_AUDIT_DATA_DIR: '/proc/nope/data', OTEL_SDK_DISABLED: 'true' } });
  t.teardown(() => stack.dispose());
  const started = Date.now();
  const err = await t.throwsAsync(stack.rpc.startInstance(PLUGIN_NAME, stack.config()));
  t.regex(err!.message, /IMMUDB_AUDIT_DATA_DIR \/proc\/nope\/data\S*: \/proc is on proc, a pseudo file system/);
  t.true(Date.now() - started < PROMPT_MS);
  // No instance started, so no flush hook: SIGTERM ends the process as it would any (not SIGKILL).
  const exit = await stack.server.stop('SIGTERM', 20_000);
  t.not(exit.signal, 'SIGKILL');
});
