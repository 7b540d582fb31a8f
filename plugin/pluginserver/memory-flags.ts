// Memory settings of the plugin server (decision #43). By default V8 sizes each isolate's young
// generation from the machine's memory (semi-spaces of up to 64 MiB here): under the plugin's
// steady allocation each of the two isolates (Kong's RPC thread and the audit thread) grew its
// new space to ~104 MiB, most of the process's RSS, for live heaps of 20-40 MB each. The flag
// below bounds both isolates (V8 flags are per process: they also override a Worker's
// resourceLimits); glibc's malloc is bounded for the same reason.
//
// The main isolate's heap is configured when the process starts, so the flags must be on the
// command line or in NODE_OPTIONS: the command execs itself once with them (same pid, so Kong's
// signals and supervision see no difference). Anything the operator set wins: their
// NODE_OPTIONS come after ours (the last V8 flag wins, command-line flags win over both), and
// an environment variable they set is kept.

import { environmentForExec } from '../settings.js';

/**
 * V8 flags for both isolates (docs/operations.md, "Memory of the plugin server"): semi-spaces of
 * 16 MiB. Smaller ones and a capped old generation hold less still but cost CPU (decision #43).
 */
export const MEMORY_NODE_OPTIONS = ['--max-semi-space-size=16'];
/**
 * glibc malloc, unless set already: two arenas, not one per thread that ever malloced; and
 * blocks of 128 KiB or more (spool reads, gRPC frames) always mmapped, so that freeing them gives
 * the memory back (glibc otherwise raises that threshold as such blocks are freed, and later ones
 * fragment the heap, which only shrinks from its top).
 */
export const MEMORY_ENV: Record<string, string> = { MALLOC_ARENA_MAX: '2', MALLOC_MMAP_THRESHOLD_: '131072' };

type Execve = (file: string, args: string[], env: NodeJS.ProcessEnv) => never;

/** The environment to exec with, or undefined when this process already runs with it. */
export function memoryEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv | undefined {
  // Set in the exec'd process (never exec twice), or by an operator who wants V8's and glibc's defaults.
  if (env.IMMUDB_AUDIT_PLUGINSERVER_TUNED) return undefined;
  const out: NodeJS.ProcessEnv = { ...env, IMMUDB_AUDIT_PLUGINSERVER_TUNED: '1' };
  for (const [k, v] of Object.entries(MEMORY_ENV)) out[k] ??= v;
  out.NODE_OPTIONS = [...MEMORY_NODE_OPTIONS, env.NODE_OPTIONS ?? ''].join(' ').trim();
  return out;
}

/**
 * Replaces this process by itself with the memory flags (at most once). Without
 * `process.execve` (Node < 22.15), or if the exec fails, it runs on with V8's defaults.
 */
export function execWithMemoryFlags(): void {
  const env = memoryEnv(environmentForExec());
  const execve = (process as unknown as { execve?: Execve }).execve;
  if (!env || !execve || !process.argv[1]) return;
  try {
    execve(process.execPath, [process.execPath, ...process.execArgv, process.argv[1], ...process.argv.slice(2)], env);
  } catch (e) {
    // Memory settings are not worth failing the audit for (stderr: stdout may be Kong's query answer).
    process.stderr.write(`immudb-audit-pluginserver: could not exec with its memory settings (${(e as Error).message}); running with V8's defaults\n`);
  }
}
