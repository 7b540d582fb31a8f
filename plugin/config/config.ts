// The plugin configuration as the code uses it, and its derivation from what Kong sends.
import { configFields } from './schema.js';
import type { ConnectionConfig } from './fields/connection.js';
import type { QueueConfig } from './fields/queue.js';
import type { SpoolConfig } from './fields/spool.js';
import type { TracingConfig } from './fields/tracing.js';
import type { PrivacyConfig } from './fields/privacy.js';
import type { TlsConfig } from './fields/tls.js';

export type { ConnectionConfig, QueueConfig, SpoolConfig, TracingConfig, PrivacyConfig, TlsConfig };
import { validateRecord } from './kong-schema.js';

/** The validated configuration: one type per group of fields (see fields/). */
export type PluginConfig = ConnectionConfig & { queue: QueueConfig } & SpoolConfig & TracingConfig & PrivacyConfig & TlsConfig;

/** What Kong adds to a plugin's config when it starts an instance (plugins_iterator.lua). */
export interface KongPluginMeta {
  pluginId: string | null;
  workspaceId: string | null;
  routeId: string | null;
  serviceId: string | null;
  consumerId: string | null;
  instanceName: string | null;
}

const META_FIELDS = new Set(['route_id', 'service_id', 'consumer_id', 'plugin_instance_name']);

/** Separates Kong's own fields (`__plugin_id`, `__seq__`, `route_id`, ...) from the plugin's. */
export function splitKongMeta(raw: unknown): { config: unknown; meta: KongPluginMeta } {
  const meta: KongPluginMeta = { pluginId: null, workspaceId: null, routeId: null, serviceId: null, consumerId: null, instanceName: null };
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return { config: raw, meta };
  const config: Record<string, unknown> = {};
  const text = (v: unknown) => (typeof v === 'string' ? v : null);
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
    if (k.startsWith('__') || META_FIELDS.has(k)) continue;
    config[k] = v;
  }
  const r = raw as Record<string, unknown>;
  meta.pluginId = text(r.__plugin_id);
  meta.workspaceId = text(r.__ws_id);
  meta.routeId = text(r.route_id);
  meta.serviceId = text(r.service_id);
  meta.consumerId = text(r.consumer_id);
  meta.instanceName = text(r.plugin_instance_name);
  return { config, meta };
}

/** Validates and fills defaults; throws ConfigError with every problem found. */
export function parseConfig(raw: unknown): PluginConfig {
  return validateRecord(configFields, splitKongMeta(raw).config) as unknown as PluginConfig;
}
