// Imports point down the data flow: checked on the sources' static imports (type-only ones too,
// since they tie the modules together all the same).
import test from 'ava';
import { readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { projectRoot } from '../helpers/kong-driver.js';

const root = projectRoot();
const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+'(\.[^']+)'|(?:^|\n)\s*import\s+'(\.[^']+)'/g;

/** Project-relative paths of the modules `file` imports statically. */
function importsOf(file: string): string[] {
  const text = readFileSync(join(root, file), 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(IMPORT)) out.push(relative(root, resolve(dirname(join(root, file)), (m[1] ?? m[2])!.replace(/\.js$/, '.ts'))));
  return out;
}

/** Every module reachable from `file` by static imports. */
function closure(file: string): Set<string> {
  const seen = new Set<string>();
  const todo = [file];
  while (todo.length) {
    const f = todo.pop()!;
    if (seen.has(f)) continue;
    seen.add(f);
    todo.push(...importsOf(f));
  }
  return seen;
}

// pipeline/two-slot.ts (and the file interface it is typed against) also lays out the trusted
// state file, which the auditor reads (decisions #44).
test("the auditor's CLI does not load the plugin's handler, pipeline or telemetry", (t) => {
  const loaded = [...closure('plugin/cli.ts')];
  // The pure pseudonym and address helpers of capture/ are shared on purpose (search computes a
  // clear value's pseudonym with the plugin's own code); building and encoding entries is not.
  t.deepEqual(loaded.filter((f) => /^plugin\/(handler|pipeline\/(?!path-check|two-slot|spool-fs)|telemetry\/|thread\/|capture\/(?!pseudonyms|ip-address|privacy-policy|redaction))/.test(f)), []);
});

test('config/ does not import the store; capture/ does not import telemetry/', (t) => {
  for (const f of ['plugin/config/fields/tls.ts', 'plugin/config/config.ts', 'plugin/config/schema.ts']) {
    t.deepEqual([...closure(f)].filter((d) => d.startsWith('plugin/store/')), [], f);
  }
  t.deepEqual([...closure('plugin/capture/request-trace.ts')].filter((d) => d.startsWith('plugin/telemetry/')), []);
});

test('the version of the leaf module is the package version', async (t) => {
  const { Version } = await import('../../plugin/version.js');
  t.is(Version, (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version);
});
