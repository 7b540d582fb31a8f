/**
 * A Kong-side test driver for the kong-pdk (0.6.0) JavaScript plugin server.
 *
 * Kong cannot run here, so tests start the real `kong-js-pluginserver` and talk to it over its
 * Unix socket the way Kong 3.x does (kong/runloop/plugin_servers/{plugin,rpc/mp_rpc}.lua):
 *
 * - MessagePack-RPC: request `[0, msgid, method, [params...]]`, response
 *   `[1, msgid, err, result]`, notifications `[2, label, args]`;
 * - one request at a time per connection, never pipelined; concurrent calls use separate
 *   connections taken from a keep-alive pool (like `ngx.socket` + `setkeepalive`);
 * - an event is `plugin.HandleEvent` followed by one `plugin.Step*` per PDK call until the
 *   returned `Data` is the string `"ret"`;
 * - in the log phase, PDK calls are answered from data Kong saved before scheduling the timer
 *   (`kong.log.serialize` arrives as a JSON *string*);
 * - errors containing "no plugin instance" make Kong drop its cached instance id, start a new
 *   instance and retry the event.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Encoder, decodeMultiStream } from '@msgpack/msgpack';

// ---------------------------------------------------------------------------------------------
// Paths
// ---------------------------------------------------------------------------------------------

const require = createRequire(import.meta.url);

/** Root of the project (the directory holding package.json), found from this file upwards. */
export function projectRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = path.join(dir, 'package.json');
    if (fs.existsSync(candidate)) {
      try {
        const pkg = JSON.parse(fs.readFileSync(candidate, 'utf8')) as { name?: string };
        if (pkg.name === 'kong-immudb-audit') return dir;
      } catch {
        // not ours, keep climbing
      }
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('kong-driver: cannot find the project root (package.json)');
    dir = parent;
  }
}

/**
 * Which plugin-server command to run: `ours` is `immudb-audit-pluginserver` (dist/plugin/
 * pluginserver/main.js, what the product ships), `kong-pdk` is kong-pdk's own
 * `kong-js-pluginserver` (same flags; kept to show its listener's quirks and for comparisons).
 */
export type PluginServerCommand = 'ours' | 'kong-pdk';

/** Absolute path of the plugin-server script for `command` (default: ours). */
export function pluginServerBin(command: PluginServerCommand = 'ours'): string {
  if (command === 'kong-pdk') return path.join(path.dirname(require.resolve('kong-pdk/package.json')), 'bin', 'kong-js-pluginserver');
  return path.join(projectRoot(), 'dist', 'plugin', 'pluginserver', 'main.js');
}

/** Absolute path of a fixture plugin directory under test/fixtures/plugins (sources, not dist). */
export function fixturePluginDir(name: string): string {
  return path.join(projectRoot(), 'test', 'fixtures', 'plugins', name);
}

/** The noop plugin (one `kong.log.serialize()` in its log phase), for driver tests and baselines. */
export const NOOP_PLUGIN_NAME = 'noop-serialize';

// ---------------------------------------------------------------------------------------------
// Plugin server process
// ---------------------------------------------------------------------------------------------

export const DEFAULT_SOCK_NAME = 'js_pluginserver.sock';

export interface StartPluginServerOptions {
  /** Directory with the plugins (made absolute: kong-pdk 0.6.0 `require`s `join(dir, file)`). */
  pluginsDir: string;
  /** Extra environment (merged over process.env). */
  env?: NodeJS.ProcessEnv;
  /** Extra CLI arguments, e.g. `['-v']` (one -v already means debug level in kong-pdk 0.6.0). */
  args?: string[];
  /** Kong prefix; defaults to a fresh private temp directory that `dispose()` removes. */
  prefix?: string;
  /** Socket name inside the prefix (default `js_pluginserver.sock`, like Kong). */
  sockName?: string;
  /** Working directory of the server process (default: the project root). */
  cwd?: string;
  /** How long to wait for the socket to accept connections (default 60 s: only a failure waits that long). */
  startTimeoutMs?: number;
  /** Which plugin-server command (default `ours`). */
  command?: PluginServerCommand;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

const ANSI_RE = /\u001b\[[0-9;]*[A-Za-z]/g;

/**
 * Turns node-color-log output into plain lines. It writes colours even when not on a TTY and
 * builds each line by printing a fragment, then "cursor up + clear line" and the longer line
 * again; replaying those cursor moves leaves one clean line per log call.
 */
export function stripAnsi(text: string): string {
  const lines: string[] = [];
  let current = '';
  const re = /\u001b\[([0-9;]*)([A-Za-z])|\n/g;
  let last = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    current += text.slice(last, m.index);
    last = re.lastIndex;
    if (m[0] === '\n') {
      lines.push(current);
      current = '';
    } else if (m[2] === 'A') {
      // cursor up: the next writes replace the previous line
      const n = Math.max(1, Number(m[1] || '1'));
      for (let i = 0; i < n && lines.length > 0; i++) lines.pop();
      current = '';
    } else if (m[2] === 'K') {
      current = '';
    }
  }
  current += text.slice(last);
  const out = lines.join('\n');
  return (current ? (out ? `${out}\n${current}` : current) : out ? `${out}\n` : '').replace(ANSI_RE, '');
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves once something accepts connections on `socketPath`, rejects on timeout / abort. */
async function waitForSocket(
  socketPath: string,
  timeoutMs: number,
  aborted: () => Error | undefined,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const abort = aborted();
    if (abort) throw abort;
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(socketPath);
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => {
        s.destroy();
        resolve(false);
      });
    });
    if (ok) return;
    if (Date.now() > deadline) {
      throw new Error(`kong-driver: plugin server socket ${socketPath} not ready after ${timeoutMs} ms`);
    }
    await sleep(20);
  }
}

/**
 * A running `kong-js-pluginserver`, started like Kong's `pluginserver_js_start_cmd`:
 * `kong-js-pluginserver --plugins-directory <dir> --kong-prefix <prefix> --sock-name <name>`.
 */
export class PluginServerProcess {
  readonly pluginsDir: string;
  readonly prefix: string;
  readonly sockName: string;
  readonly socketPath: string;
  /** The argv used to spawn (after `node`). */
  readonly argv: readonly string[];
  /** Every exit of the process so far (one per stop/kill/crash). */
  readonly exits: ExitInfo[] = [];

  private child: ChildProcess | undefined;
  private exitPromise: Promise<ExitInfo> | undefined;
  private readonly out: string[] = [];
  private readonly err: string[] = [];
  private readonly all: string[] = [];
  private readonly env: NodeJS.ProcessEnv;
  private readonly cwd: string;
  private readonly startTimeoutMs: number;
  private readonly ownsPrefix: boolean;
  private disposed = false;

  constructor(opts: StartPluginServerOptions) {
    this.pluginsDir = path.resolve(opts.pluginsDir);
    this.ownsPrefix = opts.prefix === undefined;
    this.prefix = opts.prefix ?? fs.mkdtempSync(path.join(os.tmpdir(), 'kong-prefix-'));
    this.sockName = opts.sockName ?? DEFAULT_SOCK_NAME;
    this.socketPath = path.join(this.prefix, this.sockName);
    this.argv = [
      pluginServerBin(opts.command),
      ...(opts.args ?? []),
      '--plugins-directory',
      this.pluginsDir,
      '--kong-prefix',
      this.prefix,
      '--sock-name',
      this.sockName,
    ];
    this.env = { ...process.env, ...(opts.env ?? {}) };
    this.cwd = opts.cwd ?? projectRoot();
    this.startTimeoutMs = opts.startTimeoutMs ?? 60_000;
  }

  /** Pid of the current process (changes on restart). */
  get pid(): number {
    const pid = this.child?.pid;
    if (pid === undefined) throw new Error('kong-driver: plugin server not started');
    return pid;
  }

  /** True while the current process has not exited. */
  isRunning(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Promise of the current process's exit. */
  exited(): Promise<ExitInfo> {
    if (!this.exitPromise) throw new Error('kong-driver: plugin server not started');
    return this.exitPromise;
  }

  /** stdout + stderr interleaved in arrival order, ANSI sequences removed (pass raw=true to keep). */
  logs(raw = false): string {
    const text = this.all.join('');
    return raw ? text : stripAnsi(text);
  }

  stdout(raw = false): string {
    const text = this.out.join('');
    return raw ? text : stripAnsi(text);
  }

  stderr(raw = false): string {
    const text = this.err.join('');
    return raw ? text : stripAnsi(text);
  }

  /**
   * Waits until the (ANSI-stripped) logs match. The deadline only matters on failure: it is
   * generous, as output reaches us late on a loaded machine.
   */
  async waitForLog(pattern: RegExp | string, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const test = (s: string) => (typeof pattern === 'string' ? s.includes(pattern) : pattern.test(s));
    while (!test(this.logs())) {
      if (Date.now() > deadline) {
        throw new Error(`kong-driver: log pattern ${String(pattern)} not seen after ${timeoutMs} ms; logs:\n${this.logs()}`);
      }
      await sleep(20);
    }
  }

  /** Spawns the process and waits for its socket. */
  async start(): Promise<void> {
    if (this.disposed) throw new Error('kong-driver: plugin server disposed');
    if (this.isRunning()) throw new Error('kong-driver: plugin server already running');
    const child = spawn(process.execPath, this.argv as string[], {
      cwd: this.cwd,
      env: this.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    child.stdout?.setEncoding('utf8');
    child.stderr?.setEncoding('utf8');
    child.stdout?.on('data', (s: string) => {
      this.out.push(s);
      this.all.push(s);
    });
    child.stderr?.on('data', (s: string) => {
      this.err.push(s);
      this.all.push(s);
    });
    let exitInfo: ExitInfo | undefined;
    let spawnError: Error | undefined;
    child.once('error', (e) => {
      spawnError = e;
    });
    this.exitPromise = new Promise<ExitInfo>((resolve) => {
      child.once('exit', (code, signal) => {
        exitInfo = { code, signal };
        this.exits.push(exitInfo);
        resolve(exitInfo);
      });
    });
    await waitForSocket(this.socketPath, this.startTimeoutMs, () => {
      if (spawnError) return spawnError;
      if (exitInfo) {
        return new Error(
          `kong-driver: plugin server exited during start (code ${exitInfo.code}, signal ${exitInfo.signal}); logs:\n${this.logs()}`,
        );
      }
      return undefined;
    });
  }

  /** Sends `signal` (default SIGTERM) and waits for exit; SIGKILLs after `timeoutMs`. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 5_000): Promise<ExitInfo> {
    const child = this.child;
    if (!child || !this.exitPromise) throw new Error('kong-driver: plugin server not started');
    if (!this.isRunning()) return this.exitPromise;
    child.kill(signal);
    const timer = setTimeout(() => {
      if (this.isRunning()) child.kill('SIGKILL');
    }, timeoutMs);
    try {
      return await this.exitPromise;
    } finally {
      clearTimeout(timer);
    }
  }

  /** SIGKILL, as when the server crashes or the OOM killer strikes. */
  kill(): Promise<ExitInfo> {
    return this.stop('SIGKILL');
  }

  /**
   * Stops the current process (SIGTERM, if still running) and starts a new one on the same socket
   * path, like Kong's worker 0 respawning its plugin server. Instance ids restart at 0.
   */
  async restart(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (this.isRunning()) await this.stop(signal);
    await this.start();
  }

  /** Stops the process and removes the private prefix directory. Idempotent. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    if (this.isRunning()) await this.stop('SIGTERM', 2_000);
    if (this.ownsPrefix) fs.rmSync(this.prefix, { recursive: true, force: true });
  }
}

/** Starts `kong-js-pluginserver` with a private prefix and waits until its socket accepts connections. */
export async function startPluginServer(opts: StartPluginServerOptions): Promise<PluginServerProcess> {
  const ps = new PluginServerProcess(opts);
  try {
    await ps.start();
  } catch (e) {
    await ps.dispose().catch(() => undefined);
    throw e;
  }
  return ps;
}

export interface DumpAllPluginsOptions {
  env?: NodeJS.ProcessEnv;
  args?: string[];
  cwd?: string;
  timeoutMs?: number;
  /** Which plugin-server command (default `ours`). */
  command?: PluginServerCommand;
}

/**
 * Runs Kong's `pluginserver_js_query_cmd` (`kong-js-pluginserver --plugins-directory <dir>
 * --dump-all-plugins`) and parses stdout as a whole, the way Kong does (`cjson.decode(fd:read("*a"))`):
 * anything else printed on stdout (kong-pdk logs warnings there) makes it fail, as it would in Kong.
 */
export async function dumpAllPlugins(pluginsDir: string, opts: DumpAllPluginsOptions = {}): Promise<PluginInfo[]> {
  const argv = [pluginServerBin(opts.command), ...(opts.args ?? []), '--plugins-directory', path.resolve(pluginsDir), '--dump-all-plugins'];
  const { stdout, stderr } = await new Promise<{ stdout: string; stderr: string }>((resolve, reject) => {
    execFile(
      process.execPath,
      argv,
      {
        cwd: opts.cwd ?? projectRoot(),
        env: { ...process.env, ...(opts.env ?? {}) },
        timeout: opts.timeoutMs ?? 30_000,
        maxBuffer: 64 * 1024 * 1024,
      },
      (error, out, err) => {
        if (error) {
          reject(new Error(`kong-driver: --dump-all-plugins failed: ${error.message}\nstdout:\n${out}\nstderr:\n${err}`));
        } else {
          resolve({ stdout: out, stderr: err });
        }
      },
    );
  });
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdout);
  } catch (e) {
    throw new Error(
      `kong-driver: --dump-all-plugins output is not JSON (Kong would refuse it: "not a plugin info table"): ${(e as Error).message}\nstdout:\n${stripAnsi(stdout)}\nstderr:\n${stripAnsi(stderr)}`,
    );
  }
  if (!Array.isArray(parsed)) {
    throw new Error(`kong-driver: --dump-all-plugins did not print a JSON array: ${stdout}`);
  }
  return parsed as PluginInfo[];
}

// ---------------------------------------------------------------------------------------------
// RPC types
// ---------------------------------------------------------------------------------------------

export interface PluginInfo {
  Name: string;
  Version?: string;
  Phases: string[];
  Priority: number;
  Schema: {
    name: string;
    fields: Array<{ config: { type: 'record'; fields: unknown[] } }>;
  };
}

export interface InstanceStatus {
  Name: string;
  Id: number;
  Config: Record<string, unknown>;
  /** Seconds (float). Absent in CloseInstance results. */
  StartTime?: number;
}

export interface ServerStatus {
  Pid: number;
  Plugins: Record<
    string,
    {
      Name: string;
      Modtime: number;
      LoadTime: number;
      Instances: InstanceStatus[];
      LastStartInstance: number;
      LastCloseInstance: number;
    }
  >;
}

/** What HandleEvent / Step* return: a PDK call `{Method, Args}` or the string "ret". */
export interface StepResult {
  Data: PdkCallRequest | 'ret' | unknown;
  EventId: number;
}

export interface PdkCallRequest {
  Method: string;
  Args: unknown[];
}

export type StepMethod =
  | 'plugin.Step'
  | 'plugin.StepError'
  | 'plugin.StepMultiMap'
  | 'plugin.StepCredential'
  | 'plugin.StepConsumer'
  | 'plugin.StepRoute'
  | 'plugin.StepService'
  | 'plugin.StepMemoryStats';

/** An error returned by the plugin server (`[1, id, err, nil]`) or a transport failure. */
export class RpcError extends Error {
  override readonly name = 'RpcError';
  constructor(
    message: string,
    readonly method: string,
    /** true when the server answered with an error; false for transport failures */
    readonly remote: boolean,
    readonly code?: string,
  ) {
    super(message);
  }
}

export interface RpcNotification {
  label: unknown;
  args: unknown;
  at: number;
}

// ---------------------------------------------------------------------------------------------
// Connection + pool
// ---------------------------------------------------------------------------------------------

interface Pending {
  msgid: number;
  method: string;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

class RpcConnection {
  readonly socket: net.Socket;
  alive = true;
  private pending: Pending | undefined;
  private readonly onNotification: (n: RpcNotification) => void;
  private readonly onDead: (c: RpcConnection) => void;

  private constructor(socket: net.Socket, onNotification: (n: RpcNotification) => void, onDead: (c: RpcConnection) => void) {
    this.socket = socket;
    this.onNotification = onNotification;
    this.onDead = onDead;
    socket.on('error', () => {
      // surfaced through the read loop / pending call
    });
    void this.readLoop();
  }

  static open(
    socketPath: string,
    onNotification: (n: RpcNotification) => void,
    onDead: (c: RpcConnection) => void,
  ): Promise<RpcConnection> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(socketPath);
      const fail = (e: NodeJS.ErrnoException) => {
        socket.destroy();
        reject(new RpcError(`connect ${socketPath}: ${e.message}`, 'connect', false, e.code));
      };
      socket.once('error', fail);
      socket.once('connect', () => {
        socket.off('error', fail);
        socket.setNoDelay?.(true);
        resolve(new RpcConnection(socket, onNotification, onDead));
      });
    });
  }

  /** Stream-decodes every MessagePack object the server sends, whatever the chunking. */
  private async readLoop(): Promise<void> {
    let failure: Error | undefined;
    try {
      for await (const msg of decodeMultiStream(this.socket)) {
        this.onMessage(msg);
      }
    } catch (e) {
      failure = e as Error;
    }
    this.markDead(failure ?? new Error('connection closed by the plugin server'));
  }

  private onMessage(msg: unknown): void {
    if (!Array.isArray(msg)) {
      this.failPending(new RpcError(`malformed RPC message: ${JSON.stringify(msg)}`, this.pending?.method ?? '?', false));
      return;
    }
    if (msg[0] === 2) {
      this.onNotification({ label: msg[1], args: msg[2], at: Date.now() });
      return;
    }
    const p = this.pending;
    if (!p) {
      // Kong would assert here; record it as a protocol error on the next call.
      this.markDead(new Error(`unsolicited RPC message ${JSON.stringify(msg).slice(0, 200)}`));
      return;
    }
    if (msg[0] !== 1) {
      this.failPending(new RpcError(`RPC response expected, got type ${String(msg[0])}`, p.method, false));
      return;
    }
    if (msg[1] !== p.msgid) {
      this.failPending(new RpcError(`unexpected RPC response ID ${String(msg[1])} (expected ${p.msgid})`, p.method, false));
      return;
    }
    this.pending = undefined;
    const err = msg[2];
    if (err !== null && err !== undefined) {
      p.reject(new RpcError(String(err), p.method, true));
    } else {
      p.resolve(msg[3]);
    }
  }

  private failPending(e: Error): void {
    const p = this.pending;
    this.pending = undefined;
    p?.reject(e);
    this.destroy();
  }

  private markDead(e: Error): void {
    const p = this.pending;
    this.pending = undefined;
    if (p) p.reject(e instanceof RpcError ? e : new RpcError(e.message, p.method, false));
    this.destroy();
  }

  destroy(): void {
    if (this.alive) {
      this.alive = false;
      this.socket.destroy();
      this.onDead(this);
    }
  }

  /** Sends one request and waits for its response. The caller guarantees no other call is in flight. */
  call(payload: Uint8Array, msgid: number, method: string, timeoutMs: number): Promise<unknown> {
    if (this.pending) throw new Error('kong-driver: pipelining on one connection is not allowed');
    if (!this.alive) return Promise.reject(new RpcError('connection closed', method, false));
    return new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this.pending?.msgid === msgid) {
          this.pending = undefined;
          reject(new RpcError(`timeout after ${timeoutMs} ms`, method, false, 'ETIMEDOUT'));
          this.destroy();
        }
      }, timeoutMs);
      this.pending = {
        msgid,
        method,
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      // One write per request, as Kong's c:send(mp_pack(...)).
      this.socket.write(payload);
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Kong answers for PDK calls
// ---------------------------------------------------------------------------------------------

/** Marks an answer to send with `plugin.StepError` (Kong: the PDK function returned `nil, err`). */
export interface PdkErrorAnswer {
  error: string;
}

/** Forces a given Step method / raw data (bypasses Kong's typed-step and multimap handling). */
export class RawStep {
  constructor(
    readonly method: StepMethod,
    readonly data: unknown,
  ) {}
}

export interface PdkCallContext {
  eventId: number;
  /** 0-based index of this PDK call in the event */
  index: number;
  method: string;
}

/** An answer: a constant, or a function of the call's args. `{error}` answers go via StepError. */
export type PdkAnswer = ((args: unknown[], ctx: PdkCallContext) => unknown) | string | number | boolean | null | object;

export type PdkAnswers = Record<string, PdkAnswer>;

/** `{error: 'msg'}`: the shape the driver treats as a failed PDK call. */
export function pdkError(message: string): PdkErrorAnswer {
  return { error: message };
}

function isPdkError(v: unknown): v is PdkErrorAnswer {
  return (
    typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 1 && typeof (v as PdkErrorAnswer).error === 'string'
  );
}

/** Kong's get_step_method by_pdk_method table (mp_rpc.lua). */
export const TYPED_STEP_METHODS: Readonly<Record<string, StepMethod>> = {
  'kong.client.get_credential': 'plugin.StepCredential',
  'kong.client.load_consumer': 'plugin.StepConsumer',
  'kong.client.get_consumer': 'plugin.StepConsumer',
  'kong.client.authenticate': 'plugin.StepCredential',
  'kong.node.get_memory_stats': 'plugin.StepMemoryStats',
  'kong.router.get_route': 'plugin.StepRoute',
  'kong.router.get_service': 'plugin.StepService',
  'kong.request.get_query': 'plugin.StepMultiMap',
  'kong.request.get_headers': 'plugin.StepMultiMap',
  'kong.response.get_headers': 'plugin.StepMultiMap',
  'kong.service.response.get_headers': 'plugin.StepMultiMap',
};

const MULTIMAP_METHODS = new Set([
  'kong.request.get_query',
  'kong.request.get_headers',
  'kong.response.get_headers',
  'kong.service.response.get_headers',
]);

/** Kong's fix_mmap: string values become one-element arrays, `true` an empty array. */
export function fixMultiMap(value: unknown): unknown {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (v === true) out[k] = [];
    else if (typeof v === 'string') out[k] = [v];
    else out[k] = v;
  }
  return out;
}

/** JSON like lua-cjson's `cjson.encode` (Kong's serializer output): `/` is escaped as `\/`. */
export function cjsonEncode(value: unknown): string {
  return JSON.stringify(value).replace(/\//g, '\\/');
}

/** The methods Kong answers from its saved copy in the log-phase timer (plugin.lua exposed_api). */
export const LOG_PHASE_SAVED_METHODS: readonly string[] = [
  'kong.log.serialize',
  'kong.request.get_header',
  'kong.request.get_headers',
  'kong.request.get_uri_captures',
  'kong.response.get_status',
  'kong.response.get_header',
  'kong.response.get_headers',
  'kong.response.get_source',
  'kong.nginx.get_ctx',
  'kong.nginx.set_ctx',
  'kong.ctx.shared.get',
  'kong.ctx.shared.set',
  'kong.nginx.req_start_time',
];

interface SerializedLike {
  request?: { headers?: Record<string, unknown> };
  response?: { status?: number; headers?: Record<string, unknown> };
  started_at?: number;
  source?: string;
}

function firstValue(v: unknown): unknown {
  return Array.isArray(v) ? v[0] : v;
}

/**
 * Answers for every log-phase PDK method Kong serves from its saved request data, derived from a
 * `kong.log.serialize()` table (object or JSON string). `overrides` replace or add entries.
 * `kong.ctx.shared` / `ngx.ctx` are backed by maps returned as `ctxShared` / `ngxCtx`.
 */
export function logPhaseAnswers(
  serialized: SerializedLike | string,
  overrides: PdkAnswers = {},
): PdkAnswers & { readonly ctxShared: Map<string, unknown>; readonly ngxCtx: Map<string, unknown> } {
  const json = typeof serialized === 'string' ? serialized : cjsonEncode(serialized);
  const log = (typeof serialized === 'string' ? JSON.parse(serialized) : serialized) as SerializedLike;
  const reqHeaders = log.request?.headers ?? {};
  const respHeaders = log.response?.headers ?? {};
  const ctxShared = new Map<string, unknown>();
  const ngxCtx = new Map<string, unknown>();
  const answers: PdkAnswers = {
    'kong.log.serialize': () => json,
    'kong.request.get_header': (args) => firstValue(reqHeaders[String(args[0]).toLowerCase()]) ?? null,
    'kong.request.get_headers': () => reqHeaders,
    'kong.request.get_uri_captures': () => ({ unnamed: [], named: {} }),
    'kong.response.get_status': () => log.response?.status ?? null,
    'kong.response.get_header': (args) => firstValue(respHeaders[String(args[0]).toLowerCase()]) ?? null,
    'kong.response.get_headers': () => respHeaders,
    // Kong's constants: NAMES = {service = "upstream", exit = "kong", error = "kong"}.
    'kong.response.get_source': () => (log.source === 'upstream' ? 'service' : 'exit'),
    'kong.nginx.get_ctx': (args) => ngxCtx.get(String(args[0])) ?? null,
    'kong.nginx.set_ctx': (args) => {
      ngxCtx.set(String(args[0]), args[1]);
      return null;
    },
    'kong.ctx.shared.get': (args) => ctxShared.get(String(args[0])) ?? null,
    'kong.ctx.shared.set': (args) => {
      ctxShared.set(String(args[0]), args[1]);
      return null;
    },
    'kong.nginx.req_start_time': () => (log.started_at ?? Date.now()) / 1000,
    ...overrides,
  };
  return Object.assign(answers, { ctxShared, ngxCtx });
}

/** What the driver does with a PDK method it has no answer for. */
export type UnknownMethodPolicy =
  /** plugin.StepError "method not available in log phase: <m>" (default) */
  | 'step-error'
  /** plugin.Step with no Data: what Kong does when call_pdk_method cannot index the method */
  | 'nil'
  /** stop answering, as when the Lua PDK function raises in the timer: the JS event never ends */
  | 'abandon';

export interface RunEventOptions {
  onUnknownMethod?: UnknownMethodPolicy;
  /** Upper bound on PDK calls in one event (default 10,000) */
  maxSteps?: number;
}

export interface PdkCall {
  method: string;
  args: unknown[];
  /** Step method used to answer (undefined when abandoned) */
  stepMethod?: StepMethod;
  /** the data sent back (for StepError: the message) */
  answer?: unknown;
  error?: string;
  /** ms from HandleEvent start until the call arrived */
  at: number;
}

export interface EventResult {
  instanceId: number;
  eventId: number;
  eventName: string;
  /** PDK calls the plugin made, in order */
  calls: PdkCall[];
  /** RPC round trips (HandleEvent + Step*) */
  roundTrips: number;
  durationMs: number;
  /** true when the event ended with "ret" */
  completed: boolean;
  /** true when the driver stopped answering (policy 'abandon') */
  abandoned: boolean;
  /**
   * The plugin ended the request with kong.response.exit/error: `[status, body, headers]` as sent.
   * Like Kong 3.9.3, the driver sends no Step for it: in the access phase kong.response.exit stores
   * the response and yields the plugin's coroutine (kong/pdk/response.lua), so the bridge loop
   * (mp_rpc.lua) never continues the event.
   */
  exit?: { method: string; args: unknown[] };
}

/** PDK methods after which Kong never continues the event (kong-pdk's NON_RETURN_METHODS too). */
export const NON_RETURN_METHODS: ReadonlySet<string> = new Set(['kong.response.exit', 'kong.response.error']);

/** Count PDK calls by method, e.g. `countCalls(r)['kong.log.serialize'] === 1`. */
export function countCalls(result: Pick<EventResult, 'calls'>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const c of result.calls) out[c.method] = (out[c.method] ?? 0) + 1;
  return out;
}

function isPdkCallRequest(d: unknown): d is PdkCallRequest {
  return typeof d === 'object' && d !== null && typeof (d as PdkCallRequest).Method === 'string';
}

// ---------------------------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------------------------

export interface KongRpcClientOptions {
  /** Idle connections kept for reuse (Kong's lua_socket_pool_size default: 30). */
  maxIdle?: number;
  /** Cap on simultaneously open connections; extra calls wait (default: unlimited, like Kong). */
  maxConnections?: number;
  /** Per-call timeout (Kong's lua_socket_read_timeout default: 60 s). Default 30 s. */
  callTimeoutMs?: number;
  /** Called for each `[2, label, args]` notification (they are also recorded). */
  onNotification?: (n: RpcNotification) => void;
}

export interface ClientStats {
  calls: number;
  connectionsOpened: number;
  openConnections: number;
  maxOpenConnections: number;
}

/**
 * MessagePack-RPC client behaving like Kong's mp_rpc.lua: one request per connection at a time,
 * connections from a keep-alive pool, responses stream-decoded whatever their chunking.
 */
export class KongRpcClient {
  readonly socketPath: string;
  readonly notifications: RpcNotification[] = [];
  readonly stats: ClientStats = { calls: 0, connectionsOpened: 0, openConnections: 0, maxOpenConnections: 0 };

  private msgId = 0;
  private readonly idle: RpcConnection[] = [];
  private readonly open = new Set<RpcConnection>();
  private opening = 0;
  private readonly waiters: Array<() => void> = [];
  private readonly encoder = new Encoder();
  private readonly maxIdle: number;
  private readonly maxConnections: number;
  private readonly callTimeoutMs: number;
  private readonly onNotificationCb: ((n: RpcNotification) => void) | undefined;
  private readonly forks: KongRpcClient[] = [];
  private closed = false;

  constructor(socketPath: string, opts: KongRpcClientOptions = {}) {
    this.socketPath = socketPath;
    this.maxIdle = opts.maxIdle ?? 30;
    this.maxConnections = opts.maxConnections ?? Number.POSITIVE_INFINITY;
    this.callTimeoutMs = opts.callTimeoutMs ?? 30_000;
    this.onNotificationCb = opts.onNotification;
  }

  /** A sibling client on the same socket with its own pool and msgid counter (another nginx worker). */
  fork(opts: KongRpcClientOptions = {}): KongRpcClient {
    const c = new KongRpcClient(this.socketPath, {
      maxIdle: this.maxIdle,
      maxConnections: this.maxConnections,
      callTimeoutMs: this.callTimeoutMs,
      ...(this.onNotificationCb ? { onNotification: this.onNotificationCb } : {}),
      ...opts,
    });
    this.forks.push(c);
    return c;
  }

  private async acquire(): Promise<RpcConnection> {
    for (;;) {
      if (this.closed) throw new RpcError('client closed', 'acquire', false);
      const c = this.idle.pop();
      if (c) {
        if (c.alive) return c;
        continue;
      }
      if (this.open.size + this.opening < this.maxConnections) break;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    this.opening++;
    let conn: RpcConnection;
    try {
      conn = await RpcConnection.open(
        this.socketPath,
        (n) => {
          this.notifications.push(n);
          this.onNotificationCb?.(n);
        },
        (dead) => this.forget(dead),
      );
    } catch (e) {
      this.waiters.shift()?.();
      throw e;
    } finally {
      this.opening--;
    }
    this.open.add(conn);
    this.stats.connectionsOpened++;
    this.stats.openConnections = this.open.size;
    this.stats.maxOpenConnections = Math.max(this.stats.maxOpenConnections, this.open.size);
    return conn;
  }

  private forget(conn: RpcConnection): void {
    this.open.delete(conn);
    const i = this.idle.indexOf(conn);
    if (i >= 0) this.idle.splice(i, 1);
    this.stats.openConnections = this.open.size;
    this.waiters.shift()?.();
  }

  private release(conn: RpcConnection): void {
    if (!conn.alive) return;
    if (this.closed || this.idle.length >= this.maxIdle) {
      conn.destroy();
      return;
    }
    this.idle.push(conn);
    this.waiters.shift()?.();
  }

  /** One RPC: `[0, msgid, method, params]` -> result, or throws RpcError. */
  async call<T = unknown>(method: string, ...params: unknown[]): Promise<T> {
    const msgid = ++this.msgId;
    const payload = this.encoder.encode([0, msgid, method, params]);
    const conn = await this.acquire();
    this.stats.calls++;
    try {
      return (await conn.call(payload, msgid, method, this.callTimeoutMs)) as T;
    } finally {
      this.release(conn);
    }
  }

  getPluginInfo(name: string): Promise<PluginInfo> {
    return this.call<PluginInfo>('plugin.GetPluginInfo', name);
  }

  /** Kong's call_start_instance: `{Name, Config: cjson.encode(conf)}`. */
  startInstance(name: string, config: Record<string, unknown>): Promise<InstanceStatus> {
    return this.call<InstanceStatus>('plugin.StartInstance', { Name: name, Config: JSON.stringify(config) });
  }

  instanceStatus(id: number): Promise<InstanceStatus> {
    return this.call<InstanceStatus>('plugin.InstanceStatus', id);
  }

  closeInstance(id: number): Promise<InstanceStatus> {
    return this.call<InstanceStatus>('plugin.CloseInstance', id);
  }

  getStatus(): Promise<ServerStatus> {
    return this.call<ServerStatus>('plugin.GetStatus');
  }

  handleEvent(instanceId: number, eventName: string): Promise<StepResult> {
    return this.call<StepResult>('plugin.HandleEvent', { InstanceId: instanceId, EventName: eventName });
  }

  /**
   * `plugin.Step*` with `{EventId, Data}`. Like a Lua table, a nil Data is simply absent.
   * EventId is encoded first so that a big Data string is the last thing in the message.
   */
  step(method: StepMethod, eventId: number, data: unknown): Promise<StepResult> {
    const arg: Record<string, unknown> = { EventId: eventId };
    if (data !== undefined && data !== null) arg.Data = data;
    return this.call<StepResult>(method, arg);
  }

  /**
   * Runs one event like Kong's bridge_loop: HandleEvent, then answer each PDK call until "ret".
   * Answers are looked up by method name; results go back through the Step method Kong would use
   * (StepMultiMap for header/query maps with fix_mmap applied, StepError for `{error}` answers...).
   * Errors of HandleEvent / Step calls are thrown as RpcError.
   */
  async runEvent(instanceId: number, eventName: string, answers: PdkAnswers = {}, opts: RunEventOptions = {}): Promise<EventResult> {
    const policy = opts.onUnknownMethod ?? 'step-error';
    const maxSteps = opts.maxSteps ?? 10_000;
    const t0 = performance.now();
    const calls: PdkCall[] = [];
    let roundTrips = 1;
    let step = await this.handleEvent(instanceId, eventName);
    const eventId = step.EventId;
    const done = (completed: boolean, abandoned: boolean): EventResult => ({
      instanceId,
      eventId,
      eventName,
      calls,
      roundTrips,
      durationMs: performance.now() - t0,
      completed,
      abandoned,
    });
    while (step.Data !== 'ret') {
      if (calls.length >= maxSteps) throw new Error(`kong-driver: more than ${maxSteps} PDK calls in one event`);
      const data = step.Data;
      if (!isPdkCallRequest(data)) {
        throw new Error(`kong-driver: unexpected step Data ${JSON.stringify(data)}`);
      }
      const method = data.Method;
      const args = Array.isArray(data.Args) ? data.Args : data.Args === undefined || data.Args === null ? [] : [data.Args];
      const call: PdkCall = { method, args, at: performance.now() - t0 };
      calls.push(call);
      if (NON_RETURN_METHODS.has(method)) return { ...done(false, false), exit: { method, args } };
      const ctx: PdkCallContext = { eventId, index: calls.length - 1, method };
      let stepMethod: StepMethod;
      let reply: unknown;
      if (!Object.prototype.hasOwnProperty.call(answers, method)) {
        if (policy === 'abandon') return done(false, true);
        if (policy === 'nil') {
          stepMethod = 'plugin.Step';
          reply = undefined;
        } else {
          stepMethod = 'plugin.StepError';
          reply = `method not available in log phase: ${method}`;
        }
      } else {
        const entry = answers[method];
        let value: unknown;
        try {
          value = typeof entry === 'function' ? await (entry as (a: unknown[], c: PdkCallContext) => unknown)(args, ctx) : entry;
        } catch (e) {
          value = pdkError((e as Error).message);
        }
        if (value instanceof RawStep) {
          stepMethod = value.method;
          reply = value.data;
        } else if (isPdkError(value)) {
          stepMethod = 'plugin.StepError';
          reply = value.error;
        } else {
          if (method === 'kong.log.serialize' && value !== null && value !== undefined && typeof value !== 'string') {
            value = cjsonEncode(value); // exposed_api: cjson_encode(saved.serialize_data)
          }
          if (MULTIMAP_METHODS.has(method)) value = fixMultiMap(value);
          stepMethod = TYPED_STEP_METHODS[method] ?? 'plugin.Step';
          reply = value;
        }
      }
      call.stepMethod = stepMethod;
      if (stepMethod === 'plugin.StepError') call.error = String(reply);
      else call.answer = reply;
      roundTrips++;
      step = await this.step(stepMethod, eventId, reply);
    }
    return done(true, false);
  }

  /** `runEvent(instanceId, "log", answers)`. */
  runLogEvent(instanceId: number, answers: PdkAnswers = {}, opts: RunEventOptions = {}): Promise<EventResult> {
    return this.runEvent(instanceId, 'log', answers, opts);
  }

  /** See the standalone {@link simulateWorkers}. */
  simulateWorkers(n: number, name: string, config: Record<string, unknown>, opts: SimulateWorkersOptions = {}): Promise<KongInstance[]> {
    return simulateWorkers(this, n, name, config, opts);
  }

  /** Closes pooled connections (and forks). In-flight calls fail. */
  async close(): Promise<void> {
    this.closed = true;
    for (const f of this.forks) await f.close();
    for (const c of [...this.open]) c.destroy();
    this.idle.length = 0;
    for (const w of this.waiters.splice(0)) w();
  }
}

/** Stand-alone form of {@link KongRpcClient.runLogEvent}. */
export function runLogEvent(client: KongRpcClient, instanceId: number, answers: PdkAnswers = {}, opts: RunEventOptions = {}): Promise<EventResult> {
  return client.runLogEvent(instanceId, answers, opts);
}

// ---------------------------------------------------------------------------------------------
// Kong-side instance management
// ---------------------------------------------------------------------------------------------

export interface KongPluginMeta {
  /** plugin entity id (Kong keys its instance cache by it) */
  pluginId?: string;
  wsId?: string;
  routeId?: string;
  serviceId?: string;
  consumerId?: string;
  instanceName?: string;
  /** `__seq__`: Kong draws one per worker from a shared counter */
  seq?: number;
}

export const DEFAULT_WS_ID = '0dc6f45b-8f8d-40d2-a504-473544ee190b';
export const DEFAULT_PLUGIN_ID = '8f1c6f0e-6f7a-4c55-9d5b-3a3f6a1b2c01';

/**
 * The config table Kong JSON-encodes for StartInstance (plugins_iterator.lua get_plugin_config):
 * the plugin's own config plus `route_id`/`service_id`/`consumer_id` (when scoped),
 * `plugin_instance_name`, `__plugin_id`, `__ws_id`, `__key__` and `__seq__`.
 */
export function kongPluginConfig(name: string, config: Record<string, unknown>, meta: KongPluginMeta = {}): Record<string, unknown> {
  const wsId = meta.wsId ?? DEFAULT_WS_ID;
  const cfg: Record<string, unknown> = { ...config };
  if (meta.routeId !== undefined) cfg.route_id = meta.routeId;
  if (meta.serviceId !== undefined) cfg.service_id = meta.serviceId;
  if (meta.consumerId !== undefined) cfg.consumer_id = meta.consumerId;
  if (meta.instanceName !== undefined) cfg.plugin_instance_name = meta.instanceName;
  cfg.__plugin_id = meta.pluginId ?? DEFAULT_PLUGIN_ID;
  cfg.__ws_id = wsId;
  cfg.__key__ = `plugins:${name}:${meta.routeId ?? ''}:${meta.serviceId ?? ''}:${meta.consumerId ?? ''}::${wsId}`;
  cfg.__seq__ = meta.seq ?? 0;
  return cfg;
}

/** Links the KongInstances of several workers like Kong's worker_events "reset_instances". */
export class WorkerGroup {
  readonly members: KongInstance[] = [];
  /** broadcast: every worker drops its cached instance ids for the plugin (old ids are NOT closed) */
  resetAll(pluginName: string): void {
    for (const m of this.members) if (m.pluginName === pluginName) m.reset();
  }
}

export interface KongInstanceOptions {
  /** worker number (for reports) */
  worker?: number;
  /** Retries after "no plugin instance" (Kong: unbounded recursion; default here: 1) */
  maxRetries?: number;
  /** Send the config decorated like Kong (default true); false sends `config` as-is */
  kongMeta?: boolean | KongPluginMeta;
  group?: WorkerGroup;
}

export interface InstanceEventResult extends EventResult {
  /** "no plugin instance" retries that happened */
  retries: number;
  /** errors that caused retries */
  retryErrors: string[];
}

/**
 * One worker's view of one plugin configuration, like Kong's running_instances entry +
 * get_instance_id / reset_instance: starts the instance lazily (concurrent callers share one
 * StartInstance), and on an error containing "no plugin instance" drops the id, starts a new
 * instance and retries the event.
 */
export class KongInstance {
  readonly client: KongRpcClient;
  readonly pluginName: string;
  readonly worker: number;
  readonly history = { started: [] as number[], closed: [] as number[], retries: 0, errors: [] as string[] };
  private cfg: Record<string, unknown>;
  private sentCfg: Record<string, unknown>;
  private instanceId: number | undefined;
  private starting: Promise<number> | undefined;
  private readonly maxRetries: number;
  private readonly meta: KongPluginMeta | undefined;
  private readonly group: WorkerGroup | undefined;

  constructor(client: KongRpcClient, pluginName: string, config: Record<string, unknown>, opts: KongInstanceOptions = {}) {
    this.client = client;
    this.pluginName = pluginName;
    this.worker = opts.worker ?? 0;
    this.maxRetries = opts.maxRetries ?? 1;
    this.meta = opts.kongMeta === false ? undefined : opts.kongMeta === true || opts.kongMeta === undefined ? {} : opts.kongMeta;
    this.group = opts.group;
    this.group?.members.push(this);
    this.cfg = config;
    this.sentCfg = this.decorate(config);
  }

  private decorate(config: Record<string, unknown>): Record<string, unknown> {
    return this.meta ? kongPluginConfig(this.pluginName, config, this.meta) : config;
  }

  /** The plugin config (undecorated). */
  get config(): Record<string, unknown> {
    return this.cfg;
  }

  /** The exact config object sent in StartInstance (JSON-encoded). */
  get sentConfig(): Record<string, unknown> {
    return this.sentCfg;
  }

  /** Current cached instance id, if any. */
  get id(): number | undefined {
    return this.instanceId;
  }

  /** get_instance_id: the cached id, or StartInstance once (shared by concurrent callers). */
  ensureStarted(): Promise<number> {
    if (this.instanceId !== undefined) return Promise.resolve(this.instanceId);
    if (!this.starting) {
      this.starting = this.client
        .startInstance(this.pluginName, this.sentCfg)
        .then((st) => {
          this.instanceId = st.Id;
          this.history.started.push(st.Id);
          return st.Id;
        })
        .finally(() => {
          this.starting = undefined;
        });
    }
    return this.starting;
  }

  /** reset_instance for this worker only: forget the id (the server-side instance is not closed). */
  reset(): void {
    this.instanceId = undefined;
  }

  /** Runs an event through Kong's handle_event logic (with the "no plugin instance" retry). */
  async runEvent(eventName: string, answers: PdkAnswers = {}, opts: RunEventOptions = {}): Promise<InstanceEventResult> {
    const retryErrors: string[] = [];
    for (let attempt = 0; ; attempt++) {
      try {
        const id = await this.ensureStarted();
        const r = await this.client.runEvent(id, eventName, answers, opts);
        return { ...r, retries: attempt, retryErrors };
      } catch (e) {
        const msg = (e as Error).message;
        this.history.errors.push(msg);
        if (msg.toLowerCase().includes('no plugin instance') && attempt < this.maxRetries) {
          retryErrors.push(msg);
          this.history.retries++;
          if (this.group) this.group.resetAll(this.pluginName);
          else this.reset();
          continue;
        }
        throw e;
      }
    }
  }

  runLogEvent(answers: PdkAnswers = {}, opts: RunEventOptions = {}): Promise<InstanceEventResult> {
    return this.runEvent('log', answers, opts);
  }

  /** InstanceStatus of the cached id. */
  status(): Promise<InstanceStatus> {
    if (this.instanceId === undefined) return Promise.reject(new Error('kong-driver: instance not started'));
    return this.client.instanceStatus(this.instanceId);
  }

  /**
   * A configuration change (Kong sees a new `__seq__`): start a new instance with the new config,
   * then CloseInstance the old id, ignoring errors, as get_instance_id does.
   */
  async reconfigure(config: Record<string, unknown>, meta: KongPluginMeta = {}): Promise<number> {
    const old = this.instanceId;
    this.cfg = config;
    if (this.meta) Object.assign(this.meta, meta);
    this.sentCfg = this.decorate(config);
    this.instanceId = undefined;
    const id = await this.ensureStarted();
    if (old !== undefined) {
      await this.client.closeInstance(old).then(
        () => this.history.closed.push(old),
        () => undefined,
      );
    }
    return id;
  }

  /** CloseInstance the cached id (if any) and forget it. */
  async close(): Promise<void> {
    const id = this.instanceId;
    this.instanceId = undefined;
    if (id !== undefined) {
      await this.client.closeInstance(id);
      this.history.closed.push(id);
    }
  }
}

export interface SimulateWorkersOptions {
  /** Each worker gets its own forked client (own pool + msgid), as nginx workers do. Default true. */
  separateClients?: boolean;
  /** Kong metadata for the decorated config; each worker gets `__seq__ = seqBase + worker` */
  kongMeta?: KongPluginMeta | false;
  /** first `__seq__` (default 1) */
  seqBase?: number;
  maxRetries?: number;
  /** Link the workers so one "no plugin instance" resets all of them (Kong's worker event). Default true. */
  linked?: boolean;
}

/**
 * N nginx workers using the same plugin configuration: N StartInstance calls (concurrently) for
 * the same config. Kong decorates each worker's config with its own `__seq__`, so the JSON the
 * server receives differs per worker only by `__seq__`.
 */
export async function simulateWorkers(
  client: KongRpcClient,
  n: number,
  name: string,
  config: Record<string, unknown>,
  opts: SimulateWorkersOptions = {},
): Promise<KongInstance[]> {
  const group = opts.linked === false ? undefined : new WorkerGroup();
  const seqBase = opts.seqBase ?? 1;
  const workers: KongInstance[] = [];
  for (let w = 0; w < n; w++) {
    const c = opts.separateClients === false ? client : client.fork();
    workers.push(
      new KongInstance(c, name, config, {
        worker: w,
        ...(opts.maxRetries !== undefined ? { maxRetries: opts.maxRetries } : {}),
        kongMeta: opts.kongMeta === false ? false : { ...(opts.kongMeta ?? {}), seq: seqBase + w },
        ...(group ? { group } : {}),
      }),
    );
  }
  await Promise.all(workers.map((k) => k.ensureStarted()));
  return workers;
}

/** Waits for a child exit or a timeout; convenience for crash tests. */
export async function waitForExit(ps: PluginServerProcess, timeoutMs: number): Promise<ExitInfo | undefined> {
  const exited = ps.exited();
  const t = sleep(timeoutMs).then(() => undefined);
  return Promise.race([exited, t]);
}
