// The plugin server's environment is read in one module (plugin/settings.ts), each variable
// checked with a message that names it; nothing else in the plugin reads process.env.
import test from 'ava';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseSettings, readSettings, SettingsError } from '../../plugin/settings.js';
import { projectRoot } from '../helpers/kong-driver.js';

test('defaults when nothing is set; every variable parsed', (t) => {
  const d = readSettings({});
  t.is(d.spoolDirFrom, 'IMMUDB_AUDIT_DATA_DIR');
  t.is(d.spoolDir, join(d.dataDir, 'spool'));
  t.like(d, { nodeId: null, metricsPort: null, metricsHost: '127.0.0.1', shutdownTimeoutMs: 10_000, logLevel: 'info', auditThread: true, umask: 0o077 });
  const s = readSettings({
    IMMUDB_AUDIT_DATA_DIR: '/data', IMMUDB_AUDIT_SPOOL_DIR: '/spool', KONG_NODE_ID: 'kong-1', IMMUDB_AUDIT_METRICS_PORT: '9542',
    IMMUDB_AUDIT_METRICS_HOST: '0.0.0.0', IMMUDB_AUDIT_SHUTDOWN_TIMEOUT_MS: '2500', IMMUDB_AUDIT_LOG_LEVEL: 'WARN', IMMUDB_AUDIT_THREAD: 'off', IMMUDB_AUDIT_UMASK: '027',
  });
  t.like(s, { dataDir: '/data', spoolDir: '/spool', spoolDirFrom: 'IMMUDB_AUDIT_SPOOL_DIR', nodeId: 'kong-1', metricsPort: 9542, metricsHost: '0.0.0.0', shutdownTimeoutMs: 2500, logLevel: 'warn', auditThread: false, umask: 0o027 });
  t.is(readSettings({ IMMUDB_AUDIT_NODE_ID: 'audit-1', KONG_NODE_ID: 'kong-1' }).nodeId, 'audit-1');
  t.is(readSettings({ IMMUDB_AUDIT_UMASK: 'inherit' }).umask, 'inherit');
  t.is(readSettings({ IMMUDB_AUDIT_METRICS_PORT: '' }).metricsPort, null, 'empty is unset');
});

test('invalid values: one error naming every variable, its value and what is expected', (t) => {
  const env = { IMMUDB_AUDIT_METRICS_PORT: '95420', IMMUDB_AUDIT_SHUTDOWN_TIMEOUT_MS: '10s', IMMUDB_AUDIT_LOG_LEVEL: 'verbose', IMMUDB_AUDIT_THREAD: 'yes', IMMUDB_AUDIT_UMASK: 'rwx' };
  const e = t.throws(() => readSettings(env), { instanceOf: SettingsError });
  t.deepEqual(e?.problems, [
    'IMMUDB_AUDIT_METRICS_PORT must be a port number (1 to 65535), got "95420"',
    'IMMUDB_AUDIT_SHUTDOWN_TIMEOUT_MS must be a whole number of milliseconds (0 to 3600000), got "10s"',
    'IMMUDB_AUDIT_LOG_LEVEL must be one of debug, info, warn, error, got "verbose"',
    'IMMUDB_AUDIT_THREAD must be "on" or "off", got "yes"',
    'IMMUDB_AUDIT_UMASK must be an octal mask such as 077, or "inherit", got "rwx"',
  ]);
  // The lenient reading (log level and umask at module load) falls back to the defaults.
  t.like(parseSettings(env).settings, { metricsPort: null, shutdownTimeoutMs: 10_000, logLevel: 'info', auditThread: true, umask: 0o077 });
});

test('only plugin/settings.ts reads the environment of the plugin server', (t) => {
  const root = projectRoot();
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (p.endsWith('.ts')) files.push(relative(root, p));
    }
  };
  walk(join(root, 'plugin'));
  // The auditor's CLI (its flags' defaults) and the console are another program; env: references
  // of the configuration are resolved where they are used (capture/secret-refs.ts).
  const allowed = /^plugin\/(settings\.ts|cli\.ts|cli\/|console\/|evidence\/|verify\/|workbench\/|capture\/secret-refs\.ts)/;
  const readers = files.filter((f) => !allowed.test(f) && /process\.env\b/.test(readFileSync(join(root, f), 'utf8').replace(/\/\/.*$/gm, '')));
  t.deepEqual(readers, []);
});
