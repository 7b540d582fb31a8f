// Where the audit entries go: the immudb server, database and key prefix.
import type { KongFieldList } from '../kong-schema.js';

export interface ConnectionConfig {
  immudb_host: string;
  immudb_port: number;
  immudb_username: string;
  immudb_password: string;
  immudb_database: string;
  create_database: boolean;
  key_prefix: string;
  server_public_key: string | null;
}

export const connectionFields: KongFieldList = [
  { immudb_host: { type: 'string', required: true, default: '127.0.0.1', len_min: 1, description: 'immudb server host name or address.' } },
  { immudb_port: { type: 'integer', required: true, default: 3322, between: [1, 65535], description: 'immudb gRPC port.' } },
  { immudb_username: { type: 'string', required: true, len_min: 1, referenceable: true, description: 'immudb user that writes the audit entries (no default: never the superuser by accident).' } },
  { immudb_password: { type: 'string', required: true, len_min: 1, encrypted: true, referenceable: true, description: 'Password of immudb_username (no default); use a vault reference ({vault://env/...}) in production.' } },
  { immudb_database: { type: 'string', required: true, default: 'defaultdb', match: '^[a-z0-9][a-z0-9_-]*$', len_max: 128, description: 'immudb database that holds the audit entries.' } },
  { create_database: { type: 'boolean', required: true, default: false, description: 'Create immudb_database if it does not exist (the user needs the right to).' } },
  { key_prefix: { type: 'string', required: true, default: 'audit', match: '^[A-Za-z0-9_.-]+$', len_max: 64, description: 'Keys are <key_prefix>:entry:<audit id>.' } },
  { server_public_key: { type: 'string', len_min: 1, description: "PEM public key of immudb's state signing key (immudb --signingKey). When set, every state immudb proves must carry a valid signature by it." } },
];
