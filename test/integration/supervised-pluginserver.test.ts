// Kong 3.9.x answers `GET /` on its Admin API with 500 while it manages a plugin server itself
// (docs/operations.md). docker-compose.supervised.yml runs the plugin server in its own container
// and Kong without a start command; checked here with the real Compose client (config) and the
// real plugin server started the way that container starts it. Also hybrid mode: the control
// plane learns the plugin's schema from the query command only, so that schema must be the one
// the data planes' plugin servers report.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dumpAllPlugins, KongRpcClient, projectRoot, startPluginServer } from '../helpers/kong-driver.js';
import { composeClient, describe, parseDockerfile, projectFile, run, stageEnv } from '../helpers/packaging.js';
import { pluginDir } from '../helpers/audit-stack.js';

const root = projectRoot();
const dockerfile = parseDockerfile(projectFile('kong', 'Dockerfile'));
const finalStage = dockerfile.stages[dockerfile.stages.length - 1]!;
const imageEnv = stageEnv(finalStage);

interface Service {
  entrypoint?: string[];
  command?: string[] | null;
  environment?: Record<string, string>;
  volumes?: Array<{ type: string; source?: string; target: string }>;
  ports?: Array<{ target: number; published: string; host_ip?: string }>;
  restart?: string;
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
}

const arg = (argv: string[], flag: string) => argv[argv.indexOf(flag) + 1];

async function supervisedConfig(): Promise<Record<string, Service>> {
  const client = await composeClient();
  const r = await run(client.argv[0]!, [...client.argv.slice(1), '--project-directory', root, '--env-file', '/dev/null', '-f', join(root, 'docker-compose.yml'), '-f', join(root, 'docker-compose.supervised.yml'), 'config', '--format', 'json'], {
    env: { ...client.env, IMMUDB_ADMIN_PASSWORD: '', IMMUDB_AUDIT_PSEUDONYM_KEY: '' },
    timeoutMs: 60_000,
  });
  if (r.code !== 0) throw new Error(describe(r));
  return (JSON.parse(r.stdout) as { services: Record<string, Service> }).services;
}

test('docker-compose.supervised.yml: Kong without a start command, the plugin server in its own supervised container', async (t) => {
  t.timeout(16 * 60_000, 'may build Docker Compose from its Go module on first use');
  const s = await supervisedConfig();
  const kong = s.kong!;
  const ps = s.pluginserver!;
  // Kong: the image's entrypoint and command, with KONG_PLUGINSERVER_JS_START_CMD removed first
  // (Kong then only connects to the socket; it still runs the query command for the schema).
  t.deepEqual(kong.entrypoint?.slice(0, 2), ['/bin/sh', '-c']);
  t.regex(kong.entrypoint![2]!, /^unset KONG_PLUGINSERVER_JS_START_CMD && exec \/docker-entrypoint\.sh "\$\$?@"$/);
  t.deepEqual(kong.command, ['kong', 'docker-start']);
  t.truthy(imageEnv.KONG_PLUGINSERVER_JS_QUERY_CMD, 'the query command stays');
  // The plugin server: the image's start command with the socket in the shared volume.
  const argv = ps.entrypoint!;
  const start = imageEnv.KONG_PLUGINSERVER_JS_START_CMD!.split(/\s+/);
  t.deepEqual(argv.slice(0, 2), start.slice(0, 2), 'the same node and plugin server');
  t.is(arg(argv, '--plugins-directory'), arg(start, '--plugins-directory'));
  t.false(argv.some((a) => /^-v+$|^--verbose$/.test(a)), 'never -v');
  const socketDir = arg(argv, '--kong-prefix')!;
  t.is(kong.environment?.KONG_PLUGINSERVER_JS_SOCKET, join(socketDir, arg(argv, '--sock-name')!), 'Kong and the plugin server agree on the socket');
  const mounts = (svc: Service) => (svc.volumes ?? []).filter((v) => v.type === 'volume').map((v) => `${v.source}:${v.target}`);
  t.true(mounts(kong).includes(`pluginserver-socket:${socketDir}`) && mounts(ps).includes(`pluginserver-socket:${socketDir}`), 'the socket directory is shared');
  t.true(finalStage.instructions.some((i) => i.cmd === 'RUN' && i.args.includes(`install -d -o kong`) && i.args.includes(socketDir)), 'the image creates the socket directory for the kong user');
  // The spool and trusted state, the metrics port and the plugin server's variables move with it.
  t.true(mounts(ps).includes(`audit-state:${imageEnv.IMMUDB_AUDIT_DATA_DIR}`));
  t.false(mounts(kong).some((m) => m.startsWith('audit-state:')), 'one plugin server per spool');
  t.deepEqual((ps.ports ?? []).map((p) => `${p.host_ip}:${p.published}:${p.target}`), ['127.0.0.1:9542:9542']);
  t.false((kong.ports ?? []).some((p) => p.target === 9542));
  for (const [k, v] of Object.entries(s.kong!.environment ?? {})) {
    if (/^(OTEL_|IMMUDB_AUDIT_METRICS)/.test(k)) t.is(ps.environment?.[k], v, `${k} reaches the plugin server`);
  }
  t.is(ps.restart, 'always', 'supervised: restarted when it exits');
  t.is(kong.depends_on?.pluginserver?.condition, 'service_healthy');
  t.deepEqual(ps.healthcheck?.test, ['CMD', 'test', '-S', kong.environment?.KONG_PLUGINSERVER_JS_SOCKET]);
});

test('the plugin server started as the supervised container starts it serves Kong; the schema Kong (and a hybrid control plane) reads from the query command is the one it serves', async (t) => {
  const supervised = readFileSync(join(root, 'docker-compose.supervised.yml'), 'utf8');
  const sockName = /--sock-name\n\s+- (\S+)/.exec(supervised)?.[1];
  t.is(sockName, 'js_pluginserver.sock');
  const prefix = mkdtempSync(join(tmpdir(), 'kia-supervised-'));
  const dataDir = mkdtempSync(join(tmpdir(), 'kia-supervised-data-'));
  t.teardown(() => {
    rmSync(prefix, { recursive: true, force: true });
    rmSync(dataDir, { recursive: true, force: true });
  });
  const server = await startPluginServer({ pluginsDir: pluginDir(), prefix, sockName: sockName!, env: { IMMUDB_AUDIT_DATA_DIR: dataDir } });
  t.teardown(() => server.dispose());
  const rpc = new KongRpcClient(join(prefix, sockName!));
  t.teardown(() => rpc.close());
  const served = await rpc.getPluginInfo('immudb-audit');
  const [queried] = await dumpAllPlugins(pluginDir());
  t.is(queried!.Name, 'immudb-audit');
  t.deepEqual(served.Schema, queried!.Schema, 'what --dump-all-plugins prints (the control plane) is what the server validates against (the data plane)');
  t.deepEqual([served.Name, served.Priority, served.Version], [queried!.Name, queried!.Priority, queried!.Version]);
});
