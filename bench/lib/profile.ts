// CPU profiles of a plugin server under load, through bench/probe.ts (V8's sampling profiler
// started and stopped around the measured window only), summarised by bench/lib/cpuprofile.ts.
import { existsSync, readFileSync } from 'node:fs';
import { probe } from './proc.js';
import { summarizeProfile, type CpuProfile, type ProfileSummary } from './cpuprofile.js';

/** Functions whose inclusive time is worth knowing on the hot path. */
export const KEY_FUNCTIONS = [
  'HandleEvent', 'Step', 'log', 'record', 'readSerialized', 'capture', 'buildAuditEntry', 'encodeEntry', 'canonicalize', 'submit',
  'writeNow', 'writeVerified', 'verifiableSet', 'verifyVerifiableSet', 'verifyTxEntries', 'verifyVerifiableTx', 'verifyDualProof',
  'save', 'advance', 'sha256',
];

export async function profileWhile<T>(probeSock: string, path: string, fn: () => Promise<T>, intervalUs = 250): Promise<{ result: T; summary: ProfileSummary; path: string }> {
  await probe(probeSock, { cmd: 'profile-start', intervalUs });
  let result: T;
  try {
    result = await fn();
  } finally {
    await probe(probeSock, { cmd: 'profile-stop', path }, 60_000);
  }
  const summary = summarizeProfile(JSON.parse(readFileSync(path, 'utf8')) as CpuProfile, { top: 20, inclusive: KEY_FUNCTIONS });
  return { result, summary, path };
}

/**
 * Profiles the main thread (which answers Kong) and, when there is one, the plugin's audit
 * thread (bench/probe.ts answers for it on <sock>.thread), over the same window.
 */
export async function profileThreadsWhile<T>(probeSock: string, pathBase: string, fn: () => Promise<T>, intervalUs = 250): Promise<{ result: T; main: ProfileSummary; thread?: ProfileSummary }> {
  const threadSock = `${probeSock}.thread`;
  const hasThread = existsSync(threadSock);
  if (!hasThread) {
    const r = await profileWhile(probeSock, `${pathBase}.cpuprofile`, fn, intervalUs);
    return { result: r.result, main: r.summary };
  }
  const threadPath = `${pathBase}-audit-thread.cpuprofile`;
  await probe(threadSock, { cmd: 'profile-start', intervalUs });
  let r: Awaited<ReturnType<typeof profileWhile<T>>>;
  try {
    r = await profileWhile(probeSock, `${pathBase}-main.cpuprofile`, fn, intervalUs);
  } finally {
    await probe(threadSock, { cmd: 'profile-stop', path: threadPath }, 60_000);
  }
  const thread = summarizeProfile(JSON.parse(readFileSync(threadPath, 'utf8')) as CpuProfile, { top: 20, inclusive: KEY_FUNCTIONS });
  return { result: r.result, main: r.summary, thread };
}
