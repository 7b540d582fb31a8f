// A full disk under the spool (a real tmpfs of 256 KiB, real ENOSPC): every append that
// resolved is read back after reopen, exactly once; failed appends leave nothing behind that
// shifts the offsets (issue 13, finding 3). Needs permission to mount a tmpfs (root here).
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Spool } from '../../plugin/pipeline/spool.js';
import { createLogger } from '../../plugin/log.js';

function mountTmpfs(size: string): string | null {
  const dir = mkdtempSync(join(tmpdir(), 'kia-tmpfs-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'pipe' });
    return dir;
  } catch {
    rmSync(dir, { recursive: true, force: true });
    return null;
  }
}

function unmount(dir: string) {
  execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
  rmSync(dir, { recursive: true, force: true });
}

const rec = (i: number) => ({ key: Buffer.from(`k:entry:${String(i).padStart(6, '0')}`), value: Buffer.from(JSON.stringify({ i, pad: 'y'.repeat(300 + (i % 97)) })) });

test.serial('ENOSPC: every append that resolved survives reopen, in order, exactly once', async (t) => {
  const mnt = mountTmpfs('256k');
  if (!mnt) return t.pass('skipped: mounting a tmpfs is not permitted here (needs root or CAP_SYS_ADMIN)');
  t.teardown(() => unmount(mnt));
  const dir = join(mnt, 'spool');
  const lines: string[] = [];
  const open = () => Spool.open({ dir, maxBytes: 64 * 1024 * 1024, fsync: 'group', segmentBytes: 64 * 1024, logger: createLogger('test', (l) => lines.push(l)) });
  const s = open();
  // Leave room for a few dozen records only, then keep appending into a full disk.
  const filler = join(mnt, 'filler');
  try {
    writeFileSync(filler, Buffer.alloc(200 * 1024));
  } catch {
    // The filler may itself hit the limit: the disk is full either way.
  }
  const ok: number[] = [];
  let failed = 0;
  for (let i = 0; i < 400; i++) {
    const r = rec(i);
    // Some concurrency so group commits fail and succeed as groups.
    const batch = [s.append(r.key, r.value)];
    if (i % 3 === 0) {
      const r2 = rec(100_000 + i);
      batch.push(s.append(r2.key, r2.value));
    }
    const res = await Promise.allSettled(batch);
    res.forEach((x, j) => {
      if (x.status === 'fulfilled') ok.push(j === 0 ? i : 100_000 + i);
      else failed++;
    });
  }
  t.true(failed > 0, 'the disk filled up');
  t.true(ok.length > 0, 'some appends succeeded first');
  t.log(`${ok.length} appends resolved, ${failed} failed with the disk full`);
  // Space returns; more appends succeed.
  unlinkSync(filler);
  for (let i = 500; i < 520; i++) {
    await s.append(rec(i).key, rec(i).value);
    ok.push(i);
  }
  t.is(s.pendingRecords, ok.length, 'spool_entries counts only what was written');
  // A crash: the spool is not closed; the lock is stale (same pid, so it is taken over).
  const again = open();
  const back = again.read(undefined, 100_000).map((r) => Number(JSON.parse(r.value.toString()).i));
  t.deepEqual(back, ok, 'every resolved append, in order, exactly once');
  t.is(again.recovery.pending, ok.length);
  await again.close();
  await s.close().catch(() => undefined);
});
