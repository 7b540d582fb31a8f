// A spool left by an earlier version under <host>_<port>_<database>_<user> is adopted by the
// destination's spool directory (docs/decisions.md #22), never orphaned or overwritten.
import test from 'ava';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { adoptLegacySpool } from '../../plugin/pipeline/legacy-spool.js';
import { createLogger } from '../../plugin/log.js';

test('the old directory is renamed when the new one does not exist; left alone (and reported) when it does', (t) => {
  const root = mkdtempSync(join(tmpdir(), 'kia-legacy-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const legacy = join(root, '127.0.0.1_3322_audit_audit_writer');
  const current = join(root, '127.0.0.1_3322_audit');
  mkdirSync(legacy);
  writeFileSync(join(legacy, 'segment-0'), 'entries');
  mkdirSync(current); // as the path check leaves it: created, empty
  const logger = createLogger('test');
  adoptLegacySpool(current, legacy, logger);
  t.false(existsSync(legacy));
  t.is(readFileSync(join(current, 'segment-0'), 'utf8'), 'entries');

  mkdirSync(legacy);
  writeFileSync(join(legacy, 'segment-0'), 'older');
  adoptLegacySpool(current, legacy, logger);
  t.is(readFileSync(join(legacy, 'segment-0'), 'utf8'), 'older', 'never merged or overwritten');
  t.is(readFileSync(join(current, 'segment-0'), 'utf8'), 'entries');
  adoptLegacySpool(join(root, 'none'), join(root, 'none_user'), logger);
  t.false(existsSync(join(root, 'none')));
});
