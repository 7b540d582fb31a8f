// A small tmpfs for disk-full tests: mounted for the test, unmounted and removed at its end.
// Mounting needs root or CAP_SYS_ADMIN; without it the test logs SKIPPED and passes.
import type { ExecutionContext } from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The mount point of a `size` tmpfs (e.g. '2m'), or null (skipped) where mounting is not permitted. */
export function tmpfsFor(t: ExecutionContext, size: string): string | null {
  const dir = mkdtempSync(join(tmpdir(), 'kia-tmpfs-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', dir], { stdio: 'pipe' });
  } catch {
    rmSync(dir, { recursive: true, force: true });
    t.log('SKIPPED: mounting a tmpfs is not permitted here (needs root or CAP_SYS_ADMIN)');
    t.pass();
    return null;
  }
  t.teardown(() => {
    execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}
