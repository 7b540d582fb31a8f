// Helpers for the deployment tests: running commands, npm pack / install of the package, the
// Docker Compose client, and reading kong/Dockerfile and .dockerignore the way Docker does.
// None of this needs a Docker engine.
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { projectRoot } from './kong-driver.js';

// ---------------------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------------------

export interface RunResult {
  code: number;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface RunOptions {
  cwd?: string;
  /** The complete environment of the child (not merged with process.env). */
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

/** Runs a command to completion; never rejects for a non-zero exit (look at `code`). */
export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const started = Date.now();
  return new Promise((resolve) => {
    execFile(
      cmd,
      args,
      { cwd: opts.cwd ?? projectRoot(), env: opts.env ?? process.env, timeout: opts.timeoutMs ?? 120_000, maxBuffer: 64 * 1024 * 1024, killSignal: 'SIGKILL' },
      (err, stdout, stderr) => {
        const e = err as (NodeJS.ErrnoException & { code?: number | string; signal?: NodeJS.Signals }) | null;
        const code = e ? (typeof e.code === 'number' ? e.code : 127) : 0;
        resolve({ code, signal: e?.signal ?? null, stdout: String(stdout), stderr: String(stderr) + (e && typeof e.code === 'string' ? `\n${e.message}` : ''), ms: Date.now() - started });
      },
    );
  });
}

/** Whether an executable is on PATH. */
export function onPath(name: string, env: NodeJS.ProcessEnv = process.env): boolean {
  return (env.PATH ?? '').split(delimiter).some((d) => d && existsSync(join(d, name)));
}

export function describe(r: RunResult): string {
  return `exit ${r.code}${r.signal ? ` (${r.signal})` : ''} after ${r.ms} ms\nstdout:\n${r.stdout.slice(-4000)}\nstderr:\n${r.stderr.slice(-4000)}`;
}

// ---------------------------------------------------------------------------------------------
// npm pack / install
// ---------------------------------------------------------------------------------------------

export interface PackedPackage {
  tarball: string;
  name: string;
  version: string;
  files: Array<{ path: string; mode: number }>;
}

/** `npm pack` of the project (as built in dist/) into `dest`. */
export async function packProject(dest: string): Promise<PackedPackage> {
  // dist/ may be rewritten by a concurrent build (several people share a work tree): npm pack
  // then fails reading a file that is being written; try again a few times.
  let r = await run('npm', ['pack', '--json', '--pack-destination', dest, '--loglevel=error'], { timeoutMs: 120_000 });
  for (let attempt = 1; r.code !== 0 && /\bEOF\b|ENOENT/.test(r.stderr) && attempt < 4; attempt++) {
    await new Promise((res) => setTimeout(res, 2_000));
    r = await run('npm', ['pack', '--json', '--pack-destination', dest, '--loglevel=error'], { timeoutMs: 120_000 });
  }
  if (r.code !== 0) throw new Error(`npm pack failed: ${describe(r)}`);
  const [info] = JSON.parse(r.stdout.slice(r.stdout.indexOf('['))) as Array<{ filename: string; name: string; version: string; files: Array<{ path: string; mode: number }> }>;
  if (!info) throw new Error(`npm pack printed no package: ${r.stdout}`);
  return { tarball: join(dest, info.filename), name: info.name, version: info.version, files: info.files };
}

/**
 * Installs a package tarball into a new, empty project directory as a user would
 * (`npm install <tarball>`): only the package's own (production) dependencies, resolved from
 * the registry, preferring npm's cache. One install; returns how long it took.
 */
export async function installTarball(tarball: string, dir: string, timeoutMs = 300_000): Promise<RunResult> {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'kia-install-check', version: '0.0.0', private: true }, null, 2));
  const r = await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error', tarball], { cwd: dir, timeoutMs });
  if (r.code !== 0) throw new Error(`npm install of ${tarball} failed: ${describe(r)}`);
  return r;
}

// ---------------------------------------------------------------------------------------------
// Docker Compose
// ---------------------------------------------------------------------------------------------

export interface ComposeClient {
  /** argv prefix: ['docker', 'compose'] or [<standalone docker-compose>]. */
  argv: string[];
  env: NodeJS.ProcessEnv;
  /** How it was found, for test logs. */
  how: string;
  dispose(): void;
}

/**
 * The real Docker Compose client, without a Docker engine (`config` needs none):
 * 1. `docker compose` if the docker CLI has the compose plugin;
 * 2. otherwise Compose built from its Go module by kong/install-compose.sh (cached by version;
 *    a cold build takes about 3 minutes on 2 cores), run as `docker compose` through a private
 *    DOCKER_CONFIG when the docker CLI exists, else standalone.
 * Throws (never skips) when neither is possible, saying what is missing.
 */
export async function composeClient(): Promise<ComposeClient> {
  const noop = () => {};
  if (onPath('docker')) {
    const native = await run('docker', ['compose', 'version'], { timeoutMs: 30_000 });
    if (native.code === 0) return { argv: ['docker', 'compose'], env: process.env, how: `docker compose (installed): ${native.stdout.trim()}`, dispose: noop };
  }
  const script = join(projectRoot(), 'kong', 'install-compose.sh');
  const built = await run('bash', [script], { timeoutMs: 15 * 60_000 });
  if (built.code !== 0) {
    throw new Error(
      `no Docker Compose client: the docker CLI has no compose plugin and kong/install-compose.sh could not build one (it needs Go >= 1.24 and the Go module proxy).\n${describe(built)}`,
    );
  }
  const dir = built.stdout.trim().split('\n').pop()!;
  const plugin = join(dir, 'cli-plugins', 'docker-compose');
  if (onPath('docker')) {
    const config = mkdtempSync(join(tmpdir(), 'kia-docker-config-'));
    mkdirSync(join(config, 'cli-plugins'));
    symlinkSync(plugin, join(config, 'cli-plugins', 'docker-compose'));
    const env = { ...process.env, DOCKER_CONFIG: config };
    const v = await run('docker', ['compose', 'version'], { env, timeoutMs: 30_000 });
    if (v.code === 0) {
      return { argv: ['docker', 'compose'], env, how: `docker compose (plugin built by kong/install-compose.sh): ${v.stdout.trim()}`, dispose: () => rmSync(config, { recursive: true, force: true }) };
    }
    rmSync(config, { recursive: true, force: true });
  }
  const v = await run(plugin, ['version'], { timeoutMs: 30_000 });
  if (v.code !== 0) throw new Error(`the built compose client does not run: ${describe(v)}`);
  return { argv: [plugin], env: process.env, how: `standalone docker-compose built by kong/install-compose.sh: ${v.stdout.trim()}`, dispose: noop };
}

// ---------------------------------------------------------------------------------------------
// Dockerfile and .dockerignore
// ---------------------------------------------------------------------------------------------

export interface DockerInstruction {
  /** Upper-case instruction (FROM, RUN, ENV, ...). */
  cmd: string;
  /** Everything after the instruction, continuation lines joined. */
  args: string;
  /** 1-based line of the instruction. */
  line: number;
  /** Index of the build stage (-1 before the first FROM). */
  stage: number;
}

export interface Dockerfile {
  instructions: DockerInstruction[];
  stages: Array<{ from: string; name: string | null; instructions: DockerInstruction[] }>;
  /** ARGs declared before the first FROM, with their defaults. */
  globalArgs: Record<string, string>;
}

/** Parses a Dockerfile: comments dropped, `\` continuations joined (the default escape). */
export function parseDockerfile(text: string): Dockerfile {
  const instructions: DockerInstruction[] = [];
  const stages: Dockerfile['stages'] = [];
  const globalArgs: Record<string, string> = {};
  const lines = text.split('\n');
  let stage = -1;
  for (let i = 0; i < lines.length; i++) {
    const start = i;
    let line = lines[i]!;
    if (/^\s*(#|$)/.test(line)) continue;
    let joined = '';
    while (/\\\s*$/.test(line)) {
      joined += line.replace(/\\\s*$/, '');
      i++;
      line = lines[i] ?? '';
      while (/^\s*#/.test(line)) line = lines[++i] ?? ''; // comment lines inside a continuation are skipped
    }
    joined += line;
    const m = /^\s*([A-Za-z]+)\s+([\s\S]*)$/.exec(joined);
    if (!m) throw new Error(`Dockerfile line ${start + 1}: cannot parse ${JSON.stringify(joined)}`);
    const cmd = m[1]!.toUpperCase();
    const args = m[2]!.trim();
    if (cmd === 'FROM') {
      stage++;
      const f = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args);
      stages.push({ from: f?.[1] ?? args, name: f?.[2] ?? null, instructions: [] });
    }
    const ins = { cmd, args, line: start + 1, stage };
    instructions.push(ins);
    if (stage >= 0) stages[stage]!.instructions.push(ins);
    else if (cmd === 'ARG') {
      const a = /^([A-Za-z_][A-Za-z0-9_]*)(?:=(.*))?$/.exec(args);
      if (a) globalArgs[a[1]!] = unquote(a[2] ?? '');
    }
  }
  return { instructions, stages, globalArgs };
}

function unquote(v: string): string {
  v = v.trim();
  if (v.length >= 2 && ((v.startsWith('"') && v.endsWith('"')) || (v.startsWith("'") && v.endsWith("'")))) {
    const inner = v.slice(1, -1);
    return v.startsWith('"') ? inner.replace(/\\(["\\$])/g, '$1') : inner;
  }
  return v;
}

/** The key=value pairs of one ENV instruction (`ENV K=V K2="v 2"`; the legacy `ENV K V` too). */
export function parseEnvInstruction(args: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (!/^[A-Za-z_][A-Za-z0-9_]*=/.test(args)) {
    const m = /^(\S+)\s+([\s\S]*)$/.exec(args);
    if (m) out[m[1]!] = m[2]!.trim();
    return out;
  }
  const re = /([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|'[^']*'|\S*)\s*/y;
  for (let pos = 0; pos < args.length; ) {
    re.lastIndex = pos;
    const m = re.exec(args);
    if (!m) throw new Error(`cannot parse ENV at ${JSON.stringify(args.slice(pos, pos + 40))}`);
    out[m[1]!] = unquote(m[2]!);
    pos = re.lastIndex;
  }
  return out;
}

/** Every ENV of a stage, in order (later ones override). */
export function stageEnv(stage: Dockerfile['stages'][number]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const ins of stage.instructions) if (ins.cmd === 'ENV') Object.assign(env, parseEnvInstruction(ins.args));
  return env;
}

/** Substitutes ${NAME} / $NAME from `vars` (Dockerfile ARG expansion in FROM lines). */
export function expandArgs(text: string, vars: Record<string, string>): string {
  return text.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (_, a: string | undefined, b: string | undefined) => vars[(a ?? b)!] ?? '');
}

/**
 * Whether a path (relative to the build context) is sent to the builder, by .dockerignore's rules
 * (moby/patternmatcher): patterns are globs (`*`, `?`, `**`), `!` re-includes, the last pattern
 * that matches the path or one of its parent directories decides.
 */
export function dockerignoreIncludes(dockerignore: string, path: string): boolean {
  const patterns = dockerignore
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const exclusion = l.startsWith('!');
      const p = (exclusion ? l.slice(1) : l).trim().replace(/^\/+/, '').replace(/\/+$/, '');
      return { exclusion, re: globToRegExp(p) };
    });
  const parts = path.replace(/^\.?\/+/, '').split('/');
  let included = true;
  for (const { exclusion, re } of patterns) {
    for (let n = 1; n <= parts.length; n++) {
      if (re.test(parts.slice(0, n).join('/'))) {
        included = exclusion;
        break;
      }
    }
  }
  return included;
}

function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') {
      if (glob[i + 1] === '*') {
        re += '.*';
        i++;
        if (glob[i + 1] === '/') i++;
      } else re += '[^/]*';
    } else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** Reads a file of the project. */
export function projectFile(...parts: string[]): string {
  return readFileSync(join(projectRoot(), ...parts), 'utf8');
}

// ---------------------------------------------------------------------------------------------
// Processes started like Kong starts the plugin server
// ---------------------------------------------------------------------------------------------

/**
 * Starts `sh -c "exec <command>"` the way Kong's worker 0 spawns pluginserver_<name>_start_cmd
 * (kong/runloop/plugin_servers/process.lua), with exactly `env` as its environment.
 */
export function spawnLikeKong(command: string, env: NodeJS.ProcessEnv, cwd: string): { child: ReturnType<typeof spawn>; output: () => string } {
  const child = spawn('/bin/sh', ['-c', `exec ${command}`], { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  return { child, output: () => out };
}
