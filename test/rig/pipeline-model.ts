// Model-based tests of the pipeline (fast-check): the real AuditPipeline + Spool + AuditWriter
// in this process, writing to a real immudb through a TCP link (outages, the wire cut by a
// crash) and the gRPC fault proxy (writes that fail, answers lost, forged answers, tampered
// requests), driven by random command sequences: appends, crashes (the pipeline dropped without
// shutdown, even in the middle of appends), restarts on the same spool directory, outages,
// write faults and queue-size changes. After every command, and after a final heal:
//
//   every entry acknowledged (submit resolved true) is proven in immudb exactly once (one
//   revision, our value) or still in the spool, and nothing the pipeline counted as written
//   (its batch callback) is missing from immudb: nothing unproven is ever acknowledged.
//
// Shared by test/integration/pipeline-model.test.ts and the soak runner (test/rig/soak.ts).
import fc from 'fast-check';
import * as grpc from '@grpc/grpc-js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditPipeline } from '../../plugin/pipeline/audit-pipeline.js';
import { Spool } from '../../plugin/pipeline/spool.js';
import { faultyFs, fsError, nodeFs } from '../../plugin/pipeline/spool-fs.js';
import { AuditWriter } from '../../plugin/store/audit-writer.js';
import { VerificationError } from '../../plugin/store/proofs/index.js';
import { ImmudbClient } from '../../plugin/store/immudb-client.js';
import { auditId } from '../../plugin/capture/audit-id.js';
import { createLogger, type Logger } from '../../plugin/log.js';
import type { QueueConfig } from '../../plugin/config/config.js';
import { startImmudbProxy, type ImmudbProxy } from '../helpers/immudb-proxy.js';
import { startImmudb, type ImmudbServer } from '../../scripts/lib/immudb-server.js';
import { TcpLink } from './tcp-link.js';
import { settleWithin } from '../helpers/until.js';

/** What the proxy does to one VerifiableSet. */
export const WRITE_FAULTS = ['fail', 'lost-answer', 'tamper-answer', 'tamper-request', 'replay-answer'] as const;
export type WriteFault = (typeof WRITE_FAULTS)[number];
/** What the spool's file-system seam does to one write or fsync. */
export const DISK_FAULTS = ['ENOSPC-write', 'EIO-write', 'EIO-fsync'] as const;
export type DiskFault = (typeof DISK_FAULTS)[number];

/** Counts over many schedules (the soak's report). */
export interface Tally {
  schedules: number;
  commands: Record<string, number>;
  faults: Record<string, number>;
  acked: number;
  /** Submits in flight at a crash (Kong was never told): may or may not be stored. */
  inFlightAtCrash: number;
  /** Acknowledged, and neither proven in immudb nor spooled. */
  lost: number;
  /** Submits resolved false: lost, and recorded as such by the product (a loss record). */
  lostRecorded: number;
  /** Counted as written by the pipeline but not proven in immudb. */
  acceptedUnproven: number;
  /** Acknowledged and still spooled after the final heal (held by a halted writer). */
  stillSpooled: number;
}

export function newTally(): Tally {
  return { schedules: 0, commands: {}, faults: {}, acked: 0, inFlightAtCrash: 0, lost: 0, lostRecorded: 0, acceptedUnproven: 0, stillSpooled: 0 };
}

const bump = (m: Record<string, number>, k: string) => void (m[k] = (m[k] ?? 0) + 1);

/** One immudb, one fault proxy in front of it, one direct client: shared by every schedule. */
export interface RigEnv {
  immudb: ImmudbServer;
  proxy: ImmudbProxy;
  direct: ImmudbClient;
  database: string;
  tally: Tally;
  /** The schedule running now (the proxy's hook consults it). */
  current?: PipelineUnderTest;
  /** Schedules started on this env: each gets its own key prefix in the shared database. */
  runs: number;
  dispose(): Promise<void>;
}

export async function startRigEnv(tally = newTally()): Promise<RigEnv> {
  const immudb = await startImmudb();
  const proxy = await startImmudbProxy(immudb);
  const database = 'model';
  // The database is created through the first writer; the direct client waits for it.
  const direct = await ImmudbClient.connect({ host: immudb.host, port: immudb.port, username: immudb.username, password: immudb.password, database: 'defaultdb' });
  await direct.close();
  const admin = await ImmudbClient.connect({ host: immudb.host, port: immudb.port, username: immudb.username, password: immudb.password, database, createDatabase: true });
  const env: RigEnv = {
    immudb, proxy, direct: admin, database, tally, runs: 0,
    async dispose() {
      await admin.close().catch(() => undefined);
      await proxy.close();
      await immudb.dispose();
    },
  };
  proxy.hook('VerifiableSet', (call) => env.current?.onVerifiableSet(call));
  return env;
}

interface Incarnation {
  pipeline: AuditPipeline;
  link: TcpLink;
  dead: boolean;
  inflight: Set<Promise<unknown>>;
}

export interface Violation {
  kind: 'lost' | 'accepted-unproven' | 'stored-unknown' | 'stored-twice';
  key: string;
}

const flip = (b: Buffer) => {
  const c = Buffer.from(b);
  c[0] = (c[0] ?? 0) ^ 0xff;
  return c;
};

/** The system under test: one destination's pipeline, across crashes and restarts. */
export class PipelineUnderTest {
  readonly prefix: string;
  private readonly spoolDir: string;
  private readonly stateDir: string;
  private inc: Incarnation | undefined;
  /** Every value submitted, by key. */
  private readonly submitted = new Map<string, Buffer>();
  private readonly acked = new Set<string>();
  private readonly unknown = new Set<string>();
  /** Keys the pipeline counted as written or already stored. */
  private readonly counted = new Set<string>();
  private faults: WriteFault[] = [];
  private diskFaults: DiskFault[] = [];
  private lastAnswer: unknown;
  private linkDown = false;
  readonly logLines: string[] = [];
  private readonly logger: Logger;

  constructor(private readonly env: RigEnv, run: number, public queue: QueueConfig, private readonly spoolMaxBytes: number) {
    this.prefix = `m${run}`;
    this.spoolDir = mkdtempSync(join(tmpdir(), 'kia-model-spool-'));
    this.stateDir = mkdtempSync(join(tmpdir(), 'kia-model-state-'));
    this.logger = createLogger(`model ${this.prefix}`, (l) => {
      this.logLines.push(l);
      if (this.logLines.length > 60) this.logLines.shift();
    });
  }

  get running(): boolean {
    return this.inc !== undefined;
  }

  get halted(): boolean {
    return this.inc?.pipeline.writer.halted !== undefined;
  }

  async start(): Promise<void> {
    const link = await TcpLink.open(this.env.proxy);
    link.setDown(this.linkDown);
    const { immudb, database } = this.env;
    const writer = new AuditWriter({
      connection: { host: '127.0.0.1', port: link.port, username: immudb.username, password: immudb.password, database, callTimeoutMs: 2_000 },
      stateDir: this.stateDir,
      logger: this.logger,
    });
    // Disk faults hit the spool's writes and fsyncs (never its open: a restart must work).
    const fs = faultyFs(nodeFs, (call) => {
      const next = this.diskFaults[0];
      if (!next || !next.endsWith(`-${call}`)) return undefined;
      this.diskFaults.shift();
      bump(this.env.tally.faults, next);
      return { error: fsError(next.startsWith('ENOSPC') ? 'ENOSPC' : 'EIO', call) };
    });
    const spool = Spool.open({ dir: this.spoolDir, maxBytes: this.spoolMaxBytes, fsync: 'group', segmentBytes: 4096, logger: this.logger, fs });
    const pipeline = new AuditPipeline(this.queue, spool, writer, this.logger, (batch) => {
      for (const r of batch) this.counted.add(r.key.toString());
    });
    this.inc = { pipeline, link, dead: false, inflight: new Set() };
  }

  /** Submits n entries; with crashAfterMs, the pipeline crashes that long after the submits began. */
  async append(n: number, crashAfterMs?: number): Promise<void> {
    const inc = this.inc!;
    const all: Array<Promise<unknown>> = [];
    for (let i = 0; i < n; i++) {
      const id = auditId();
      const key = `${this.prefix}:entry:${id}`;
      const value = Buffer.from(JSON.stringify({ id, schema_version: 1, trace_id: id.replace(/-/g, '').padEnd(32, '0'), n: this.submitted.size }));
      this.submitted.set(key, value);
      const p = inc.pipeline.submit({ id, key: Buffer.from(key), value }).then((ok) => {
        if (inc.dead) {
          this.unknown.add(key);
          this.env.tally.inFlightAtCrash++;
        } else if (ok) {
          this.acked.add(key);
          this.env.tally.acked++;
        } else {
          this.env.tally.lostRecorded++;
        }
      });
      inc.inflight.add(p);
      void p.finally(() => inc.inflight.delete(p));
      all.push(p);
    }
    if (crashAfterMs === undefined) {
      // Entries the spool could not take resolve once proven in immudb: not while it is down.
      // Those still pending count when they resolve (if the pipeline is alive then).
      await settleWithin(Promise.all(all), 2_000);
      return;
    }
    await new Promise((r) => setTimeout(r, crashAfterMs));
    await this.crash();
  }

  /**
   * Drops the pipeline without shutdown: its wire is cut at once (a write in flight fails), its
   * writer stops at its next attempt, and what it was doing settles before the spool is
   * reopened (a dead process writes nothing later; its last fsyncs may or may not have landed,
   * and here they land). Submits that settle after the cut were never acknowledged to Kong.
   */
  async crash(): Promise<void> {
    const inc = this.inc;
    if (!inc) return;
    this.inc = undefined;
    inc.dead = true;
    await inc.link.close();
    inc.pipeline.writer.halted ??= new VerificationError('rig: simulated crash');
    // Entries held in memory (the spool refused them) die with the process: its loop for them
    // stops at its next attempt, without the shutdown's bookkeeping.
    (inc.pipeline as unknown as { stopped: boolean }).stopped = true;
    // Appends in flight finish (or fail); held entries never settle now: wait for those no longer.
    await settleWithin(Promise.allSettled([...inc.inflight]), 3_000);
    await inc.pipeline.writer.close().catch(() => undefined);
    await inc.pipeline.spool.close();
  }

  /** A configuration change: the pipeline is shut down (briefly) and reopened with new queue sizes. */
  async reconfigure(queue: QueueConfig): Promise<void> {
    const inc = this.inc!;
    await inc.pipeline.shutdown(200);
    await this.crash();
    this.queue = queue;
    await this.start();
  }

  setOutage(down: boolean): void {
    this.linkDown = down;
    this.inc?.link.setDown(down);
  }

  injectFaults(kind: WriteFault, count: number): void {
    for (let i = 0; i < count; i++) this.faults.push(kind);
  }

  injectDiskFaults(kind: DiskFault, count: number): void {
    for (let i = 0; i < count; i++) this.diskFaults.push(kind);
  }

  /** Waits (bounded) for the pipeline to write what it holds. */
  async settle(ms: number): Promise<void> {
    const p = this.inc?.pipeline;
    if (!p) return;
    await settleWithin(p.flush().catch(() => undefined), ms);
  }

  /** The proxy's hook for VerifiableSet: the next queued fault, if any, else pass through. */
  async onVerifiableSet(call: import('../helpers/immudb-proxy.js').ProxyCall) {
    const kind = this.faults.shift();
    if (!kind) {
      const up = await call.forward();
      if (!up.error) this.lastAnswer = up.response;
      return up;
    }
    bump(this.env.tally.faults, kind);
    const unavailable = (details: string) => ({ error: { code: grpc.status.UNAVAILABLE, details } });
    switch (kind) {
      case 'fail':
        return unavailable('rig: write failed');
      case 'lost-answer': {
        const up = await call.forward();
        return up.error ? up : unavailable('rig: answer lost');
      }
      case 'tamper-answer': {
        const up = await call.forward();
        if (up.error) return up;
        const r = up.response;
        return { response: { ...r, tx: { ...r.tx, header: { ...r.tx.header, eH: flip(r.tx.header.eH) } } } };
      }
      case 'tamper-request': {
        const req = call.request;
        const KVs = (req.setRequest.KVs as Array<{ key: Buffer; value: Buffer }>).map((kv) => ({ ...kv, value: Buffer.concat([kv.value, Buffer.from(' ')]) }));
        return call.forward({ ...req, setRequest: { ...req.setRequest, KVs } });
      }
      case 'replay-answer':
        return this.lastAnswer ? { response: this.lastAnswer } : unavailable('rig: nothing to replay');
    }
  }

  /** Checks the invariant now; with final, also tallies what is left. */
  async check(final = false): Promise<Violation[]> {
    // The spool first, then immudb: an entry acknowledged in between is in immudb already.
    const spooled = this.inc ? new Set(this.inc.pipeline.spool.read(undefined, 1_000_000).map((r) => r.key.toString())) : undefined;
    const counted = [...this.counted];
    const t0 = Date.now();
    const stored = await this.env.direct.scanPrefix(Buffer.from(`${this.prefix}:entry:`));
    if (process.env.KIA_RIG_DEBUG && Date.now() - t0 > 500) console.error(`rig: scan ${Date.now() - t0} ms`);
    const proven = new Set<string>();
    const out: Violation[] = [];
    for (const e of stored) {
      const key = e.key.toString();
      const mine = this.submitted.get(key);
      if (!mine) out.push({ kind: 'stored-unknown', key });
      else if (Number(e.revision) !== 1) out.push({ kind: 'stored-twice', key });
      else if (e.value.equals(mine)) proven.add(key);
    }
    for (const key of this.acked) {
      if (proven.has(key)) continue;
      if (!spooled) continue; // crashed: the spool is checked after the restart
      if (!spooled.has(key)) out.push({ kind: 'lost', key });
      else if (final) this.env.tally.stillSpooled++;
    }
    // Loss records (the product's own, written through the same verified path) count when stored.
    if (counted.some((k) => k.includes(':loss:'))) {
      for (const e of await this.env.direct.scanPrefix(Buffer.from(`${this.prefix}:loss:`))) if (Number(e.revision) === 1) proven.add(e.key.toString());
    }
    for (const key of counted) if (!proven.has(key)) out.push({ kind: 'accepted-unproven', key });
    if (final) {
      this.env.tally.lost += out.filter((v) => v.kind === 'lost').length;
      this.env.tally.acceptedUnproven += out.filter((v) => v.kind === 'accepted-unproven').length;
    }
    return out;
  }

  /** Ends the faults, restarts a crashed or halted pipeline and lets it drain (bounded). */
  async heal(): Promise<void> {
    this.faults = [];
    this.diskFaults = [];
    this.setOutage(false);
    if (this.halted) await this.crash();
    if (!this.running) await this.start();
    await this.settle(15_000);
  }

  async dispose(): Promise<void> {
    await this.crash();
    rmSync(this.spoolDir, { recursive: true, force: true });
    rmSync(this.stateDir, { recursive: true, force: true });
  }

  describe(): string {
    return `prefix ${this.prefix}, queue ${JSON.stringify(this.queue)}, spool max ${this.spoolMaxBytes} bytes; last log lines:\n${this.logLines.join('\n')}`;
  }
}

// ---- Commands ---------------------------------------------------------------------------------

interface Model {
  running: boolean;
}

type Cmd = fc.AsyncCommand<Model, PipelineUnderTest>;

let lastCommandAt = Date.now();
async function afterCommand(name: string, real: PipelineUnderTest) {
  bump(real['env'].tally.commands, name);
  if (process.env.KIA_RIG_DEBUG) console.error(`rig: ${name} ${Date.now() - lastCommandAt} ms`);
  const v = await real.check();
  lastCommandAt = Date.now();
  if (v.length) throw new Error(`invariant broken after ${name}: ${JSON.stringify(v.slice(0, 5))} (${v.length}); ${real.describe()}`);
}

class Append implements Cmd {
  constructor(readonly n: number) {}
  check = (m: Readonly<Model>) => m.running;
  async run(_m: Model, r: PipelineUnderTest) {
    await r.append(this.n);
    await afterCommand('append', r);
  }
  toString = () => `Append(${this.n})`;
}

class AppendThenCrash implements Cmd {
  constructor(readonly n: number, readonly ms: number) {}
  check = (m: Readonly<Model>) => m.running;
  async run(m: Model, r: PipelineUnderTest) {
    await r.append(this.n, this.ms);
    m.running = false;
    await afterCommand('append-crash', r);
  }
  toString = () => `AppendThenCrash(${this.n}, ${this.ms} ms)`;
}

class Crash implements Cmd {
  check = (m: Readonly<Model>) => m.running;
  async run(m: Model, r: PipelineUnderTest) {
    await r.crash();
    m.running = false;
    await afterCommand('crash', r);
  }
  toString = () => 'Crash';
}

class Restart implements Cmd {
  constructor(readonly queue: QueueConfig) {}
  check = (m: Readonly<Model>) => !m.running;
  async run(m: Model, r: PipelineUnderTest) {
    r.queue = this.queue;
    await r.start();
    m.running = true;
    await afterCommand('restart', r);
  }
  toString = () => `Restart(${JSON.stringify(this.queue)})`;
}

class Reconfigure implements Cmd {
  constructor(readonly queue: QueueConfig) {}
  check = (m: Readonly<Model>) => m.running;
  async run(_m: Model, r: PipelineUnderTest) {
    await r.reconfigure(this.queue);
    await afterCommand('reconfigure', r);
  }
  toString = () => `Reconfigure(${JSON.stringify(this.queue)})`;
}

/** A new configuration's queue settings applied to the running pipeline (registry.applyChanges). */
class LiveQueue implements Cmd {
  constructor(readonly queue: QueueConfig) {}
  check = (m: Readonly<Model>) => m.running;
  async run(_m: Model, r: PipelineUnderTest) {
    r.queue = this.queue;
    r['inc']!.pipeline.setQueue(this.queue);
    await afterCommand('live-queue', r);
  }
  toString = () => `LiveQueue(${JSON.stringify(this.queue)})`;
}

class Outage implements Cmd {
  constructor(readonly down: boolean) {}
  check = () => true;
  async run(_m: Model, r: PipelineUnderTest) {
    r.setOutage(this.down);
    if (this.down) bump(r['env'].tally.faults, 'outage');
    await afterCommand(this.down ? 'outage' : 'recover', r);
  }
  toString = () => (this.down ? 'Outage' : 'Recover');
}

class InjectFault implements Cmd {
  constructor(readonly kind: WriteFault, readonly count: number) {}
  check = () => true;
  async run(_m: Model, r: PipelineUnderTest) {
    r.injectFaults(this.kind, this.count);
    await afterCommand('fault', r);
  }
  toString = () => `Fault(${this.kind} x${this.count})`;
}

class InjectDiskFault implements Cmd {
  constructor(readonly kind: DiskFault, readonly count: number) {}
  check = () => true;
  async run(_m: Model, r: PipelineUnderTest) {
    r.injectDiskFaults(this.kind, this.count);
    await afterCommand('disk-fault', r);
  }
  toString = () => `DiskFault(${this.kind} x${this.count})`;
}

class Settle implements Cmd {
  constructor(readonly ms: number) {}
  check = (m: Readonly<Model>) => m.running;
  async run(_m: Model, r: PipelineUnderTest) {
    await r.settle(this.ms);
    await afterCommand('settle', r);
  }
  toString = () => `Settle(${this.ms} ms)`;
}

const queueArb: fc.Arbitrary<QueueConfig> = fc.record({
  max_batch_size: fc.integer({ min: 1, max: 16 }),
  max_coalescing_delay: fc.constantFrom(0, 0.005, 0.02),
  max_entries: fc.integer({ min: 1, max: 40 }),
  initial_retry_delay: fc.constant(0.005),
  max_retry_delay: fc.constant(0.05),
  // Memory bounded by bytes too, sometimes below one entry (always room for one).
  max_bytes: fc.constantFrom(null, null, 100, 2_000),
  concurrency_limit: fc.constant(1),
  max_retry_time: fc.constant(null),
});

const commandArbs: Array<fc.Arbitrary<Cmd>> = [
  fc.integer({ min: 1, max: 12 }).map((n) => new Append(n)),
  fc.integer({ min: 1, max: 12 }).map((n) => new Append(n)),
  fc.tuple(fc.integer({ min: 2, max: 12 }), fc.integer({ min: 0, max: 15 })).map(([n, ms]) => new AppendThenCrash(n, ms)),
  fc.integer({ min: 20, max: 400 }).map((ms) => new Settle(ms)),
  fc.boolean().map((down) => new Outage(down)),
  fc.tuple(fc.constantFrom(...WRITE_FAULTS), fc.integer({ min: 1, max: 2 })).map(([k, n]) => new InjectFault(k, n)),
  fc.tuple(fc.constantFrom(...DISK_FAULTS), fc.integer({ min: 1, max: 3 })).map(([k, n]) => new InjectDiskFault(k, n)),
  fc.constant(new Crash()),
  queueArb.map((q) => new Restart(q)),
  queueArb.map((q) => new Reconfigure(q)),
  queueArb.map((q) => new LiveQueue(q)),
];

export interface ModelRunOptions {
  numRuns: number;
  maxCommands?: number;
  seed?: number;
  path?: string;
  /** Stop generating new schedules after this long (ms); a failure found is still reported. */
  timeLimitMs?: number;
}

/**
 * Runs the property: each schedule gets a fresh spool, state directory and key prefix. Throws
 * fast-check's report on failure (seed, path and the shrunk command list).
 */
export async function runModel(env: RigEnv, opts: ModelRunOptions): Promise<void> {
  const prop = fc.asyncProperty(
    fc.commands(commandArbs, { maxCommands: opts.maxCommands ?? 20, size: 'medium' }),
    queueArb,
    fc.constantFrom(1 << 20, 1 << 20, 6 * 1024),
    async (cmds, queue, spoolMaxBytes) => {
      const sut = new PipelineUnderTest(env, env.runs++, queue, spoolMaxBytes);
      env.current = sut;
      env.tally.schedules++;
      try {
        const t0 = Date.now();
        await sut.start();
        await fc.asyncModelRun(() => ({ model: { running: true }, real: sut }), cmds);
        lastCommandAt = Date.now();
        await sut.heal();
        if (process.env.KIA_RIG_DEBUG) console.error(`rig: heal ${Date.now() - lastCommandAt} ms; schedule ${Date.now() - t0} ms`);
        const v = await sut.check(true);
        if (v.length) throw new Error(`invariant broken after the final heal: ${JSON.stringify(v.slice(0, 5))} (${v.length}); ${sut.describe()}`);
      } finally {
        env.current = undefined;
        await sut.dispose();
      }
    },
  );
  await fc.assert(prop, {
    numRuns: opts.numRuns,
    includeErrorInReport: true,
    ...(opts.seed !== undefined ? { seed: opts.seed } : {}),
    ...(opts.path !== undefined ? { path: opts.path, endOnFailure: true } : {}),
    ...(opts.timeLimitMs !== undefined ? { interruptAfterTimeLimit: opts.timeLimitMs } : {}),
  });
}

/** KIA_FC_SEED / KIA_FC_PATH replay a run; otherwise a fresh seed. */
export function modelSeed(): { seed: number; path?: string } {
  const seed = process.env.KIA_FC_SEED ? Number(process.env.KIA_FC_SEED) : Math.floor(Math.random() * 2 ** 31);
  return process.env.KIA_FC_PATH ? { seed, path: process.env.KIA_FC_PATH } : { seed };
}
