// The audit thread's file work, measured in worker threads (as the audit thread runs it), each
// arm in a fresh worker, rounds alternating (decisions #44). No immudb needed:
//   node dist/bench/audit-thread-micro.js [rounds]
// 1. What the `fdatasync` frame of the audit thread's profiles is: the real Spool (group commit,
//    bursts of 32 per turn) under the inspector's profiler, every fdatasync binding call timed in
//    wall and thread-CPU time, next to the frame's self time in the profile.
// 2. The spool's CPU per entry on its thread: fsync 'group' as written; without the head mark's
//    fdatasync; data written synchronously; 'off' (no fdatasync at all).
// 3. A trusted-state save's CPU on its thread: the store as it is (two copies overwritten in
//    place, #44) against the temp file + rename through fs/promises' FileHandle it had before.
import { fdatasync, mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { mkdir, open, rename } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { createLogger } from '../plugin/log.js';
import { Spool } from '../plugin/pipeline/spool.js';
import { nodeFs, type SpoolFs } from '../plugin/pipeline/spool-fs.js';
import { TrustedStateStore, type TrustedState } from '../plugin/store/trusted-state.js';
import { summarizeProfile, type CpuProfile } from './lib/cpuprofile.js';
import { median } from './lib/stats.js';

type Job = { kind: 'attribution' } | { kind: 'spool'; arm: SpoolArm } | { kind: 'save'; arm: SaveArm };
type SpoolArm = 'group' | 'group, head not fsynced' | 'group, data written sync' | 'off';
type SaveArm = 'two slots in place (#44)' | 'temp file + rename (before)';
const SPOOL_ARMS: SpoolArm[] = ['group', 'group, head not fsynced', 'group, data written sync', 'off'];
const SAVE_ARMS: SaveArm[] = ['two slots in place (#44)', 'temp file + rename (before)'];
const ENTRIES = 12_800;
const BURST = 32;
const SAVES = 300;

const cpuUs = () => {
  const u = process.threadCpuUsage();
  return u.user + u.system;
};

async function spoolRun(arm: SpoolArm, profile: boolean): Promise<Record<string, number>> {
  const dir = mkdtempSync(join(tmpdir(), 'kia-micro-spool-'));
  const inCall = { wallUs: 0, cpuUs: 0, calls: 0 };
  let headFd = -1;
  const timedFsync = (fd: number) => new Promise<void>((resolve, reject) => {
    const c0 = cpuUs();
    const t0 = performance.now();
    fdatasync(fd, (err) => (err ? reject(err) : resolve()));
    inCall.wallUs += (performance.now() - t0) * 1000;
    inCall.cpuUs += cpuUs() - c0;
    inCall.calls++;
  });
  const fs: SpoolFs = {
    ...nodeFs,
    open: (path, flags, mode) => {
      const fd = nodeFs.open(path, flags, mode);
      if (path.endsWith('/head')) headFd = fd;
      return fd;
    },
    fsync: (fd) => (arm === 'group, head not fsynced' && fd === headFd ? Promise.resolve() : profile ? timedFsync(fd) : nodeFs.fsync(fd)),
    ...(arm === 'group, data written sync' ? { write: (fd: number, data: Buffer, at: number) => Promise.resolve(nodeFs.writeSync(fd, data, at)) } : {}),
  };
  const spool = Spool.open({ dir, maxBytes: 1 << 30, fsync: arm === 'off' ? 'off' : 'group', logger: createLogger('micro', () => undefined), fs });
  const key = Buffer.from('kia:default:entry:0190b0c0-0000-7000-8000-000000000000');
  const value = Buffer.alloc(1215, 0x61);
  const burst = () => new Promise<void>((resolve, reject) => {
    let left = BURST;
    for (let i = 0; i < BURST; i++) spool.appendThen(key, value, Date.now(), () => --left || resolve(), reject);
  });
  for (let i = 0; i < 50; i++) await burst();
  let session: Session | undefined;
  if (profile) {
    session = new Session();
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: 250 });
    await session.post('Profiler.start');
  }
  Object.assign(inCall, { wallUs: 0, cpuUs: 0, calls: 0 });
  const flushes0 = spool.flushes;
  const c0 = cpuUs();
  for (let i = 0; i < ENTRIES / BURST; i++) await burst();
  const cpu = cpuUs() - c0;
  const out: Record<string, number> = { cpuUsPerEntry: cpu / ENTRIES, entriesPerFlush: ENTRIES / (spool.flushes - flushes0) };
  if (session) {
    const { profile: p } = await session.post('Profiler.stop');
    session.disconnect();
    const s = summarizeProfile(p as unknown as CpuProfile, { top: 50 });
    Object.assign(out, {
      threadCpuMs: cpu / 1000,
      profileBusyMs: s.busyMs,
      frameSelfMs: s.topSelf.find((f) => f.frame === 'fdatasync')?.ms ?? 0,
      inCallWallMs: inCall.wallUs / 1000,
      inCallCpuMs: inCall.cpuUs / 1000,
      calls: inCall.calls,
    });
  }
  await spool.close();
  rmSync(dir, { recursive: true, force: true });
  return out;
}

/** The save of trusted-state.ts before #44: a temp file through fs/promises' FileHandle, rename, fsync of the directory. */
async function fileHandleSave(file: string, dir: string, text: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.fh.tmp`;
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, file);
  const dh = await open(dir, 'r');
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}

async function saveRun(arm: SaveArm): Promise<Record<string, number>> {
  const dir = mkdtempSync(join(tmpdir(), 'kia-micro-save-'));
  const logs = join(dir, 'logs');
  mkdirSync(logs, { recursive: true });
  const file = join(logs, 'bench.json');
  const state = (i: number): TrustedState => ({ log: 'bench', database: 'bench', txId: 1000 + i, alh: Buffer.alloc(32, i), serverUuid: 'cu0b0q6ni0fpmnbbg9e0' });
  const text = (s: TrustedState) => JSON.stringify({ log: s.log, database: s.database, tx_id: s.txId, alh: s.alh.toString('hex'), server_uuid: s.serverUuid, updated_at: new Date().toISOString() }, null, 2) + '\n';
  let save: (s: TrustedState) => Promise<void>;
  if (arm === 'two slots in place (#44)') {
    const store = new TrustedStateStore(dir);
    save = (s) => store.save(s);
  } else {
    save = (s) => fileHandleSave(file, logs, text(s));
  }
  for (let i = 0; i < 20; i++) await save(state(i));
  const c0 = cpuUs();
  const t0 = performance.now();
  for (let i = 0; i < SAVES; i++) await save(state(i));
  const out = { cpuUsPerSave: (cpuUs() - c0) / SAVES, wallMsPerSave: (performance.now() - t0) / SAVES };
  rmSync(dir, { recursive: true, force: true });
  return out;
}

function inWorker(job: Job): Promise<Record<string, number>> {
  return new Promise((resolve, reject) => {
    const w = new Worker(fileURLToPath(import.meta.url), { workerData: job });
    w.once('message', resolve);
    w.once('error', reject);
  });
}

async function main() {
  const rounds = Number(process.argv[2] ?? 5);
  const fmt = (xs: number[], d = 1) => `${xs.map((x) => x.toFixed(d)).join(' ')}  (median ${median(xs).toFixed(d)})`;
  console.log('1. The fdatasync frame (real Spool, group commit, bursts of 32, profiled at 250 µs):');
  for (let r = 0; r < 2; r++) {
    const a = await inWorker({ kind: 'attribution' });
    console.log(`   thread CPU ${a.threadCpuMs!.toFixed(0)} ms, profile busy ${a.profileBusyMs!.toFixed(0)} ms; fdatasync frame self ${a.frameSelfMs!.toFixed(0)} ms; ` +
      `inside the ${a.calls} calls: ${a.inCallWallMs!.toFixed(0)} ms wall, ${a.inCallCpuMs!.toFixed(0)} ms CPU (${((a.inCallCpuMs! * 1000) / a.calls!).toFixed(0)} µs per call)`);
  }
  const spool = new Map<SpoolArm, Array<Record<string, number>>>(SPOOL_ARMS.map((a) => [a, []]));
  const saves = new Map<SaveArm, Array<Record<string, number>>>(SAVE_ARMS.map((a) => [a, []]));
  for (let r = 0; r < rounds; r++) {
    for (const arm of SPOOL_ARMS) spool.get(arm)!.push(await inWorker({ kind: 'spool', arm }));
    for (const arm of SAVE_ARMS) saves.get(arm)!.push(await inWorker({ kind: 'save', arm }));
  }
  console.log(`2. Spool, thread CPU µs per entry (${ENTRIES} entries in bursts of ${BURST}; ${rounds} rounds alternating):`);
  for (const [arm, xs] of spool) console.log(`   ${arm.padEnd(26)} ${fmt(xs.map((x) => x.cpuUsPerEntry!))}; entries per flush ${median(xs.map((x) => x.entriesPerFlush!)).toFixed(0)}`);
  console.log(`3. Trusted-state save, thread CPU µs per save (${SAVES} saves; ${rounds} rounds alternating):`);
  for (const [arm, xs] of saves) console.log(`   ${arm.padEnd(26)} ${fmt(xs.map((x) => x.cpuUsPerSave!), 0)}; wall ms per save ${median(xs.map((x) => x.wallMsPerSave!)).toFixed(2)}`);
}

if (isMainThread) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
} else {
  const job = workerData as Job;
  const run = job.kind === 'attribution' ? spoolRun('group', true) : job.kind === 'spool' ? spoolRun(job.arm, false) : saveRun(job.arm);
  run.then((r) => parentPort!.postMessage(r));
}
