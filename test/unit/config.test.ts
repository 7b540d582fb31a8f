import test from 'ava';
import { parseConfig, withoutKongFields } from '../../plugin/config/config.js';
import { ConfigError } from '../../plugin/config/kong-schema.js';

/** No default credentials (docs/decisions.md #17): every config names its user and password. */
const CREDS = { immudb_username: 'audit_writer', immudb_password: 'pw' };

test('defaults fill an empty config', (t) => {
  const c = parseConfig({ ...CREDS, ...CREDS });
  t.is(c.immudb_host, '127.0.0.1');
  t.is(c.immudb_port, 3322);
  t.is(c.key_prefix, 'audit');
  t.deepEqual(c.queue, { max_batch_size: 256, max_coalescing_delay: 0.2, max_entries: 10000, initial_retry_delay: 0.1, max_retry_delay: 30, max_bytes: null, concurrency_limit: 1, max_retry_time: null });
});

test('Kong-style validation reports every problem with its path', (t) => {
  const err = t.throws(() => parseConfig({ ...CREDS, immudb_port: 70000, key_prefix: 'a b', queue: { max_batch_size: 2000, bogus: 1 }, extra: true }), { instanceOf: ConfigError });
  t.deepEqual(err!.problems, [
    'immudb_port: value should be between 1 and 65535',
    'key_prefix: invalid value: "a b" (must match ^[A-Za-z0-9_.-]+$)',
    'queue.max_batch_size: value should be between 1 and 512',
    'queue.bogus: unknown field',
    'extra: unknown field',
  ]);
  t.regex(err!.message, /^invalid immudb-audit configuration: /);
});

test('types are checked', (t) => {
  const err = t.throws(() => parseConfig({ ...CREDS, immudb_port: '3322', create_database: 'yes', queue: [] }), { instanceOf: ConfigError });
  t.deepEqual(err!.problems, [
    'immudb_port: expected an integer, got string',
    'create_database: expected a boolean, got string',
    'queue: expected a record, got array',
  ]);
});

test("Kong's own fields in the instance config are not plugin fields", (t) => {
  const raw = { key_prefix: 'k', __plugin_id: 'p1', __ws_id: 'w1', __key__: 'x', __seq__: 3, route_id: 'r1', service_id: null, plugin_instance_name: 'n' };
  t.is(parseConfig({ ...CREDS, ...raw }).key_prefix, 'k');
  t.deepEqual(withoutKongFields(raw), { key_prefix: 'k' });
});
