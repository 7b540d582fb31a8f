// The Kong plugin: log phase only. One PDK call (kong.log.serialize), build the entry, hand it
// to the shared pipeline, return. Never awaits immudb: Kong holds a timer until we settle.
import { v7 as uuidv7 } from 'uuid';
import { buildAuditEntry } from './capture/build-entry.js';
import type { KongSerializedLog } from './capture/kong-log.js';
import { parseConfig, type PluginConfig } from './config/config.js';
import { configFields } from './config/schema.js';
import { createLogger } from './log.js';
import { sharedRegistry, type PipelineRegistry } from './pipeline/registry.js';
import type { AuditPipeline } from './pipeline/audit-pipeline.js';
import { encodeEntry } from './capture/encode.js';
import type { AuditEntry } from './capture/audit-entry.js';

export const Name = 'immudb-audit';
export const Version = '0.1.0';
/** Runs after Kong's bundled loggers (http-log is 12): auditing sees the final outcome. */
export const Priority = 10;
export const Schema = configFields;

const logger = createLogger('handler');

/** The part of Kong's PDK the handler uses. */
export interface KongLogPdk {
  log: { serialize(): Promise<unknown> };
}

/** Serialized log from whatever Kong returned; problems are noted, never thrown. */
export function readSerialized(raw: unknown, problems: string[]): KongSerializedLog | null {
  // A MessagePack bin value (bytes rather than a string): decode it as UTF-8, replacing invalid bytes.
  if (raw instanceof Uint8Array) raw = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('utf8');
  if (typeof raw === 'string') {
    try {
      const v = JSON.parse(raw) as unknown;
      if (typeof v === 'object' && v !== null && !Array.isArray(v)) return v as KongSerializedLog;
      problems.push('kong.log.serialize returned JSON that is not an object');
      return null;
    } catch (e) {
      problems.push(`kong.log.serialize returned invalid JSON: ${(e as Error).message.slice(0, 200)}`);
      return null;
    }
  }
  if (typeof raw === 'object' && raw !== null && !Array.isArray(raw)) return raw as KongSerializedLog;
  problems.push(`kong.log.serialize returned ${raw === null ? 'null' : typeof raw}`);
  return null;
}

export class Plugin {
  private readonly config: PluginConfig;
  private readonly registry: PipelineRegistry;
  private readonly pipeline: AuditPipeline;

  constructor(rawConfig: Record<string, unknown>, registry: PipelineRegistry = sharedRegistry()) {
    this.config = parseConfig(rawConfig);
    this.registry = registry;
    // Opening the destination's pipeline replays its spool; a spool that cannot be opened
    // fails StartInstance with the reason.
    this.pipeline = registry.get(this.config);
    // kong-pdk echoes the config object back in StartInstance/InstanceStatus replies: keep the
    // secret out of them (we hold our own parsed copy).
    if (rawConfig && typeof rawConfig === 'object' && 'immudb_password' in rawConfig) rawConfig.immudb_password = '<redacted>';
  }

  async log(kong: KongLogPdk): Promise<void> {
    const problems: string[] = [];
    let raw: unknown = null;
    try {
      raw = await kong.log.serialize();
    } catch (e) {
      problems.push(`kong.log.serialize failed: ${(e as Error).message.slice(0, 200)}`);
    }
    const entry = this.capture(readSerialized(raw, problems), problems);
    if (problems.length) {
      logger.once('warn', problems[0]!.split(':')[0]!, `request ${entry.request_id ?? '(no request id)'} audited as ${entry.id} with problems: ${problems.join('; ')}`);
    }
    // Resolves once the entry is durable in the spool (never throws; refusals are counted).
    await this.pipeline.submit(encodeEntry(this.config.key_prefix, entry));
  }

  private capture(log: KongSerializedLog | null, problems: string[]): AuditEntry {
    const s = this.registry.settings;
    return buildAuditEntry(log, { id: uuidv7(), now: Date.now(), nodeId: s.nodeId, hostname: s.hostname }, problems);
  }
}
