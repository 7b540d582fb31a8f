// Loaded into every AVA worker (package.json "ava.require"). A test file whose process outlives
// its work (a child process never stopped, a server never closed, a hook that never returns) is a
// defect, and it must fail, not hang: AVA waits for every worker to exit, and its own inactivity
// timeout does not always end that wait (AVA 8 drops the timeout for good when it fires inside a
// window that a `t.timeout()` opened), so one such worker once held CI until its 90-minute limit.
// Here the worker names what keeps it alive, kills the child processes it started and exits
// non-zero, which AVA reports as a "not ok" naming the file.
import { registerCompletionHandler } from 'ava';
import { readFileSync, readdirSync } from 'node:fs';

// KIA_TEST_EXIT_GRACE_MS and KIA_TEST_FILE_LIMIT_MS shorten the waits for the watchdog's own test.
/** How long a worker may stay alive after its last test and hook. */
const GRACE_MS = Number(process.env.KIA_TEST_EXIT_GRACE_MS) || 60_000;
/** How long one test file may run in all: above the longest t.timeout() (16 min) with room. */
const FILE_LIMIT_MS = Number(process.env.KIA_TEST_FILE_LIMIT_MS) || 20 * 60_000;

// KIA_TEST_TIMER_STACKS=1: where each timer still keeping the process alive was set, in the report.
const timerStacks = new Map<NodeJS.Timeout, string>();
if (process.env.KIA_TEST_TIMER_STACKS) {
  for (const name of ['setTimeout', 'setInterval'] as const) {
    const original = globalThis[name] as (...args: unknown[]) => NodeJS.Timeout;
    (globalThis as Record<string, unknown>)[name] = (...args: unknown[]) => {
      const timer = original(...args);
      timerStacks.set(timer, new Error().stack!.split('\n').slice(2, 9).join('\n'));
      return timer;
    };
  }
}

function liveTimers(): string {
  const live = [...timerStacks].filter(([t]) => t.hasRef() && !(t as unknown as { _destroyed: boolean })._destroyed);
  return live.length ? `  timers set at:\n${live.map(([, stack]) => stack).join('\n    --\n')}\n` : '';
}

setTimeout(() => end(`this test file has run for ${FILE_LIMIT_MS / 60_000} minutes without finishing`), FILE_LIMIT_MS).unref();

registerCompletionHandler(() => {
  setTimeout(() => end(`this test file's process is still alive ${GRACE_MS / 1000} s after its last test`), GRACE_MS).unref();
});

function end(why: string): never {
  const children = childProcesses();
  process.stderr.write(
    `exit-watchdog: ${why}.\n` +
      `  open resources: ${process.getActiveResourcesInfo().join(', ') || 'none'}\n` +
      (children.length > 0 ? `  child processes (killed now):\n${children.map((c) => `    ${c.pid} ${c.command}`).join('\n')}\n` : '') +
      liveTimers(),
  );
  for (const c of children) {
    try {
      process.kill(c.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  process.exit(1);
}

function childProcesses(): { pid: number; command: string }[] {
  return childPids().map((pid) => {
    let command = '?';
    try {
      command = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim().slice(0, 200);
    } catch {
      // exited meanwhile
    }
    return { pid, command };
  });
}

/** From /proc/self/task/<tid>/children, or (a kernel without them) every /proc/<pid>/stat's parent. */
function childPids(): number[] {
  try {
    const pids: number[] = [];
    for (const task of readdirSync('/proc/self/task')) {
      const text = readFileSync(`/proc/self/task/${task}/children`, 'utf8').trim();
      if (text !== '') pids.push(...text.split(/\s+/).map(Number));
    }
    return pids;
  } catch {
    // no children files: scan below
  }
  const pids: number[] = [];
  try {
    for (const name of readdirSync('/proc')) {
      if (!/^\d+$/.test(name)) continue;
      try {
        // Field 4, after the command in parentheses (which may itself hold spaces and parentheses).
        const ppid = Number(readFileSync(`/proc/${name}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ')[1]);
        if (ppid === process.pid) pids.push(Number(name));
      } catch {
        // exited meanwhile
      }
    }
  } catch {
    // no /proc: nothing to name or kill
  }
  return pids;
}
