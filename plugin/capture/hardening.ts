// Process hardening that must happen when the plugin module is loaded.
//
// kong-js-pluginserver loads every plugin (require) before it creates its Unix socket
// (Listener.serve -> net.Server.listen), and Node creates that socket with mode 0777 minus the
// process umask. Kong's worker 0 starts the server with nginx's umask (often 022: a socket anyone
// on the host may connect to, and so start instances, feed events or read back configurations).
// Tightening the umask here, at load time, gives the socket (and every file this process creates:
// trusted state, spool) no group/other permissions. Kong's workers run as the same user as the
// server they spawned, so they still connect.
//
// IMMUDB_AUDIT_UMASK (octal) sets another mask, "inherit" keeps the one inherited (e.g. when
// Kong runs as another user than a separately managed plugin server).
import { DEFAULT_UMASK, processSettingsLenient } from '../settings.js';

export interface UmaskResult {
  /** The umask in force after the call. */
  umask: number;
  /** The umask before. */
  previous: number;
  changed: boolean;
}


/** Applies the umask policy (IMMUDB_AUDIT_UMASK, plugin/settings.ts); returns what it did. Never throws. */
export function tightenUmask(setting: number | 'inherit' = processSettingsLenient().umask): UmaskResult {
  try {
    // process.umask(mask) sets and returns the previous mask (the no-argument form is deprecated).
    const previous = process.umask(DEFAULT_UMASK);
    if (setting === 'inherit') {
      process.umask(previous);
      return { umask: previous, previous, changed: false };
    }
    const wanted = setting;
    // Only ever tighten: bits already masked stay masked.
    const mask = previous | wanted;
    process.umask(mask);
    return { umask: mask, previous, changed: mask !== previous };
  } catch {
    // Worker threads cannot change the umask; the main thread's applies.
    return { umask: -1, previous: -1, changed: false };
  }
}

/** What the module load did (for status and tests). */
export const umaskAtLoad: UmaskResult = tightenUmask();
