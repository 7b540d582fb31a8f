// Spools written before 0.2 lived in <root>/<host>_<port>_<database>_<user>; a destination is now
// (host, port, database) (docs/decisions.md #22), so its spool is <root>/<host>_<port>_<database>.
// On first use the old directory of the configuration's user is renamed to the new name, so that
// entries a previous version left there are replayed, not orphaned. Synchronous and bounded: the
// root passed its path check before this runs.
import { existsSync, readdirSync, renameSync, rmdirSync } from 'node:fs';
import type { Logger } from '../log.js';

export function adoptLegacySpool(newDir: string, legacyDir: string, logger: Logger): void {
  if (newDir === legacyDir || !existsSync(legacyDir)) return;
  // The path check creates the new directory before the spool opens: an empty one is replaced.
  if (existsSync(newDir) && readdirSync(newDir).length === 0) rmdirSync(newDir);
  if (existsSync(newDir)) {
    logger.once('warn', `legacy-spool-${legacyDir}`, `a spool of an earlier version remains in ${legacyDir} next to ${newDir}; stop the plugin server and move its segment files into ${newDir} to have them written`);
    return;
  }
  renameSync(legacyDir, newDir);
  logger.info(`spool ${legacyDir} of an earlier version renamed to ${newDir}: its entries are written first`);
}
