// CPU profiles of a plugin server under load, through bench/probe.ts (V8's sampling profiler
// started and stopped around the measured window only), summarised by bench/lib/cpuprofile.ts.
import { readFileSync } from 'node:fs';
import { probe } from './proc.js';
import { summarizeProfile, type CpuProfile, type ProfileSummary } from './cpuprofile.js';

/** Functions whose inclusive time is worth knowing on the hot path. */
export const KEY_FUNCTIONS = [
  'HandleEvent', 'Step', 'log', 'readSerialized', 'capture', 'buildAuditEntry', 'encodeEntry', 'canonicalize', 'submit',
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
