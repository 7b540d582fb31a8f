// The AVA workers' exit watchdog (test/helpers/exit-watchdog.ts): a test file that leaves a
// child process running, or whose hook never returns, fails with a "not ok" naming the file and
// what kept it alive, instead of holding the whole run. Runs AVA itself on two such files.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../helpers/kong-driver.js';

test('a test file that leaks a child process or hangs in a hook fails, naming it; the child is killed', (t) => {
  const root = projectRoot();
  // Under dist/ so that the files find AVA in the project's node_modules; outside dist/test so
  // that the suite's own glob never takes them.
  const dir = mkdtempSync(join(root, 'dist', '.watchdog-probe-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const pidFile = join(dir, 'child.pid');
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module' }));
  writeFileSync(join(dir, 'ava.config.mjs'), `export default ${JSON.stringify({
    files: ['*.test.mjs'], workerThreads: false, timeout: '10m', require: [join(root, 'dist/test/helpers/exit-watchdog.js')],
  })};`);
  writeFileSync(join(dir, 'leak.test.mjs'), `
    import test from 'ava';
    import { spawn } from 'node:child_process';
    import { writeFileSync } from 'node:fs';
    test('passes but leaves a child running', (t) => {
      writeFileSync(${JSON.stringify(pidFile)}, String(spawn('sleep', ['1001'], { stdio: 'ignore' }).pid));
      t.pass();
    });`);
  writeFileSync(join(dir, 'hook.test.mjs'), `
    import test from 'ava';
    test.after.always(() => new Promise(() => setInterval(() => {}, 1000)));
    test('passes, then its hook never returns', (t) => { t.timeout(20 * 60_000); t.pass(); });`);
  writeFileSync(join(dir, 'clean.test.mjs'), `import test from 'ava'; test('clean', (t) => t.pass());`);
  const r = spawnSync(process.execPath, [join(root, 'node_modules/ava/entrypoints/cli.js'), '--tap'], {
    cwd: dir,
    encoding: 'utf8',
    env: { ...process.env, KIA_TEST_EXIT_GRACE_MS: '500', KIA_TEST_FILE_LIMIT_MS: '20000' },
    timeout: 120_000,
  });
  const out = `${r.stdout}\n${r.stderr}`;
  t.is(r.status, 1, out);
  t.regex(r.stdout, /^ok \d+ - clean › clean$/m, out);
  t.regex(r.stdout, /^not ok \d+ - leak\.test\.mjs exited with a non-zero exit code: 1$/m, out);
  t.regex(out, /still alive 0\.5 s after its last test[\s\S]*child processes \(killed now\):\n\s+\d+ sleep 1001/, out);
  t.regex(out, /has run for 0\.3\d* minutes without finishing/, out);
  t.regex(r.stdout, /^not ok \d+ - .*hook\.test\.mjs/m, out);
  const pid = Number(readFileSync(pidFile, 'utf8'));
  t.false(running(pid), `the leaked child ${pid} was killed`);
});

/** Alive and not a zombie (field 3 of /proc/<pid>/stat is the state). */
function running(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '')[0] !== 'Z';
  } catch {
    return false;
  }
}
