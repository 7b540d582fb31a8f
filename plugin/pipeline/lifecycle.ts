// Coverage an auditor can prove (docs/decisions.md #30, #31): for each key prefix a destination
// takes, the sequence stream its records are numbered from (sequence-stream.ts), and lifecycle
// entries under `<prefix>:lifecycle:<uuidv7>` saying what happened to the writing itself:
//   started        the plugin server began writing this prefix (version, node, pid, first number,
//                  how the previous run ended, what the spool found on open)
//   spool_damage   the spool found damaged bytes or missing records when it opened
//   config_loaded  an instance started with a configuration not seen before in this run (a hash
//                  of it without its secrets; route, service and plugin ids as Kong sent them)
//   writer_failing / writer_resumed / writer_halted   writes to immudb fail, succeed again, stop
//   heartbeat      every heartbeat_interval seconds, so that silence can be told from idleness
//   stopping       a clean shutdown; its number is the last of the run
// They go through the same pipeline as audit entries (spool, verified writes, proofs), each
// numbered in the prefix's stream.
import { createHash } from 'node:crypto';
import { auditId } from '../capture/audit-id.js';
import { canonicalJson } from '../capture/canonical-json.js';
import type { AuditRecord, SequenceRef } from '../capture/encode.js';
import { ownedKeyValue } from '../capture/owned-buffers.js';
import { withoutSecrets } from '../capture/secret-refs.js';
import type { PluginConfig } from '../config/config.js';
import type { Logger } from '../log.js';
import { lifecycleKey } from '../store/key-layout.js';
import { Version } from '../version.js';
import type { AuditPipeline } from './audit-pipeline.js';
import { SequenceStream } from './sequence-stream.js';

export type LifecycleEvent = 'started' | 'spool_damage' | 'config_loaded' | 'writer_failing' | 'writer_resumed' | 'writer_halted' | 'heartbeat' | 'stopping';

export interface CoverageIdentity {
  /** IMMUDB_AUDIT_NODE_ID or KONG_NODE_ID, else null (then the host name names the node). */
  nodeId: string | null;
  hostname: string;
}

/** How often the writer's health is looked at for writer_* events. */
const HEALTH_POLL_MS = 1000;

/** One key prefix of a destination: its stream, its heartbeat, the configurations seen. */
class PrefixCoverage {
  readonly stream: SequenceStream;
  private readonly configs = new Set<string>();
  private heartbeat: NodeJS.Timeout | undefined;
  private numberedAtBeat = 0;

  constructor(private readonly owner: PipelineCoverage, readonly prefix: string, readonly heartbeatSeconds: number) {
    this.stream = SequenceStream.open(owner.pipeline.spool.dir, prefix);
    const r = owner.pipeline.spool.recovery;
    const previous = this.stream.previous;
    void owner.write(this, 'started', {
      heartbeat_seconds: heartbeatSeconds,
      // Numbers the previous run reserved and never used end right before this run's first.
      previous_run: previous ? { ended: previous.clean ? 'clean' : 'unclean', last_number: previous.last } : null,
      spool: { pending: r.pending, missing: r.missing, damaged_regions: r.damagedRegions, damaged_bytes: r.damagedBytes },
    });
    if (r.missing || r.damagedRegions) {
      void owner.write(this, 'spool_damage', { missing_records: r.missing, damaged_regions: r.damagedRegions, damaged_bytes: r.damagedBytes });
    }
    this.numberedAtBeat = this.stream.lastNumber;
    if (heartbeatSeconds > 0) {
      this.heartbeat = setInterval(() => this.beat(), heartbeatSeconds * 1000);
      this.heartbeat.unref();
    }
  }

  next(): SequenceRef {
    // Members in canonical order: the entry keeps canonicalJson's one-call path (decisions #14).
    return { number: this.stream.next(), stream: this.stream.stream };
  }

  private beat() {
    // Numbers handed out since the last heartbeat (entries and lifecycle entries): a cross-check.
    void this.owner.write(this, 'heartbeat', { numbered_since_last: this.stream.lastNumber - this.numberedAtBeat });
    this.numberedAtBeat = this.stream.lastNumber;
  }

  /** True when this configuration (by hash) is new to this prefix in this run. */
  seeConfig(hash: string): { isNew: boolean; previous: string | null } {
    const previous = [...this.configs].at(-1) ?? null;
    if (this.configs.has(hash)) return { isNew: false, previous };
    this.configs.add(hash);
    return { isNew: true, previous };
  }

  stopTimers() {
    clearInterval(this.heartbeat);
  }
}

/** The coverage of one destination's pipeline: its prefixes' streams and lifecycle entries. */
export class PipelineCoverage {
  private readonly prefixes = new Map<string, PrefixCoverage>();
  private readonly healthTimer: NodeJS.Timeout;
  private health: 'writing' | 'retrying' | 'halted' = 'writing';
  private stopped = false;

  constructor(readonly pipeline: AuditPipeline, private readonly identity: CoverageIdentity, private readonly logger: Logger) {
    this.healthTimer = setInterval(() => this.watchHealth(), HEALTH_POLL_MS);
    this.healthTimer.unref();
  }

  /** The prefix's coverage, opened (and its `started` entry written) on first use. */
  private prefix(prefix: string, heartbeatSeconds: number): PrefixCoverage {
    let p = this.prefixes.get(prefix);
    if (!p) {
      p = new PrefixCoverage(this, prefix, heartbeatSeconds);
      this.prefixes.set(prefix, p);
    } else if (p.heartbeatSeconds !== heartbeatSeconds) {
      this.logger.once('warn', `heartbeat-${prefix}`, `configurations writing under ${prefix} differ in heartbeat_interval; the first one's (${p.heartbeatSeconds} s) applies`);
    }
    return p;
  }

  /**
   * The next number of the prefix's stream for an audit entry; null when its state cannot be
   * saved (the entry is written without a number, and auditors see it as unnumbered).
   */
  number(prefix: string, heartbeatSeconds: number): SequenceRef | null {
    try {
      return this.prefix(prefix, heartbeatSeconds).next();
    } catch (e) {
      this.logger.once('error', `sequence-${prefix}`, `the sequence of ${prefix} cannot be saved in ${this.pipeline.spool.dir} (${(e as Error).message}); entries are written without a sequence number until it can`);
      return null;
    }
  }

  /** An instance started: a configuration new to this prefix in this run is recorded. */
  configLoaded(config: PluginConfig, raw: Record<string, unknown>): void {
    try {
      const p = this.prefix(config.key_prefix, config.heartbeat_interval);
      const hash = configHash(config);
      const seen = p.seeConfig(hash);
      if (!seen.isNew) return;
      const id = (k: string) => (typeof raw[k] === 'string' ? raw[k] : null);
      this.write(p, 'config_loaded', {
        config_hash: hash,
        previous_config_hash: seen.previous,
        route_id: id('route_id'),
        service_id: id('service_id'),
        plugin_id: id('__plugin_id'),
      });
    } catch (e) {
      this.logger.once('error', `config-loaded-${config.key_prefix}`, `no config_loaded lifecycle entry for ${config.key_prefix}: ${(e as Error).message}`);
    }
  }

  /** Submits a lifecycle entry numbered in the prefix's stream (never throws). */
  write(p: PrefixCoverage, event: LifecycleEvent, details: Record<string, unknown>): Promise<boolean> {
    try {
      const rec = encodeLifecycle(p.prefix, event, p.next(), this.identity, details);
      return this.pipeline.submit(rec, undefined, true);
    } catch (e) {
      this.logger.once('error', `lifecycle-${event}`, `lifecycle entry ${event} for ${p.prefix} not written: ${(e as Error).message}`);
      return Promise.resolve(false);
    }
  }

  /** Writer state changes become lifecycle entries of every prefix of the destination. */
  private watchHealth() {
    if (this.stopped) return;
    const s = this.pipeline.health.snapshot(Boolean(this.pipeline.writer.halted));
    if (s.state === this.health) return;
    const was = this.health;
    this.health = s.state;
    const event: LifecycleEvent = s.state === 'halted' ? 'writer_halted' : s.state === 'retrying' ? 'writer_failing' : 'writer_resumed';
    const details = s.state === 'writing' ? { was } : { error: s.last_error ?? null, error_kind: s.last_error_kind ?? null };
    for (const p of this.prefixes.values()) void this.write(p, event, details);
  }

  /**
   * A clean shutdown: a `stopping` entry per prefix (durable in the spool when this resolves),
   * then each stream saved as cleanly closed, so the next run continues its numbers.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.healthTimer);
    await Promise.all([...this.prefixes.values()].map(async (p) => {
      p.stopTimers();
      const ok = await this.write(p, 'stopping', {});
      if (!ok) return;
      try {
        p.stream.close();
      } catch (e) {
        this.logger.warn(`the sequence of ${p.prefix} could not be saved as cleanly stopped (${(e as Error).message}); the next run continues after its reservation`);
      }
    }));
  }
}

/** SHA-256 of the configuration's canonical JSON with its secret fields redacted. */
export function configHash(config: PluginConfig): string {
  return 'sha256:' + createHash('sha256').update(canonicalJson(withoutSecrets(config)) ?? '').digest('hex');
}

export function encodeLifecycle(prefix: string, event: LifecycleEvent, sequence: SequenceRef, who: CoverageIdentity, details: Record<string, unknown>, now = Date.now()): AuditRecord {
  const id = auditId(now);
  const json = canonicalJson({
    type: 'lifecycle',
    event,
    id,
    time: new Date(now).toISOString(),
    node_id: who.nodeId,
    hostname: who.hostname,
    pid: process.pid,
    plugin_version: Version,
    sequence,
    ...details,
  });
  if (json === undefined) throw new Error('lifecycle entry could not be encoded');
  return { id, ...ownedKeyValue(lifecycleKey(prefix, id), json), sequence };
}

const coverages = new WeakMap<AuditPipeline, PipelineCoverage>();

/** The coverage of a pipeline (created on first use). */
export function coverageOf(pipeline: AuditPipeline, identity: CoverageIdentity, logger: Logger): PipelineCoverage {
  let c = coverages.get(pipeline);
  if (!c) {
    c = new PipelineCoverage(pipeline, identity, logger);
    coverages.set(pipeline, c);
  }
  return c;
}

/** Stops the coverage of a pipeline, if it has one (before the pipeline's own shutdown). */
export function stopCoverage(pipeline: AuditPipeline): Promise<void> {
  return coverages.get(pipeline)?.stop() ?? Promise.resolve();
}
