// Every file under a directory with its content, to prove that nothing in it changed.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

export function dirSnapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out[p] = readFileSync(p, 'utf8');
    }
  };
  walk(dir);
  return out;
}
