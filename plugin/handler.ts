// The Kong plugin's audit work, the log phase: one PDK call (kong.log.serialize), build the
// entry, hand it to the shared pipeline, return. Never awaits immudb: Kong holds a timer until we
// settle. A fail-closed route's access phase only reads this instance's gate (plugin-front.ts).
import { auditId } from './capture/audit-id.js';
import { buildAuditEntry } from './capture/build-entry.js';
import { serializeLog, type KongLogPdk, type KongSerializedLog } from './capture/kong-log.js';
import { parseConfig, type PluginConfig } from './config/config.js';
import { createLogger } from './log.js';
import { sharedRegistry, type PipelineRegistry } from './pipeline/registry.js';
import type { AuditPipeline } from './pipeline/audit-pipeline.js';
import { coverageOf, type PipelineCoverage } from './pipeline/lifecycle.js';
import { encodeEntry } from './capture/encode.js';
import { entryKey } from './store/key-layout.js';
import { requestTraceOf } from './capture/request-trace.js';
import type { EntrySpanRef } from './telemetry/tracing.js';
import type { AuditEntry } from './capture/audit-entry.js';
// Side effect at load, before kong-pdk creates its socket: a umask without group/other bits.
import './capture/hardening.js';
import { redactSecretFields, resolveSecretRefs, unresolvedVaultRefs } from './capture/secret-refs.js';
import { compilePrivacy, reportRefused, type PrivacyPolicy } from './capture/privacy-policy.js';
import { tlsProblems } from './config/fields/tls.js';
import { ConfigError } from './config/kong-schema.js';
import { immudbAddresses } from './config/fields/connection.js';
import { sharedFailClosedWatch } from './pipeline/fail-closed-gate.js';

const logger = createLogger('handler');

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

/**
 * An instance's configuration: parsed, env:/file: references resolved, TLS material checked.
 * Overwrites every secret field of `rawConfig` (kong-pdk echoes it back to Kong).
 */
function instanceConfig(rawConfig: Record<string, unknown>): PluginConfig {
  let config: PluginConfig;
  try {
    const unresolved = unresolvedVaultRefs(rawConfig);
    if (unresolved.length) throw new ConfigError(unresolved);
    // env:/file: references resolved here; Kong resolved {vault://...} ones before sending.
    config = resolveSecretRefs(parseConfig(rawConfig));
  } finally {
    // kong-pdk keeps this object and echoes it in StartInstance/InstanceStatus/CloseInstance
    // replies: every secret field is overwritten (we hold our own parsed copy).
    redactSecretFields(rawConfig);
  }
  const tls = tlsProblems(config);
  if (tls.length) throw new ConfigError(tls);
  return config;
}

export class Plugin {
  private readonly config: PluginConfig;
  private readonly registry: PipelineRegistry;
  private readonly pipeline: AuditPipeline;
  private readonly privacy: PrivacyPolicy;
  /**
   * On a fail-closed route: non-zero (a GATE_* reason) while its requests must be answered 503,
   * kept current off the request path (plugin/pipeline/fail-closed-gate.ts).
   */
  readonly gate: Int32Array | undefined;
  private readonly closeGate: (() => void) | undefined;
  private readonly coverage: PipelineCoverage;

  /**
   * The audit thread's way to start an instance: the destination's directories are checked with
   * async calls first, so a bad path fails this instance without blocking the thread. `gate`: the
   * memory shared with the thread that answers Kong, for a fail-closed route.
   */
  static async start(rawConfig: Record<string, unknown>, registry: PipelineRegistry = sharedRegistry(), gate?: SharedArrayBuffer): Promise<Plugin> {
    const config = instanceConfig(rawConfig);
    await registry.checkPaths(config);
    return new Plugin(rawConfig, registry, config, gate);
  }

  /** In process (kong-pdk calls this): a new destination's directories get the bounded sync check. */
  constructor(rawConfig: Record<string, unknown>, registry: PipelineRegistry = sharedRegistry(), config: PluginConfig = instanceConfig(rawConfig), gate?: SharedArrayBuffer) {
    this.config = config;
    this.privacy = compilePrivacy(this.config.privacy);
    reportRefused(this.privacy);
    this.registry = registry;
    // Opening the destination's pipeline replays its spool; a directory that fails its check or
    // a spool that cannot be opened fails StartInstance with the reason.
    this.pipeline = registry.get(this.config);
    if (config.fail_closed.enabled) {
      this.gate = new Int32Array(gate ?? new SharedArrayBuffer(4));
      const [a] = immudbAddresses(config);
      const watch = sharedFailClosedWatch(createLogger('fail-closed'));
      registry.metrics.trackFailClosed(() => watch.refusing());
      this.closeGate = watch.add(this.pipeline, config.fail_closed, this.gate, `${a!.host}:${a!.port}/${config.immudb_database}`);
    }
    // Lifecycle entries and sequence numbers (docs/decisions.md #30, #31).
    this.coverage = coverageOf(this.pipeline, { nodeId: registry.settings.nodeId, hostname: registry.settings.hostname }, registry.logger);
    this.coverage.configLoaded(this.config, rawConfig);
  }

  /** The instance is gone (CloseInstance): its gate is no longer kept. */
  close(): void {
    this.closeGate?.();
  }

  async log(kong: KongLogPdk): Promise<void> {
    const { raw, failure } = await serializeLog(kong);
    await this.record(raw, failure);
  }

  /**
   * Audits one request from what kong.log.serialize() returned (or the reason it failed).
   * Resolves once the entry is durable in the spool; never throws.
   */
  async record(raw: unknown, serializeFailure?: string): Promise<void> {
    const problems: string[] = [];
    if (serializeFailure !== undefined) {
      raw = null;
      problems.push(`kong.log.serialize failed: ${serializeFailure.slice(0, 200)}`);
    }
    const log = readSerialized(raw, problems);
    const entry = this.capture(log, problems);
    if (problems.length) {
      logger.once('warn', problems[0]!.split(':')[0]!, `request ${entry.request_id ?? '(no request id)'} audited as ${entry.id} with problems: ${problems.join('; ')}`);
    }
    const span = this.traceEntry(log, entry);
    // Resolves once the entry is durable in the spool (never throws; refusals are counted).
    await this.pipeline.submit(encodeEntry(this.config.key_prefix, entry), span);
  }

  /** The entry's audit span; its ids go into the entry (before it is encoded), both ways linked. */
  private traceEntry(log: KongSerializedLog | null, entry: AuditEntry): EntrySpanRef | undefined {
    const tracing = this.config.tracing.enabled ? this.registry.tracing() : null;
    if (!tracing) return undefined;
    try {
      const span = tracing.entrySpan(entry, requestTraceOf(log, entry), entryKey(this.config.key_prefix, entry.id), this.config.tracing.record_client_address);
      entry.trace_id = span.traceId;
      entry.span_id = span.spanId;
      return span;
    } catch (e) {
      logger.once('warn', 'tracing-span', `tracing: no audit span for entry ${entry.id}: ${(e as Error).message}; the entry is recorded anyway`);
      return undefined;
    }
  }

  private capture(log: KongSerializedLog | null, problems: string[]): AuditEntry {
    const s = this.registry.settings;
    const now = Date.now();
    // Numbered here, right before the entry is submitted: numbers reach the spool in order.
    const sequence = this.coverage.number(this.config.key_prefix, this.config.heartbeat_interval);
    const ctx = { id: auditId(now), now, nodeId: s.nodeId, hostname: s.hostname, sequence };
    try {
      // Also makes the problems safe to store and log, in place (no quoted input).
      return buildAuditEntry(log, ctx, problems, this.privacy);
    } catch (e) {
      // A bug must not cost the audit entry: record what is certain, say that capture failed.
      problems.push(`capture failed: ${e instanceof Error ? e.name : typeof e}`);
      return buildAuditEntry(null, ctx, problems, this.privacy);
    }
  }
}
