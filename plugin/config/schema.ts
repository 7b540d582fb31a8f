// The plugin's configuration schema, in Kong's schema language: what kong.yml may set on the
// plugin. `GetPluginInfo` hands it to Kong, which validates kong.yml against it.
// The `queue` record uses the names of Kong's bundled loggers where the meaning is the same.
import type { KongFieldList } from './kong-schema.js';

export const configFields: KongFieldList = [
  { immudb_host: { type: 'string', required: true, default: '127.0.0.1', len_min: 1, description: 'immudb server host name or address.' } },
  { immudb_port: { type: 'integer', required: true, default: 3322, between: [1, 65535], description: 'immudb gRPC port.' } },
  { immudb_username: { type: 'string', required: true, default: 'immudb', len_min: 1, referenceable: true, description: 'immudb user that writes the audit entries.' } },
  { immudb_password: { type: 'string', required: true, default: 'immudb', len_min: 1, encrypted: true, referenceable: true, description: 'Password of immudb_username; use a vault reference ({vault://env/...}) in production.' } },
  { immudb_database: { type: 'string', required: true, default: 'defaultdb', match: '^[a-z0-9][a-z0-9_-]{0,127}$', description: 'immudb database that holds the audit entries.' } },
  { create_database: { type: 'boolean', required: true, default: false, description: 'Create immudb_database if it does not exist (the user needs the right to).' } },
  { key_prefix: { type: 'string', required: true, default: 'audit', match: '^[A-Za-z0-9_.-]{1,64}$', description: 'Keys are <key_prefix>:entry:<audit id>.' } },
  {
    queue: {
      type: 'record',
      description: 'Batching of writes: one immudb transaction per batch.',
      fields: [
        { max_batch_size: { type: 'integer', required: true, default: 256, between: [1, 1024], description: 'Most entries in one immudb transaction (immudb allows 1024 by default).' } },
        { max_coalescing_delay: { type: 'number', required: true, default: 0.2, between: [0, 3600], description: 'Seconds to wait for more entries before writing a batch that is not full.' } },
        { max_entries: { type: 'integer', required: true, default: 100000, between: [1, 10000000], description: 'Most entries held in memory waiting for immudb.' } },
        { initial_retry_delay: { type: 'number', required: true, default: 0.1, between: [0.001, 1000000], description: 'Seconds before the first retry of a failed write.' } },
        { max_retry_delay: { type: 'number', required: true, default: 30, between: [0.001, 1000000], description: 'Longest delay between retries, seconds. Writes are retried until they succeed.' } },
      ],
    },
  },
];
