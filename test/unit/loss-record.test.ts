// Loss records go under the key prefix of the entries lost; a key that is not an entry key has
// no prefix to record them under, and is a programming error, not the empty prefix.
import test from 'ava';
import { keyPrefixOf } from '../../plugin/pipeline/loss-record.js';

test('keyPrefixOf: the prefix of an entry key', (t) => {
  t.is(keyPrefixOf(Buffer.from('audit:entry:01a20d28-919e-7687-b322-9d16dfdc55a8')), 'audit');
  t.is(keyPrefixOf(Buffer.from('team-a.prod:entry:x')), 'team-a.prod');
  // Lifecycle records are submitted like entries, and lost like them.
  t.is(keyPrefixOf(Buffer.from('audit:lifecycle:01a20d28-919e-7687-b322-9d16dfdc55a8')), 'audit');
});

test('keyPrefixOf: a key that is not an entry key is an error', (t) => {
  for (const key of ['audit:loss:01a20d28-919e-7687-b322-9d16dfdc55a8', 'no-entry-here', ':entry:x', '']) {
    t.throws(() => keyPrefixOf(Buffer.from(key)), { message: /not an audit entry key/ }, key);
  }
});
