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
  immudb_addresses: string[] | null;
  immudb_log_name: string | null;
  immudb_replica_acks: number;
  immudb_replica_ack_timeout: number;
}

/** The addresses of a configuration, in order: immudb_addresses, else immudb_host:immudb_port. */
export function immudbAddresses(c: ConnectionConfig): Array<{ host: string; port: number }> {
  if (!c.immudb_addresses?.length) return [{ host: c.immudb_host, port: c.immudb_port }];
  return c.immudb_addresses.map(parseAddress);
}

export function parseAddress(a: string): { host: string; port: number } {
  const m = /^\[?([^\]]*?)\]?(?::(\d+))?$/.exec(a.trim());
  const port = Number(m?.[2] ?? 3322);
  if (!m || !m[1] || !Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`invalid address ${JSON.stringify(a)}, expected host:port`);
  return { host: m[1], port };
}

export const connectionFields: KongFieldList = [
  { immudb_host: { type: 'string', required: true, default: '127.0.0.1', len_min: 1, description: 'immudb server host name or address.' } },
  { immudb_port: { type: 'integer', required: true, default: 3322, between: [1, 65535], description: 'immudb gRPC port.' } },
  { immudb_username: { type: 'string', required: true, len_min: 1, referenceable: true, description: 'immudb user that writes the audit entries (no default: never the superuser by accident).' } },
  { immudb_password: { type: 'string', required: true, len_min: 1, encrypted: true, referenceable: true, description: 'Password of immudb_username (no default); use a vault reference ({vault://env/...}) in production.' } },
  { immudb_database: { type: 'string', required: true, default: 'defaultdb', match: '^[a-z0-9][a-z0-9_-]*$', len_max: 128, description: 'immudb database that holds the audit entries.' } },
  { create_database: { type: 'boolean', required: true, default: false, description: 'Create immudb_database if it does not exist (the user needs the right to).' } },
  { key_prefix: { type: 'string', required: true, default: 'audit', match: '^[A-Za-z0-9_.-]+$', len_max: 64, description: 'Keys are <key_prefix>:entry:<audit id>.' } },
  { immudb_addresses: { type: 'array', elements: { type: 'string', match: '^[A-Za-z0-9_.:-]+$' }, len_max: 16, description: 'Every immudb server that holds the audit database, as host:port (a name or an IPv4 address; the primary and its replicas, in order of preference). When set, it replaces immudb_host and immudb_port: the writer writes to the first that accepts writes and proves its history extends the trusted state, and fails over to the next when it goes away; it never writes to a read-only replica. See docs/operations.md, "Failover".' } },
  { immudb_log_name: { type: 'string', match: '^[A-Za-z0-9_.-]+$', len_max: 128, description: 'Name of the audit log the trusted state belongs to (default: immudb_database). Set it when one plugin server writes to two clusters whose databases have the same name.' } },
  { immudb_replica_acks: { type: 'integer', required: true, default: 0, between: [0, 15], description: 'Replicas (other immudb_addresses) that must prove they hold a batch\'s transaction before its entries leave the spool: a replica promoted after a failover then lacks no acknowledged entry. 0: rely on the primary (or on immudb\'s synchronous replication).' } },
  { immudb_replica_ack_timeout: { type: 'number', required: true, default: 10, gt: 0, description: 'Seconds a batch waits for immudb_replica_acks before it is retried (its entries stay in the spool meanwhile).' } },
  { server_public_key: { type: 'string', len_min: 1, description: "PEM public key of immudb's state signing key (immudb --signingKey). When set, every state immudb proves must carry a valid signature by it." } },
];
