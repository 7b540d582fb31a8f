// The plugin server's heap and malloc settings (plugin/pluginserver/memory-flags.ts, decision
// #43): the environment it execs itself with, and that the real command runs with them, in
// the same process, the operator's own settings winning.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MEMORY_ENV, MEMORY_NODE_OPTIONS, memoryEnv } from '../../plugin/pluginserver/memory-flags.js';
import { NOOP_PLUGIN_NAME, fixturePluginDir, pluginServerBin } from '../helpers/kong-driver.js';

test('the flags go before the operator\'s NODE_OPTIONS, their malloc settings are kept, and it happens once', (t) => {
  const env = memoryEnv({ NODE_OPTIONS: '--max-old-space-size=160', MALLOC_ARENA_MAX: '8', PATH: '/bin' })!;
  t.is(env.NODE_OPTIONS, `${MEMORY_NODE_OPTIONS.join(' ')} --max-old-space-size=160`);
  t.is(env.MALLOC_ARENA_MAX, '8');
  t.is(env.MALLOC_MMAP_THRESHOLD_, MEMORY_ENV.MALLOC_MMAP_THRESHOLD_);
  t.is(env.PATH, '/bin');
  t.is(memoryEnv(env), undefined, 'the exec\'d process does not exec again');
  t.is(memoryEnv({})!.MALLOC_ARENA_MAX, '2');
  t.is(memoryEnv({ IMMUDB_AUDIT_PLUGINSERVER_TUNED: '1' }), undefined, 'the operator\'s opt-out');
  t.is(memoryEnv({})!.NODE_OPTIONS, MEMORY_NODE_OPTIONS.join(' '));
});

/** Runs the command (dumping its plugins) with a preload reporting what the final process runs with. */
function runCommand(t: { teardown(f: () => void): void }, env: NodeJS.ProcessEnv) {
  const dir = mkdtempSync(join(tmpdir(), 'kia-memflags-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const out = join(dir, 'seen.json');
  const preload = join(dir, 'seen.mjs');
  // Runs in each process image (before and after the exec); the last one writes last.
  writeFileSync(preload, `
    import { writeFileSync } from 'node:fs';
    import { getHeapStatistics, getHeapSpaceStatistics } from 'node:v8';
    process.on('exit', () => writeFileSync(${JSON.stringify(out)}, JSON.stringify({
      pid: process.pid, arena: process.env.MALLOC_ARENA_MAX ?? null, nodeOptions: process.env.NODE_OPTIONS,
      limitMiB: getHeapStatistics().heap_size_limit / 2 ** 20,
    })));
  `);
  const base: NodeJS.ProcessEnv = { ...process.env };
  delete base.IMMUDB_AUDIT_PLUGINSERVER_TUNED;
  delete base.MALLOC_ARENA_MAX;
  const r = spawnSync(process.execPath, [pluginServerBin(), '--plugins-directory', fixturePluginDir(NOOP_PLUGIN_NAME), '--dump-all-plugins'], {
    encoding: 'utf8', timeout: 30_000, env: { ...base, ...env, NODE_OPTIONS: `--import=${preload} ${env.NODE_OPTIONS ?? ''}` },
  });
  return { r, seen: JSON.parse(readFileSync(out, 'utf8')) as { pid: number; arena: string | null; nodeOptions: string; limitMiB: number } };
}

test('the command runs with the flags, in the process Kong started; the operator\'s settings win', (t) => {
  const { r, seen } = runCommand(t, {});
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /"Name":"noop-serialize"/, 'its output unchanged');
  t.is(seen.pid, r.pid, 'the same pid: exec, not a child');
  t.is(seen.arena, '2');
  t.true(seen.nodeOptions.startsWith(MEMORY_NODE_OPTIONS.join(' ')), seen.nodeOptions);
  // V8 applied it: the heap limit counts the young generation (3 semi-spaces). Node 24's V8 sizes
  // semi-spaces from the machine's memory (up to 64 MiB), so the limit is smaller than by default;
  // Node 22's default is already 16 MiB, so there it is the same (the operator's 32 below shows
  // that V8 read the flag either way).
  const v8Defaults = runCommand(t, { IMMUDB_AUDIT_PLUGINSERVER_TUNED: '1' }).seen;
  t.is(v8Defaults.arena, null);
  const node22 = Number(process.versions.node.split('.')[0]) < 24;
  if (node22) t.true(seen.limitMiB <= v8Defaults.limitMiB, `${seen.limitMiB} <= ${v8Defaults.limitMiB} MiB`);
  else t.true(seen.limitMiB < v8Defaults.limitMiB, `${seen.limitMiB} < ${v8Defaults.limitMiB} MiB`);
  const operator = runCommand(t, { NODE_OPTIONS: '--max-semi-space-size=32', MALLOC_ARENA_MAX: '4' }).seen;
  t.is(operator.arena, '4');
  t.true(operator.limitMiB > seen.limitMiB, `the operator's --max-semi-space-size=32: ${operator.limitMiB} > ${seen.limitMiB} MiB`);
});
