// The plugin configuration as the code uses it, and its derivation from what Kong sends.
import { configFields } from './schema.js';
import type { ConnectionConfig } from './fields/connection.js';
import type { QueueConfig } from './fields/queue.js';
import type { SpoolConfig } from './fields/spool.js';
import type { TracingConfig } from './fields/tracing.js';
import type { PrivacyConfig } from './fields/privacy.js';
import type { TlsConfig } from './fields/tls.js';
import type { FailClosedConfig } from './fields/fail-closed.js';
import type { CoverageConfig } from './fields/coverage.js';

export type { ConnectionConfig, QueueConfig, SpoolConfig, TracingConfig, PrivacyConfig, TlsConfig, FailClosedConfig, CoverageConfig };
import { validateRecord } from './kong-schema.js';

/** The validated configuration: one type per group of fields (see fields/). */
export type PluginConfig = ConnectionConfig & { queue: QueueConfig } & SpoolConfig & TracingConfig & PrivacyConfig & TlsConfig & FailClosedConfig & CoverageConfig;

/** Fields Kong adds to a plugin's config when it starts an instance (plugins_iterator.lua). */
const KONG_FIELDS = new Set(['route_id', 'service_id', 'consumer_id', 'plugin_instance_name']);

/** The plugin's own fields: Kong's (`__plugin_id`, `__seq__`, `route_id`, ...) left out. */
export function withoutKongFields(raw: unknown): unknown {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return raw;
  const config: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
    if (k.startsWith('__') || KONG_FIELDS.has(k)) continue;
    config[k] = v;
  }
  return config;
}

/** Validates and fills defaults; throws ConfigError with every problem found. */
export function parseConfig(raw: unknown): PluginConfig {
  return validateRecord(configFields, withoutKongFields(raw)) as unknown as PluginConfig;
}
