// Side-by-side comparison of plugin servers ("arms") under the same Kong-like load: rounds of a
// fixed duration rotate over the arms so that each ratio is taken within one run, on the same
// machine state. Before any round starts, every audit arm's pipeline must have written and
// verified all it was given, so no arm's background work lands in another arm's round.
import { CpuMeter, probe, type ProbeStats } from './proc.js';
import {
  auditConfig, drive, drivePaced, startBenchServer, startWorkers, WriteCounter,
  type BenchImmudb, type BenchServer,
} from './stack.js';
import { median, perSecond, summarize } from './stats.js';
import type { KongInstance } from '../../test/helpers/kong-driver.js';

export interface ArmSpec {
  key: string;
  label: string;
  kind: 'noop' | 'audit';
  /** Plugin config overrides (audit arms). */
  config?: Record<string, unknown>;
  queue?: Record<string, unknown>;
  /** Extra environment of the plugin server (e.g. IMMUDB_AUDIT_THREAD=off). */
  env?: Record<string, string>;
}

export interface ArmRound {
  events: number;
  ms: number;
  rate: number;
  cpu: Record<string, number>;
  eld: ProbeStats['eld'];
}

export interface Arm {
  spec: ArmSpec;
  server: BenchServer;
  workers: KongInstance[];
  counter?: WriteCounter;
  sent: number;
  meter: CpuMeter;
  rounds: ArmRound[];
  latencies: number[];
  drainWaitMs: number;
}

export async function startArms(immudb: BenchImmudb, specs: ArmSpec[], workers: number): Promise<Arm[]> {
  const arms: Arm[] = [];
  try {
    for (const spec of specs) {
      const server = await startBenchServer(spec.kind, spec.env ? { env: spec.env } : {});
      const db = `bench_${spec.key.replace(/[^a-z0-9]/gi, '_')}`.toLowerCase();
      const config = auditConfig(immudb, db, spec.config ?? {}, spec.queue ?? {});
      const arm: Arm = {
        spec, server, workers: [], sent: 0, rounds: [], latencies: [], drainWaitMs: 0,
        meter: new CpuMeter({ server: server.pid, serverMain: { mainThread: server.pid }, immudb: immudb.pid, driver: process.pid }),
      };
      arms.push(arm);
      arm.workers = await startWorkers(server, workers, config);
      if (spec.kind === 'audit') {
        // First events create the database; the counter needs it.
        arm.sent += (await drive(arm.workers, ['{}'], { concurrency: 4, count: 20 })).events;
        arm.counter = await WriteCounter.open(immudb, db, server.dataDir);
      }
    }
  } catch (e) {
    await stopArms(arms);
    throw e;
  }
  return arms;
}

export async function stopArms(arms: Arm[]): Promise<void> {
  for (const a of arms) await a.server.dispose().catch(() => undefined);
}

/** Waits until every audit arm has verified all it was sent. */
export async function drainAll(arms: Arm[], timeoutMs = 120_000): Promise<void> {
  for (const a of arms) {
    if (!a.counter) continue;
    const t = performance.now();
    const p = await a.counter.waitVerified(a.sent, timeoutMs);
    a.drainWaitMs += performance.now() - t;
    if (p.verifiedEntries < a.sent) throw new Error(`${a.spec.label}: only ${p.verifiedEntries} of ${a.sent} entries verified after ${timeoutMs} ms`);
  }
}

export interface RoundOptions {
  rounds: number;
  roundMs: number;
  concurrency: number;
  warmupMs: number;
  log?: (m: string) => void;
}

export async function runRounds(arms: Arm[], pool: readonly string[], o: RoundOptions): Promise<void> {
  for (const a of arms) a.sent += (await drive(a.workers, pool, { concurrency: o.concurrency, durationMs: o.warmupMs })).events;
  for (let r = 0; r < o.rounds; r++) {
    // Rotate the order so no arm always follows the same one.
    const order = arms.map((_, i) => arms[(i + r) % arms.length]!);
    for (const a of order) {
      await drainAll(arms);
      await probe(a.server.probeSock, { cmd: 'stats', reset: true });
      a.meter.lap();
      const d = await drive(a.workers, pool, { concurrency: o.concurrency, durationMs: o.roundMs, latencies: true });
      const cpu = a.meter.lap();
      const st = await probe(a.server.probeSock, { cmd: 'stats' });
      if (d.errors) throw new Error(`${a.spec.label}: ${d.errors} events failed: ${d.firstError}`);
      a.sent += d.events;
      for (const x of d.latencies) a.latencies.push(x);
      a.rounds.push({ events: d.events, ms: d.ms, rate: perSecond(d.events, d.ms), cpu, eld: st.eld });
      o.log?.(`round ${r + 1}/${o.rounds} ${a.spec.label}: ${perSecond(d.events, d.ms).toFixed(0)} events/s`);
    }
  }
  await drainAll(arms);
}

/** Per-arm figures over its rounds: median rate, pooled latencies, CPU per event by process. */
export function armRow(a: Arm): Record<string, number | string> {
  const events = a.rounds.reduce((s, x) => s + x.events, 0);
  const cpu = (k: string) => (a.rounds.reduce((s, x) => s + (x.cpu[k] ?? NaN), 0) * 1000) / events;
  const l = summarize(a.latencies);
  return {
    plugin: a.spec.label,
    'events/s': median(a.rounds.map((x) => x.rate)),
    'round trips/s': 2 * median(a.rounds.map((x) => x.rate)),
    'p50 ms': l.p50,
    'p99 ms': l.p99,
    'server CPU µs/event': cpu('server'),
    'main thread CPU µs/event': cpu('serverMain'),
    'immudb CPU µs/event': cpu('immudb'),
    'driver CPU µs/event': cpu('driver'),
    'event loop p99 ms': median(a.rounds.map((x) => x.eld.p99Ms)),
    'event loop max ms': Math.max(...a.rounds.map((x) => x.eld.maxMs)),
  };
}

/** Ratio of arm b's rate to arm a's in each round (rounds pair up by index), and their median. */
export function roundRatios(b: Arm, a: Arm): number[] {
  return b.rounds.map((x, i) => x.rate / a.rounds[i]!.rate);
}

export interface PairedWindow {
  /** Plugin-server CPU per event (µs) of each arm, measured over the same window. */
  cpu: number[];
  /** Event-loop delay p99 (ms) of each arm's main thread over the window. */
  eldP99: number[];
  /** CPU per event (µs) of each arm's main thread alone (the one answering Kong). */
  mainCpu: number[];
  events: number[];
  late: number[];
}

/**
 * CPU per event of several arms loaded AT THE SAME TIME with the same paced rate: every arm sees
 * the same machine (other tenants, frequency, caches) in each window, so the ratios between them
 * hold even when the absolute figures move from window to window.
 */
export async function pairedCpu(arms: Arm[], pool: readonly string[], o: { rate: number; windowMs: number; windows: number; log?: (m: string) => void }): Promise<PairedWindow[]> {
  const out: PairedWindow[] = [];
  for (let w = 0; w < o.windows; w++) {
    await drainAll(arms);
    for (const a of arms) {
      await probe(a.server.probeSock, { cmd: 'stats', reset: true });
      a.meter.lap();
    }
    const results = await Promise.all(arms.map((a) => drivePaced(a.workers, pool, { rate: o.rate, durationMs: o.windowMs })));
    const cpus = arms.map((a) => a.meter.lap());
    const elds = await Promise.all(arms.map((a) => probe(a.server.probeSock, { cmd: 'stats' })));
    results.forEach((r, i) => {
      if (r.errors) throw new Error(`${arms[i]!.spec.label}: ${r.errors} events failed: ${r.firstError}`);
      arms[i]!.sent += r.events;
    });
    out.push({ cpu: cpus.map((c, i) => (c.server! * 1000) / results[i]!.events), mainCpu: cpus.map((c, i) => (c.serverMain! * 1000) / results[i]!.events), eldP99: elds.map((e) => e.eld.p99Ms), events: results.map((r) => r.events), late: results.map((r) => r.late) });
    o.log?.(`paired window ${w + 1}/${o.windows}: ${arms.map((a, i) => `${a.spec.key} ${out[w]!.cpu[i]!.toFixed(0)} µs`).join(', ')}`);
  }
  await drainAll(arms);
  return out;
}
