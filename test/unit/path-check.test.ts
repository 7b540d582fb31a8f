// The path check alone: bounded, never recursive, pseudo file systems and non-directories refused,
// the same answers from its sync and async drivers.
import test from 'ava';
import { mkdtempSync, rmSync, statSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkDirectory, checkDirectorySync } from '../../plugin/pipeline/path-check.js';

const tmp = mkdtempSync(join(tmpdir(), 'kia-path-check-'));
test.after.always(() => rmSync(tmp, { recursive: true, force: true }));
const file = join(tmp, 'file');
writeFileSync(file, 'x');

const refused: Array<[string, RegExp]> = [
  ['/proc/nope/a/b', /^spool_dir \/proc\/nope\/a\/b: \/proc is on proc, a pseudo file system/],
  ['/proc/self/status/x', /: \/proc\/self\/status is on proc/],
  ['/sys/nope', /: \/sys is on sysfs/],
  [join(file, 'a', 'b'), /: \S+\/file is not a directory$/],
  [file, /: \S+\/file is not a directory$/],
  [join(tmp, ...Array.from({ length: 40 }, (_, i) => `d${i}`)), /more than 32 directory levels would have to be created/],
];

for (const [path, reason] of refused) {
  test(`refused: ${path.replace(tmp, '<tmp>').slice(0, 60)}`, async (t) => {
    t.throws(() => checkDirectorySync(path, 'spool_dir'), { name: 'PathError', message: reason });
    await t.throwsAsync(checkDirectory(path, 'spool_dir'), { name: 'PathError', message: reason });
  });
}

test('missing levels are created (0700), an existing directory passes, no probe file is left', async (t) => {
  const a = join(tmp, 'x', 'y', 'z');
  t.is(checkDirectorySync(a, 'spool_dir'), a);
  t.is(statSync(a).mode & 0o777, 0o700);
  t.is(await checkDirectory(join(tmp, 'p', 'q'), 'spool_dir'), join(tmp, 'p', 'q'));
  t.is(await checkDirectory(a, 'spool_dir'), a);
  t.deepEqual(readdirSync(a), []);
  t.deepEqual(readdirSync(join(tmp, 'p', 'q')), []);
  t.true(statSync(join(tmp, 'p')).isDirectory());
});
