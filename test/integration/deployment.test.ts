// The deployment path without a Docker engine: kong/Dockerfile, docker-compose.yml, kong/kong.yml,
// .dockerignore and the README's Docker quick start checked against each other; `docker compose
// config` (the real client) on the compose file; --dump-all-plugins as Kong's query command reads
// it; the npm package installed into a clean directory; the image's plugin server commands run
// the way Kong runs them (sh -c "exec ...", the environment nginx leaves to its workers); and the
// kong.yml configurations started in the real plugin server exactly as Kong sends them.
import test from 'ava';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import {
  KongRpcClient,
  dumpAllPlugins,
  kongPluginConfig,
  projectRoot,
  startPluginServer,
  stripAnsi,
  type PluginInfo,
} from '../helpers/kong-driver.js';
import {
  composeClient,
  describe,
  dockerignoreIncludes,
  expandArgs,
  installTarball,
  packProject,
  parseDockerfile,
  projectFile,
  run,
  spawnLikeKong,
  stageEnv,
  type RunResult,
} from '../helpers/packaging.js';
import { freePort } from '../../scripts/lib/immudb-server.js';
import type { KongFieldList } from '../../plugin/config/kong-schema.js';

const PLUGIN = 'immudb-audit';
const root = projectRoot();

const dockerfile = parseDockerfile(projectFile('kong', 'Dockerfile'));
const finalStage = dockerfile.stages[dockerfile.stages.length - 1]!;
const buildStages = dockerfile.stages.slice(0, -1);
const imageEnv = stageEnv(finalStage);
const finalRuns = finalStage.instructions.filter((i) => i.cmd === 'RUN').map((i) => i.args);

interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile: string };
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
  entrypoint?: string[];
  profiles?: string[];
  command?: string[];
}
const compose = YAML.parse(projectFile('docker-compose.yml'), { merge: true }) as { services: Record<string, ComposeService>; volumes?: Record<string, unknown> };
const services = compose.services;

interface PluginEntry {
  name: string;
  config?: Record<string, unknown>;
}
interface KongYml {
  consumers?: Array<{ username?: string; keyauth_credentials?: Array<{ key: string }> }>;
  plugins?: PluginEntry[];
  services?: Array<{ name: string; url: string; routes?: Array<{ name: string; paths?: string[]; plugins?: PluginEntry[] }> }>;
}
const kongYml = YAML.parse(projectFile('kong', 'kong.yml')) as KongYml;
const routes = (kongYml.services ?? []).flatMap((s) => (s.routes ?? []).map((r) => ({ service: s, route: r })));
const auditConfigs = routes.flatMap(({ service, route }) => (route.plugins ?? []).filter((p) => p.name === PLUGIN).map((p) => ({ service, route, config: p.config ?? {} })));

/** `${NAME:-default}` / `${NAME}` as Compose interpolates them with an empty environment. */
const interpolate = (v: string) => v.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}/g, (_, _n: string, d: string | undefined) => d ?? '');
const kongEnv = Object.fromEntries(Object.entries(services.kong?.environment ?? {}).map(([k, v]) => [k, interpolate(String(v))]));

/** Names Kong lets through nginx to the plugin server: TZ plus KONG_NGINX_MAIN_ENV's `env` list. */
function declaredEnv(): string[] {
  const v = imageEnv.KONG_NGINX_MAIN_ENV ?? '';
  return v.split(/;\s*env\s+/).map((s) => s.trim()).filter(Boolean);
}

/** Kong's env vault: {vault://env/immudb-audit-password} -> IMMUDB_AUDIT_PASSWORD. */
const vaultEnvName = (ref: string) => /^\{vault:\/\/env\/([^/}]+)\}$/.exec(ref)?.[1]!.toUpperCase().replace(/-/g, '_');

function vaultRefs(v: unknown, out: string[] = []): string[] {
  if (typeof v === 'string' && v.startsWith('{vault://')) out.push(v);
  else if (Array.isArray(v)) v.forEach((e) => vaultRefs(e, out));
  else if (v && typeof v === 'object') Object.values(v).forEach((e) => vaultRefs(e, out));
  return out;
}

/** Variables the plugin server's code reads (the CLI excluded: it never runs inside Kong). */
const AUDITOR_ONLY = new Set([join(root, 'plugin', 'cli.ts'), join(root, 'plugin', 'workbench'), join(root, 'plugin', 'console')]);

function pluginServerEnvReads(): string[] {
  const names = new Set<string>();
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      // The auditor's tools (CLI, workbench, console) do not run in the plugin server.
      if (e.isDirectory()) {
        if (!AUDITOR_ONLY.has(p)) walk(p);
      } else if (e.name.endsWith('.ts') && !AUDITOR_ONLY.has(p)) {
        const text = readFileSync(p, 'utf8');
        // env.X, env['X'], and the readers of plugin/settings.ts and OpenTelemetry's (value('X'), getNumberFromEnv('X'), ...)
        for (const m of text.matchAll(/\benv\s*(?:\.\s*([A-Z][A-Z0-9_]+)|\[\s*['"]([A-Z][A-Z0-9_]+)['"]\s*\])|\b(?:\w*FromEnv|value|get)\(\s*'([A-Z][A-Z0-9_]+)'/g)) names.add((m[1] ?? m[2] ?? m[3])!);
      }
    }
  };
  walk(join(root, 'plugin'));
  walk(join(root, 'kong-plugins'));
  return [...names].sort();
}

/** The config Kong sends in StartInstance for a kong.yml plugin entry (plugins_iterator.lua): */
function configAsKongSends(fields: KongFieldList, config: Record<string, unknown>, env: Record<string, string>, meta: { routeId: string; serviceId: string; pluginId: string }) {
  const isRef = (v: unknown): v is string => typeof v === 'string' && v.startsWith('{vault://') && v.endsWith('}');
  // kong/db/schema/init.lua process_auto_fields("select"): defaults for what is missing, nested
  // records processed even when absent, references resolved in referenceable fields (an
  // unresolvable one becomes ""), and the references kept per record in "$refs".
  const processRecord = (fl: KongFieldList, v: Record<string, unknown> | undefined): Record<string, unknown> => {
    const out: Record<string, unknown> = {};
    const refs: Record<string, string> = {};
    for (const entry of fl) {
      for (const [name, f] of Object.entries(entry)) {
        const val = v?.[name];
        if (f.type === 'record') out[name] = processRecord(f.fields, (val ?? undefined) as Record<string, unknown> | undefined);
        else if (val === undefined || val === null) {
          const d = 'default' in f ? f.default : undefined;
          if (d !== undefined && d !== null) out[name] = structuredClone(d);
        } else if (f.type === 'string' && f.referenceable && isRef(val)) {
          refs[name] = val;
          out[name] = env[vaultEnvName(val) ?? ''] ?? '';
        } else out[name] = val;
      }
    }
    if (Object.keys(refs).length) out.$refs = refs;
    return out;
  };
  return kongPluginConfig(PLUGIN, processRecord(fields, config), meta);
}

function withoutRefs(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(withoutRefs);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).filter(([k]) => k !== '$refs').map(([k, e]) => [k, withoutRefs(e)]));
  return v;
}

const PHASES = new Set(['certificate', 'rewrite', 'access', 'response', 'header_filter', 'body_filter', 'log', 'preread', 'ws_handshake', 'ws_client_frame', 'ws_upstream_frame', 'ws_close']);

let repoInfo: PluginInfo | undefined;
async function pluginInfoOverRpc(): Promise<PluginInfo> {
  if (repoInfo) return repoInfo;
  const dataDir = mkdtempSync(join(tmpdir(), 'kia-deploy-info-'));
  const server = await startPluginServer({ pluginsDir: join(root, 'dist', 'kong-plugins'), env: { IMMUDB_AUDIT_DATA_DIR: dataDir, OTEL_SDK_DISABLED: 'true' } });
  const rpc = new KongRpcClient(server.socketPath);
  try {
    repoInfo = await rpc.getPluginInfo(PLUGIN);
    return repoInfo;
  } finally {
    rpc.close();
    await server.dispose();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// kong/Dockerfile
// ---------------------------------------------------------------------------------------------

test('kong/Dockerfile: the official kong:3.9.3, the Node the tests run on, built in a separate stage', (t) => {
  t.is(dockerfile.globalArgs.KONG_IMAGE, 'kong:3.9.3');
  t.is(expandArgs(finalStage.from, dockerfile.globalArgs), 'kong:3.9.3', 'the final stage is the official open-source image');
  const tested = /version="\$\{NODE_VERSION:-([0-9.]+)\}"/.exec(projectFile('scripts', 'node24.sh'))?.[1];
  t.is(dockerfile.globalArgs.NODE_VERSION, tested, 'the image adds the Node version the tests run on (scripts/node24.sh)');
  const [major, minor] = (dockerfile.globalArgs.NODE_VERSION ?? '').split('.').map(Number) as [number, number];
  t.true(major === 24 || (major === 22 && minor >= 13), 'a Node version package.json "engines" supports');
  t.true(buildStages.length >= 1 && buildStages.some((s) => expandArgs(s.from, dockerfile.globalArgs).startsWith(`node:${tested}-`)), 'a build stage on the same Node');
  // nothing is built or installed in the final image
  for (const r of finalRuns) t.notRegex(r, /\b(apt-get|apt|apk|npm|npx|yarn|pnpm|tsc|gcc|make)\b\s/, `final stage runs a build tool: ${r}`);
  const copies = finalStage.instructions.filter((i) => i.cmd === 'COPY' || i.cmd === 'ADD');
  for (const c of copies) {
    t.regex(c.args, /^--from=/, `final stage copies only from the build stage: ${c.args}`);
    t.notRegex(c.args, /node_modules\/npm|bin\/npm|bin\/npx|corepack/, 'no npm in the final image');
  }
  t.true(copies.some((c) => /\/usr\/local\/bin\/node\s+\/usr\/local\/bin\/node$/.test(c.args)), 'the node binary');
  const users = finalStage.instructions.filter((i) => i.cmd === 'USER');
  t.is(users[users.length - 1]?.args, 'kong', 'runs as kong, like the official image');
  const volumes = finalStage.instructions.filter((i) => i.cmd === 'VOLUME').map((i) => i.args).join(' ');
  t.true(volumes.includes(imageEnv.IMMUDB_AUDIT_DATA_DIR!), 'the spool and trusted state are a volume');
  t.true(finalRuns.some((r) => r.includes(imageEnv.IMMUDB_AUDIT_DATA_DIR!) && r.includes(imageEnv.IMMUDB_AUDIT_AUDITOR_STATE_DIR!) && /install -d -o kong/.test(r)), 'state directories owned by kong');
  t.true(finalRuns.some((r) => r.includes('--dump-all-plugins')), 'the build fails if the plugin server cannot list the plugin');
});

test('kong/Dockerfile: the plugin server is configured the way Kong documents it', (t) => {
  t.deepEqual(imageEnv.KONG_PLUGINS?.split(',').map((s) => s.trim()), ['bundled', PLUGIN]);
  t.is(imageEnv.KONG_PLUGINSERVER_NAMES, 'js');
  const start = imageEnv.KONG_PLUGINSERVER_JS_START_CMD ?? '';
  const query = imageEnv.KONG_PLUGINSERVER_JS_QUERY_CMD ?? '';
  const arg = (cmd: string, name: string) => new RegExp(`(?:^|\\s)${name}\\s+(\\S+)`).exec(cmd)?.[1];
  t.regex(start, /^\/\S+\/node\s+\/\S+\/immudb-audit-pluginserver\s/, 'START_CMD runs node by absolute path (nginx workers have no PATH)');
  t.regex(query, /^\/\S+\/node\s+\/\S+\/immudb-audit-pluginserver\s/, 'QUERY_CMD too');
  for (const cmd of [start, query]) {
    t.notRegex(cmd, /(^|\s)(-v+|--verbose)(\s|$)/, 'no -v: at debug level kong-pdk logs every RPC argument, API keys and cookies included');
    t.regex(arg(cmd, '--plugins-directory') ?? '', /^\/usr\/local\/lib\/node_modules\/kong-immudb-audit\/dist\/kong-plugins$/, 'absolute plugins directory (kong-pdk 0.6.0 cannot load from a relative one)');
  }
  t.regex(query, /\s--dump-all-plugins$/);
  t.notRegex(start, /--dump/);
  t.is(join(arg(start, '--kong-prefix') ?? '/usr/local/kong', arg(start, '--sock-name') ?? 'js_pluginserver.sock'), imageEnv.KONG_PLUGINSERVER_JS_SOCKET ?? '', 'Kong and the server agree on the socket');
  t.true(imageEnv.KONG_PLUGINSERVER_JS_SOCKET?.startsWith('/usr/local/kong/'), 'the socket is in the Kong prefix');
});

test('every variable the plugin server reads gets through nginx to it (KONG_NGINX_MAIN_ENV), and is documented', (t) => {
  const declared = new Set(declaredEnv());
  const reads = pluginServerEnvReads();
  t.true(reads.length > 5, `scanned: ${reads.join(', ')}`);
  const missing = reads.filter((n) => !declared.has(n));
  t.deepEqual(missing, [], `kong/Dockerfile KONG_NGINX_MAIN_ENV does not declare ${missing.join(', ')}: nginx would strip them from the plugin server's environment`);
  for (const n of ['PATH', 'OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', 'OTEL_EXPORTER_OTLP_HEADERS']) t.true(declared.has(n), `${n} declared`);
  // what docker-compose.yml gives the Kong container is either for Kong's env vault or declared
  const vaultVars = new Set(vaultRefs(kongYml).map((r) => vaultEnvName(r)));
  for (const name of Object.keys(services.kong?.environment ?? {})) {
    if (name.startsWith('KONG_')) continue;
    t.true(vaultVars.has(name) || declared.has(name), `docker-compose.yml kong.environment.${name} reaches neither Kong's env vault nor the plugin server`);
  }
  const ops = projectFile('docs', 'operations.md');
  for (const n of reads) t.true(ops.includes(`\`${n}\``), `docs/operations.md documents ${n}`);
});

test('.dockerignore: the build context holds what kong/Dockerfile copies, and not node_modules, dist or .git', (t) => {
  const ignore = projectFile('.dockerignore');
  for (const stage of buildStages) {
    for (const ins of stage.instructions.filter((i) => i.cmd === 'COPY' && !/^--from=/.test(i.args))) {
      const parts = ins.args.split(/\s+/).filter((p) => !p.startsWith('--'));
      for (const src of parts.slice(0, -1)) {
        t.true(existsSync(join(root, src)), `COPY source ${src} exists`);
        t.true(dockerignoreIncludes(ignore, src), `COPY source ${src} is not excluded by .dockerignore`);
        if (existsSync(join(root, src)) && statSync(join(root, src)).isDirectory()) {
          for (const f of readdirSync(join(root, src), { recursive: true }) as string[]) t.true(dockerignoreIncludes(ignore, `${src}/${f}`), `${src}/${f} reaches the build`);
        }
      }
    }
  }
  for (const p of ['node_modules', 'node_modules/kong-pdk/package.json', 'dist', 'dist/plugin/cli.js', '.git', '.tmp', 'kong-immudb-audit-0.1.0.tgz']) t.false(dockerignoreIncludes(ignore, p), `${p} stays out of the build context`);
});

// ---------------------------------------------------------------------------------------------
// docker-compose.yml
// ---------------------------------------------------------------------------------------------

test('docker-compose.yml: Kong from kong/Dockerfile, immudb with a volume, Jaeger, an echo upstream; health checks and start order', (t) => {
  for (const s of ['kong', 'immudb', 'jaeger', 'echo', 'auditor']) t.truthy(services[s], `service ${s}`);
  const kong = services.kong!;
  t.deepEqual(kong.build, { context: '.', dockerfile: 'kong/Dockerfile' });
  for (const [name, s] of Object.entries(services)) {
    if (s.image) t.regex(s.image, /^[a-z0-9./_-]+:[A-Za-z0-9._-]+$/, `${name}: a pinned image tag`);
    if (s.image) t.notRegex(s.image, /:latest$/, `${name}: not :latest`);
    for (const p of s.ports ?? []) t.regex(p, /^127\.0\.0\.1:/, `${name}: ports published on loopback only (${p})`);
  }
  const immudbVersion = /version="\$\{IMMUDB_VERSION:-v([0-9.]+)\}"/.exec(projectFile('scripts', 'install-immudb.sh'))?.[1];
  t.is(services.immudb!.image, `codenotary/immudb:${immudbVersion}`, 'the immudb version the tests run against');
  t.true((services.immudb!.volumes ?? []).some((v) => /^immudb-data:\/var\/lib\/immudb$/.test(v)), 'immudb data on a named volume');
  t.truthy(compose.volumes && 'immudb-data' in compose.volumes);
  for (const s of ['kong', 'immudb', 'jaeger', 'echo']) t.true(Array.isArray(services[s]!.healthcheck?.test), `${s} has a health check`);
  t.is(kong.depends_on?.immudb?.condition, 'service_healthy');
  t.is(kong.depends_on?.echo?.condition, 'service_healthy');
  t.truthy(kong.depends_on?.jaeger, 'Kong starts after Jaeger');
  t.is(kongEnv.KONG_DATABASE, 'off');
  t.true((kong.volumes ?? []).includes(`./kong/kong.yml:${kongEnv.KONG_DECLARATIVE_CONFIG}:ro`), 'kong/kong.yml mounted where KONG_DECLARATIVE_CONFIG points');
  t.true((kong.volumes ?? []).includes(`audit-state:${imageEnv.IMMUDB_AUDIT_DATA_DIR}`), 'the spool volume at IMMUDB_AUDIT_DATA_DIR');
  for (const key of ['KONG_PLUGINS', 'KONG_PLUGINSERVER_NAMES', 'KONG_PLUGINSERVER_JS_START_CMD', 'KONG_PLUGINSERVER_JS_QUERY_CMD', 'KONG_NGINX_MAIN_ENV']) t.false(key in kongEnv, `${key} comes from the image, not overridden`);
  // kong.yml's references and hosts resolve in this network
  for (const ref of vaultRefs(kongYml)) t.truthy(kongEnv[vaultEnvName(ref)!], `${ref} needs ${vaultEnvName(ref)} in the kong service`);
  t.true(kongEnv.IMMUDB_AUDIT_PSEUDONYM_KEY!.length >= 32, 'the demo pseudonym key is long enough');
  for (const { config, route } of auditConfigs) {
    t.truthy(services[String(config.immudb_host)], `route ${route.name}: immudb_host is a service`);
    t.is(config.immudb_port ?? 3322, 3322);
  }
  for (const s of kongYml.services ?? []) {
    const u = new URL(s.url);
    t.truthy(services[u.hostname], `service ${s.name} upstream ${u.hostname} is a compose service`);
    if (u.hostname === 'echo') t.is(services.echo!.environment?.PORT, u.port, 'the echo server listens where kong.yml sends');
  }
  const otel = (kongYml.plugins ?? []).find((p) => p.name === 'opentelemetry');
  if (otel) {
    t.truthy(services[new URL(String(otel.config?.traces_endpoint)).hostname], 'Kong\'s spans go to a compose service');
    t.truthy(kongEnv.KONG_TRACING_INSTRUMENTATIONS && kongEnv.KONG_TRACING_SAMPLING_RATE, 'Kong tracing switched on for the opentelemetry plugin');
  }
  t.is(new URL(kongEnv.OTEL_EXPORTER_OTLP_ENDPOINT!).hostname, 'jaeger', 'audit spans go to Jaeger');
  // the auditor: same image, the CLI, its own state, the database and prefix the plugin writes
  const auditor = services.auditor!;
  t.is(auditor.image, kong.image);
  t.deepEqual(auditor.entrypoint, ['immudb-audit']);
  t.deepEqual(auditor.profiles, ['tools'], 'not started by `up`');
  const aenv = Object.fromEntries(Object.entries(auditor.environment ?? {}).map(([k, v]) => [k, interpolate(String(v))]));
  t.is(aenv.IMMUDB_DATABASE, String(auditConfigs[0]!.config.immudb_database));
  t.is(aenv.IMMUDB_AUDIT_KEY_PREFIX, String(auditConfigs[0]!.config.key_prefix));
  t.is(aenv.IMMUDB_ADDRESS, `${auditConfigs[0]!.config.immudb_host}:${auditConfigs[0]!.config.immudb_port}`);
  t.is(aenv.IMMUDB_PASSWORD, kongEnv[vaultEnvName(String(auditConfigs[0]!.config.immudb_password))!], 'the auditor logs in with the password the plugin uses');
  t.is(aenv.IMMUDB_AUDIT_AUDITOR_STATE_DIR, imageEnv.IMMUDB_AUDIT_AUDITOR_STATE_DIR);
  t.true((auditor.volumes ?? []).some((v) => v.endsWith(`:${imageEnv.IMMUDB_AUDIT_AUDITOR_STATE_DIR}`)), 'the auditor keeps its trusted state on a volume');
});

test('docker-compose.yml: immudb signs its states, and the plugin and the auditor check them with its key', (t) => {
  const mounted = (s: ComposeService, target: string) => (s.volumes ?? []).find((v) => v.split(':')[1] === target)?.split(':')[0];
  for (const name of ['immudb', 'immudb-replica']) {
    const s = services[name]!;
    const i = (s.command ?? []).indexOf('--signingKey');
    t.true(i >= 0, `${name} runs with --signingKey`);
    const file = mounted(s, s.command![i + 1]!);
    t.truthy(file, `${name}: the signing key is mounted`);
    const pub = createPublicKey(createPrivateKey(readFileSync(join(root, file!)))).export({ type: 'spki', format: 'pem' }).toString();
    for (const { route, config } of auditConfigs) t.is(String(config.server_public_key).trim(), pub.trim(), `route ${route.name}: server_public_key is the signing key's`);
    const auditor = services.auditor!;
    const pubFile = mounted(auditor, String(auditor.environment?.IMMUDB_AUDIT_SERVER_PUBLIC_KEY));
    t.truthy(pubFile, 'the auditor has the public key at IMMUDB_AUDIT_SERVER_PUBLIC_KEY');
    t.is(readFileSync(join(root, pubFile!), 'utf8').trim(), pub.trim());
  }
});

test('docker compose config accepts docker-compose.yml (the real Compose client)', async (t) => {
  t.timeout(16 * 60_000, 'may build Docker Compose from its Go module on first use');
  const client = await composeClient();
  t.log(client.how);
  try {
    const r: RunResult = await run(client.argv[0]!, [...client.argv.slice(1), '--project-directory', root, '--env-file', '/dev/null', '-f', join(root, 'docker-compose.yml'), '--profile', 'tools', 'config', '--format', 'json'], {
      env: { ...client.env, IMMUDB_ADMIN_PASSWORD: '', IMMUDB_AUDIT_PSEUDONYM_KEY: '' },
      timeoutMs: 60_000,
    });
    t.is(r.code, 0, describe(r));
    const cfg = JSON.parse(r.stdout) as { services: Record<string, { depends_on?: Record<string, { condition: string }>; healthcheck?: unknown; build?: { context: string; dockerfile: string }; environment?: Record<string, string> }> };
    t.deepEqual(Object.keys(cfg.services).sort(), ['auditor', 'echo', 'immudb', 'jaeger', 'kong']);
    t.is(cfg.services.kong!.depends_on?.immudb?.condition, 'service_healthy');
    t.is(cfg.services.kong!.build?.context, root);
    t.is(cfg.services.kong!.build?.dockerfile, 'kong/Dockerfile');
    t.is(cfg.services.kong!.environment?.IMMUDB_AUDIT_PASSWORD, 'immudb', 'interpolated demo default');
    for (const s of ['kong', 'immudb', 'jaeger', 'echo']) t.truthy(cfg.services[s]!.healthcheck, `${s} health check survives normalisation`);
    // The replica of docs/operations.md, "Failover": a second immudb of the same version, with its own data.
    const rr: RunResult = await run(client.argv[0]!, [...client.argv.slice(1), '--project-directory', root, '--env-file', '/dev/null', '-f', join(root, 'docker-compose.yml'), '--profile', 'replica', 'config', '--format', 'json'], {
      env: { ...client.env, IMMUDB_ADMIN_PASSWORD: '', IMMUDB_AUDIT_PSEUDONYM_KEY: '' },
      timeoutMs: 60_000,
    });
    t.is(rr.code, 0, describe(rr));
    const withReplica = JSON.parse(rr.stdout) as { services: Record<string, { image?: string; healthcheck?: unknown; volumes?: Array<{ source?: string; target?: string }> }> };
    const replica = withReplica.services['immudb-replica'];
    t.truthy(replica, 'the replica service');
    t.is(replica!.image, withReplica.services.immudb!.image);
    t.truthy(replica!.healthcheck);
    t.true((replica!.volumes ?? []).some((v) => v.source === 'immudb-replica-data' && v.target === '/var/lib/immudb'), 'its own data volume');
  } finally {
    client.dispose();
  }
});

// ---------------------------------------------------------------------------------------------
// What Kong's query command reads
// ---------------------------------------------------------------------------------------------

test('--dump-all-plugins prints exactly what Kong 3.9\'s query command reads', async (t) => {
  // Kong: cjson.decode(io.popen(query_cmd):read("*a")), then (dump.Plugins or dump)[1] only.
  const dump = await dumpAllPlugins(join(root, 'dist', 'kong-plugins'), { env: { OTEL_SDK_DISABLED: 'true' } });
  t.is(dump.length, 1, 'one plugin: Kong 3.9 registers only the first entry of a plugin server');
  const p = dump[0]!;
  t.is(p.Name, PLUGIN);
  t.true(declaredPlugins().includes(p.Name), 'the name KONG_PLUGINS enables');
  t.true(Number.isInteger(p.Priority));
  t.regex(String(p.Version), /^\d+\.\d+\.\d+/);
  t.is(p.Version, (JSON.parse(projectFile('package.json')) as { version: string }).version, 'Version is the package version');
  t.true(Array.isArray(p.Phases) && p.Phases.length > 0 && p.Phases.every((ph) => PHASES.has(ph)), `phases ${JSON.stringify(p.Phases)}`);
  t.true(p.Phases.includes('log'));
  t.is(p.Schema.name, PLUGIN);
  t.is(p.Schema.fields.length, 1);
  t.is(p.Schema.fields[0]!.config.type, 'record');
  t.deepEqual(p, await pluginInfoOverRpc(), 'the same as GetPluginInfo over the socket');
  const files = readdirSync(join(root, 'dist', 'kong-plugins'));
  t.deepEqual(files.filter((f) => !f.endsWith('.map')), ['immudb-audit.js'], 'dist/kong-plugins holds only this plugin (the server loads every file there)');
});

function declaredPlugins(): string[] {
  return (imageEnv.KONG_PLUGINS ?? '').split(',').map((s) => s.trim());
}

// ---------------------------------------------------------------------------------------------
// The npm package, and the image's commands run on it
// ---------------------------------------------------------------------------------------------

interface Installed {
  dir: string;
  root: string;
  version: string;
  packed: Awaited<ReturnType<typeof packProject>>;
  install: RunResult;
}
let installing: Promise<Installed> | undefined;
const scratch = mkdtempSync(join(tmpdir(), 'kia-deploy-'));
test.after.always(() => rmSync(scratch, { recursive: true, force: true }));

/** One npm pack and one npm install, shared by the tests that need them. */
function installed(): Promise<Installed> {
  installing ??= (async () => {
    const packed = await packProject(scratch);
    const dir = join(scratch, 'install');
    const install = await installTarball(packed.tarball, dir);
    return { dir, root: join(dir, 'node_modules', packed.name), version: packed.version, packed, install };
  })();
  return installing;
}

test('npm pack: the package installs into a clean directory, its plugin server lists the plugin, immudb-audit works', async (t) => {
  t.timeout(6 * 60_000, 'npm install reaches the registry (prefers the cache)');
  const i = await installed();
  t.log(`npm install of ${i.packed.tarball.split('/').pop()} (${i.packed.files.length} files): ${(i.install.ms / 1000).toFixed(1)} s`);
  const paths = new Set(i.packed.files.map((f) => f.path));
  for (const f of ['package.json', 'dist/kong-plugins/immudb-audit.js', 'dist/plugin/handler.js', 'dist/plugin/cli.js', 'proto/immudb.proto']) t.true(paths.has(f), `the package holds ${f}`);
  const extras = [...new Set(i.packed.files.map((f) => f.path.split('/').slice(0, 2).join('/')))].filter((d) => /^dist\/(test|bench|scripts|bench-results)/.test(d));
  if (extras.length) t.log(`the package also ships ${extras.join(', ')} (package.json "files" lists all of dist/)`);
  t.false(existsSync(join(i.dir, 'node_modules', 'ava')), 'no devDependencies installed');
  // immudb-audit-pluginserver --plugins-directory node_modules/<pkg>/dist/kong-plugins --dump-all-plugins
  // (absolute: kong-pdk 0.6.0 require()s join(dir, file), which makes a relative directory a package name)
  const dump = await run(join(i.dir, 'node_modules', '.bin', 'immudb-audit-pluginserver'), ['--plugins-directory', join(i.dir, 'node_modules', i.packed.name, 'dist', 'kong-plugins'), '--dump-all-plugins'], { cwd: i.dir, timeoutMs: 60_000 });
  t.is(dump.code, 0, describe(dump));
  const infos = JSON.parse(dump.stdout) as PluginInfo[];
  t.deepEqual(infos.map((x) => x.Name), [PLUGIN]);
  t.deepEqual(infos[0], await pluginInfoOverRpc(), 'the installed package describes the same plugin as the repository');
  // the bin, as npm linked it (executable, shebang, ESM)
  const bin = join(i.dir, 'node_modules', '.bin', 'immudb-audit');
  const help = await run(bin, ['--help'], { cwd: i.dir, timeoutMs: 30_000 });
  t.is(help.code, 0, describe(help));
  t.regex(help.stdout, /Usage: immudb-audit/);
  for (const cmd of ['get', 'verify', 'find']) t.regex(help.stdout, new RegExp(`\\n\\s+${cmd}\\b`), `immudb-audit ${cmd}`);
  const version = await run(bin, ['--version'], { cwd: i.dir, timeoutMs: 30_000 });
  t.is(version.stdout.trim(), i.version);
});

test('the image\'s plugin server commands work as Kong runs them, with only the environment nginx passes on', async (t) => {
  t.timeout(6 * 60_000);
  const i = await installed();
  const box = mkdtempSync(join(scratch, 'image-'));
  // what the image provides: Kong's prefix (the socket goes there) and the state directories
  for (const d of ['kong', 'data', 'auditor']) mkdirSync(join(box, d), { mode: 0o750 });
  // The image's paths, mapped onto the installed package (npm hoists the dependencies that
  // `npm ci` puts under the package in the image).
  const base: Array<[string, string]> = [
    ['/usr/local/lib/node_modules/kong-immudb-audit/node_modules/', join(i.dir, 'node_modules') + '/'],
    ['/usr/local/lib/node_modules/kong-immudb-audit/', i.root + '/'],
    ['/usr/local/lib/node_modules/kong-immudb-audit', i.root],
    ['/usr/local/bin/node', process.execPath],
    ['/usr/local/kong/', join(box, 'kong') + '/'],
    ['/usr/local/kong', join(box, 'kong')],
    [imageEnv.IMMUDB_AUDIT_DATA_DIR!, join(box, 'data')],
    [imageEnv.IMMUDB_AUDIT_AUDITOR_STATE_DIR!, join(box, 'auditor')],
  ];
  const mapPath = (p: string, extra: Array<[string, string]> = []) => {
    for (const [from, to] of [...extra, ...base].sort((a, b) => b[0].length - a[0].length)) if (p === from || (from.endsWith('/') && p.startsWith(from))) return to + p.slice(from.length);
    return undefined;
  };
  // the Dockerfile's symlinks must point at files the package provides
  const links: Array<[string, string]> = [];
  for (const r of finalRuns) {
    for (const m of r.matchAll(/\bln -s\s+(\S+)\s+(\S+)/g)) {
      const target = mapPath(m[1]!);
      t.truthy(target && existsSync(target), `ln -s ${m[1]}: the target exists in the installed package`);
      if (target) links.push([m[2]!, target]);
    }
  }
  const mapCommand = (cmd: string) =>
    cmd.split(/\s+/).map((tok) => {
      if (!tok.startsWith('/')) return tok;
      const m = mapPath(tok, links);
      if (!m) throw new Error(`unmapped path ${tok} in ${cmd}`);
      return m;
    }).join(' ');
  // The container's environment: the image's ENV and docker-compose.yml's kong.environment
  // (metrics moved to a free port for the test).
  const metricsPort = await freePort();
  const container: Record<string, string> = {
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: '/home/kong',
    ...Object.fromEntries(Object.entries(imageEnv).map(([k, v]) => [k, mapPath(v) ?? v])),
    ...kongEnv,
    IMMUDB_AUDIT_METRICS_PORT: String(metricsPort),
    IMMUDB_AUDIT_SHUTDOWN_TIMEOUT_MS: '500',
  };
  // QUERY_CMD: run by Kong's master process (io.popen, full environment); stdout must be the JSON
  const query = await run('/bin/sh', ['-c', mapCommand(imageEnv.KONG_PLUGINSERVER_JS_QUERY_CMD!)], { cwd: box, env: container, timeoutMs: 60_000 });
  t.is(query.code, 0, describe(query));
  t.deepEqual((JSON.parse(query.stdout) as PluginInfo[]).map((x) => x.Name), [PLUGIN], 'stdout is exactly the JSON Kong decodes');
  // START_CMD: spawned by worker 0 as `sh -c "exec <cmd>"`, with the environment nginx leaves
  // its workers: TZ and the `env` directives (KONG_NGINX_MAIN_ENV).
  const declared = new Set(['TZ', ...declaredEnv()]);
  const workerEnv = Object.fromEntries(Object.entries(container).filter(([k]) => declared.has(k)));
  t.false('IMMUDB_AUDIT_PASSWORD' in workerEnv, 'secrets for Kong\'s vault do not reach the plugin server');
  const socket = mapPath(imageEnv.KONG_PLUGINSERVER_JS_SOCKET!)!;
  const { child, output } = spawnLikeKong(mapCommand(imageEnv.KONG_PLUGINSERVER_JS_START_CMD!), workerEnv, box);
  let rpc: KongRpcClient | undefined;
  try {
    const deadline = Date.now() + 30_000;
    while (!existsSync(socket)) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`the plugin server did not create ${socket}; output:\n${stripAnsi(output())}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    rpc = new KongRpcClient(socket);
    const info = await rpc.getPluginInfo(PLUGIN);
    t.is(info.Name, PLUGIN);
    const fields = info.Schema.fields[0]!.config.fields as KongFieldList;
    const { route, service, config } = auditConfigs.find((c) => c.route.name === 'orders')!;
    // (the "$refs" Kong adds is checked by the next test)
    const cfg = withoutRefs(configAsKongSends(fields, config, kongEnv, { routeId: `route-${route.name}`, serviceId: `service-${service.name}`, pluginId: '4b1c3a8e-0d0e-4c5b-9a51-7f3f4d1e0a01' })) as Record<string, unknown>;
    const status = await rpc.startInstance(PLUGIN, cfg);
    t.true(Number.isInteger(status.Id));
    // the variables made it through: the spool is under IMMUDB_AUDIT_DATA_DIR, metrics listen
    t.true(existsSync(join(box, 'data', 'spool')), `spool under the mapped IMMUDB_AUDIT_DATA_DIR; output:\n${stripAnsi(output())}`);
    let metrics: Response | undefined;
    for (const deadline = Date.now() + 60_000; !metrics && Date.now() < deadline;) {
      metrics = await fetch(`http://127.0.0.1:${metricsPort}/status`).catch(() => undefined);
      if (!metrics) await new Promise((r) => setTimeout(r, 100));
    }
    t.is(metrics?.status, 200, 'IMMUDB_AUDIT_METRICS_PORT reached the plugin server');
    t.notRegex(JSON.stringify(status), /demo-only-pseudonym-key|"immudb_password":"immudb"/, 'secrets are not echoed back to Kong');
    await rpc.closeInstance(status.Id);
    // the mapped auditor link works too
    const cli = mapPath('/usr/local/bin/immudb-audit', links);
    t.truthy(cli);
    const v = await run(cli!, ['--version'], { env: { PATH: process.env.PATH }, timeoutMs: 30_000 });
    t.is(v.stdout.trim(), i.version, describe(v));
  } finally {
    rpc?.close();
    child.kill('SIGTERM');
    await new Promise<void>((r) => {
      if (child.exitCode !== null || child.signalCode !== null) return r();
      const k = setTimeout(() => child.kill('SIGKILL'), 5_000);
      child.once('exit', () => {
        clearTimeout(k);
        r();
      });
    });
  }
});

test('kong.yml configurations start in the plugin server exactly as Kong sends them (defaults, resolved references, $refs, Kong\'s own fields)', async (t) => {
  const dataDir = mkdtempSync(join(scratch, 'data-'));
  const server = await startPluginServer({ pluginsDir: join(root, 'dist', 'kong-plugins'), env: { IMMUDB_AUDIT_DATA_DIR: dataDir, OTEL_SDK_DISABLED: 'true', IMMUDB_AUDIT_SHUTDOWN_TIMEOUT_MS: '500' } });
  const rpc = new KongRpcClient(server.socketPath);
  try {
    const info = await rpc.getPluginInfo(PLUGIN);
    const fields = info.Schema.fields[0]!.config.fields as KongFieldList;
    for (const [n, { route, service, config }] of auditConfigs.entries()) {
      const cfg = configAsKongSends(fields, config, kongEnv, { routeId: `route-${route.name}`, serviceId: `service-${service.name}`, pluginId: `4b1c3a8e-0d0e-4c5b-9a51-7f3f4d1e0a0${n}` });
      t.truthy(cfg.$refs, `route ${route.name}: Kong adds "$refs" next to resolved references`);
      try {
        const status = await rpc.startInstance(PLUGIN, cfg);
        t.true(Number.isInteger(status.Id), `route ${route.name}`);
        await rpc.closeInstance(status.Id);
      } catch (e) {
        t.fail(`route ${route.name}: StartInstance failed for the config Kong 3.9 sends (${(e as Error).message}); Kong keeps the original references of a record in "$refs" (kong/db/schema/init.lua process_auto_fields), which the plugin must ignore`);
      }
    }
  } finally {
    rpc.close();
    await server.dispose();
  }
});

// ---------------------------------------------------------------------------------------------
// README
// ---------------------------------------------------------------------------------------------

test('README: the Docker quick start matches the files', async (t) => {
  const readme = projectFile('README.md');
  const section = /\n## Docker\n([\s\S]*?)\n## /.exec(readme)?.[1];
  t.truthy(section, 'README.md has a "## Docker" section');
  const blocks = [...section!.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!.trim());
  t.is(blocks.length, 2, 'two commands: start, smoke test');
  t.is(blocks[0], 'docker compose up --build --wait');
  const smoke = blocks[1]!;
  t.false(smoke.includes('\n'), 'the smoke test is one line');
  // curl through Kong, with a key a consumer has, on a route with key-auth and the plugin
  const curl = /curl [^&]*?-H 'apikey: ([^']+)'[^&]*? http:\/\/localhost:(\d+)(\/\S*)/.exec(smoke);
  t.truthy(curl, smoke);
  const [, key, port, path] = curl!;
  t.true((kongYml.consumers ?? []).some((c) => (c.keyauth_credentials ?? []).some((k) => k.key === key)), `apikey ${key} belongs to a consumer in kong/kong.yml`);
  t.true((services.kong!.ports ?? []).some((p) => p.endsWith(`:${port}:8000`) || p === `127.0.0.1:${port}:8000`), `Kong's proxy is published on ${port}`);
  const hit = routes.find(({ route }) => (route.paths ?? []).some((p) => path!.startsWith(p)));
  t.truthy(hit, `${path} is a route of kong/kong.yml`);
  t.true((hit!.route.plugins ?? []).some((p) => p.name === 'key-auth') && (hit!.route.plugins ?? []).some((p) => p.name === PLUGIN), `${path}: key-auth and immudb-audit`);
  t.regex(smoke, /-H "traceparent: 00-\$T-\$\(openssl rand -hex 8\)-01"/, 'a W3C traceparent carrying $T');
  // then the CLI of the auditor service, on that trace, verified
  t.regex(smoke, /docker compose run --rm auditor find --trace "\$T" --verify/);
  const findHelp = await run(process.execPath, [join(root, 'dist', 'plugin', 'cli.js'), 'find', '--help'], { timeoutMs: 30_000 });
  t.is(findHelp.code, 0, describe(findHelp));
  t.regex(findHelp.stdout, /--trace <trace-id>/);
  t.regex(findHelp.stdout, /--verify/);
  // then the trace in Jaeger's UI
  const ui = /http:\/\/localhost:(\d+)\/trace\/\$T/.exec(smoke);
  t.truthy(ui);
  t.true((services.jaeger!.ports ?? []).some((p) => p.endsWith(`:${ui![1]}:16686`)), `Jaeger's UI is published on ${ui![1]}`);
  // the versions the text names are the ones in the files
  t.true(section!.includes(`\`${dockerfile.globalArgs.KONG_IMAGE}\``));
  t.true(section!.includes(`Node ${dockerfile.globalArgs.NODE_VERSION}`));
  t.true(section!.includes(`immudb ${services.immudb!.image!.split(':')[1]}`));
  t.true(section!.includes(`Jaeger ${services.jaeger!.image!.split(':')[1]}`));
  for (const v of ['IMMUDB_ADMIN_PASSWORD', 'IMMUDB_AUDIT_PSEUDONYM_KEY']) t.true(projectFile('docker-compose.yml').includes(`\${${v}:-`), `${v} is a variable of docker-compose.yml`);
  t.true(section!.includes('`docker compose run --rm auditor verify --all`'));
});

test('docker-compose.yml: the plugin server\'s metrics and immudb\'s web console reach the host\'s loopback; README says how to see the status', (t) => {
  const kong = services.kong!;
  t.is(String(kong.environment?.IMMUDB_AUDIT_METRICS_HOST), '0.0.0.0', 'inside the container the endpoint listens beyond the container\'s loopback');
  const port = String(kong.environment?.IMMUDB_AUDIT_METRICS_PORT);
  t.true((kong.ports ?? []).includes(`127.0.0.1:${port}:${port}`), `metrics port ${port} published on the host's loopback`);
  t.true((services.immudb!.ports ?? []).includes('127.0.0.1:8080:8080'), "immudb's web console published on the host's loopback");
  const readme = projectFile('README.md');
  t.true(readme.includes('`docker compose exec kong immudb-audit status`'));
  t.true(readme.includes(`--metrics-url http://127.0.0.1:${port}`));
});
