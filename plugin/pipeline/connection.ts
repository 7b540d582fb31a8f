// The immudb connection a configuration asks for, as the store's client takes it. Here, not in
// config/, so that the configuration's modules do not import the store.
import type { PluginConfig, TlsConfig } from '../config/config.js';
import type { ImmudbConnectionOptions, ImmudbTlsOptions } from '../store/immudb-client.js';

/** The client's TLS options from a configuration whose references are resolved. */
export function immudbTlsOptions(config: TlsConfig): ImmudbTlsOptions | undefined {
  const t = config.tls;
  if (!t?.enabled) return undefined;
  return {
    ...(t.ca_cert ? { ca: Buffer.from(t.ca_cert) } : {}),
    ...(t.client_cert ? { cert: Buffer.from(t.client_cert) } : {}),
    ...(t.client_key ? { key: Buffer.from(t.client_key) } : {}),
    ...(t.server_name ? { serverName: t.server_name } : {}),
  };
}

export function immudbConnection(config: PluginConfig): ImmudbConnectionOptions {
  const tls = immudbTlsOptions(config);
  return {
    host: config.immudb_host,
    port: config.immudb_port,
    username: config.immudb_username,
    password: config.immudb_password,
    database: config.immudb_database,
    createDatabase: config.create_database,
    ...(tls ? { tls } : {}),
  };
}
