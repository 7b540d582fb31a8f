#!/usr/bin/env node
// Evaluation of the npm package immudb-node 1.1.1 against a real immudb v1.11.1 server.
//
//   cd bench/eval-immudb-node && npm ci && node eval.cjs   (Node 24: see docs/evaluation-immudb-node.md)
//
// Starts its own immudb on a free loopback port with a temporary data directory, creates a
// second database that writes tx header version 0 (immuadmin, private HOME/token file), runs
// the checks below and prints one measured outcome per check, then a JSON summary (also written
// to results.json). Everything is bounded: each library call gets a timeout (a call that never
// settles is reported as "pending"), a watchdog ends the run after 100 s, and the server and
// temporary directories are removed on every exit path.
//
// Environment: IMMUDB_BIN_DIR (directory with immudb and immuadmin; default: the output of
// ../../scripts/install-immudb.sh), EVAL_OP_TIMEOUT_MS (per call, default 4000).
//
// A "lying server" is simulated by an interceptor on the library's own gRPC stub: the request
// or the deserialized response is altered between the wire and the library's verification code,
// which is what a malicious server (or a proxy in front of it) can send. The library code that
// is being evaluated runs unchanged.
'use strict';

const { spawn, spawnSync, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const crypto = require('node:crypto');
const util = require('node:util');

const HERE = __dirname;
const REPO = path.resolve(HERE, '../..');
const OP_TIMEOUT_MS = Number(process.env.EVAL_OP_TIMEOUT_MS || 4000);
const ADMIN_PASSWORD = 'Eval-Pw1!'; // not "immudb": immuadmin login would then prompt for a change

// ---------------------------------------------------------------------------------------------
// Child modes: run in a fresh process so that process-wide state is observed cleanly.
// ---------------------------------------------------------------------------------------------
function counts() {
  return {
    exit: process.listenerCount('exit'),
    SIGINT: process.listenerCount('SIGINT'),
    uncaughtException: process.listenerCount('uncaughtException'),
  };
}

async function child(mode) {
  const out = (o) => process.stdout.write('RESULT ' + JSON.stringify(o) + '\n');
  if (mode === 'listeners') {
    const before = counts();
    const envBefore = process.env.EVAL_DOTENV_PROBE;
    const Client = require('immudb-node').default;
    const afterRequire = counts();
    const envAfter = process.env.EVAL_DOTENV_PROBE;
    new Client({ host: '127.0.0.1', port: '1' }); // default rootPath: ./root
    const afterFirstClient = counts();
    new Client({ host: '127.0.0.1', port: '1', rootPath: 'root2' });
    const afterSecondClient = counts();
    for (let i = 3; i <= 11; i++) new Client({ host: '127.0.0.1', port: '1', rootPath: 'root2' });
    const afterEleventhClient = counts();
    await new Promise((r) => setImmediate(r)); // let process warnings print
    out({ before, afterRequire, afterFirstClient, afterSecondClient, afterEleventhClient, envBefore: envBefore ?? null, envAfter: envAfter ?? null });
    process.exit(0); // the library's 'exit' handler runs now and writes its state file(s)
  }
  if (mode === 'uncaught' || mode === 'uncaught-control') {
    if (mode === 'uncaught') {
      const Client = require('immudb-node').default;
      new Client({ host: '127.0.0.1', port: '1', rootPath: 'root' });
    }
    setTimeout(() => {
      throw new Error('eval-boom');
    }, 10);
    setTimeout(() => {
      process.stdout.write('STILL-ALIVE-AFTER-UNCAUGHT-EXCEPTION\n');
      process.exit(0);
    }, 800);
    return;
  }
  if (mode === 'sigint' || mode === 'sigint-control') {
    if (mode === 'sigint') {
      const Client = require('immudb-node').default;
      new Client({ host: '127.0.0.1', port: '1', rootPath: 'root' });
    }
    setTimeout(() => process.kill(process.pid, 'SIGINT'), 10);
    setTimeout(() => {
      process.stdout.write('STILL-ALIVE-AFTER-SIGINT\n');
      process.exit(0);
    }, 800);
    return;
  }
  if (mode === 'loginfail') {
    const Client = require('immudb-node').default;
    setTimeout(() => {
      process.stdout.write('TIMEOUT\n');
      process.exit(4);
    }, 8000).unref();
    try {
      await Client.getInstance({
        host: process.env.EVAL_HOST,
        port: process.env.EVAL_PORT,
        user: 'immudb',
        password: 'wrong-password',
        rootPath: 'state.json',
      });
      process.stdout.write('AFTER-GETINSTANCE-RESOLVED\n');
    } catch (e) {
      process.stdout.write('AFTER-GETINSTANCE-REJECTED ' + String(e && e.message) + '\n');
    }
    process.exit(3);
  }
  throw new Error('unknown child mode ' + mode);
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------
const say = (s) => process.stdout.write(s + '\n');
const hex = (u8) => (u8 ? Buffer.from(u8).toString('hex') : u8);
const short = (s, n = 240) => {
  s = String(s).replace(/\s+/g, ' ');
  return s.length > n ? s.slice(0, n) + '…' : s;
};

/** Captures console output of the library during fn (it reports most failures only there). */
async function captured(fn) {
  const lines = [];
  const saved = { log: console.log, error: console.error, warn: console.warn };
  const grab = (tag) => (...a) => lines.push(tag + ' ' + short(util.format(...a), 300));
  console.log = grab('log:');
  console.error = grab('error:');
  console.warn = grab('warn:');
  try {
    return { value: await fn(), lines };
  } finally {
    Object.assign(console, saved);
  }
}

/** Runs one library call, bounded: outcome is resolved / rejected / pending (never settled). */
async function attempt(fn, timeoutMs = OP_TIMEOUT_MS) {
  const t0 = Date.now();
  const { value, lines } = await captured(
    () =>
      new Promise((res) => {
        const timer = setTimeout(() => res({ outcome: 'pending', note: `not settled after ${timeoutMs} ms` }), timeoutMs);
        let p;
        try {
          p = Promise.resolve(fn());
        } catch (e) {
          clearTimeout(timer);
          return res({ outcome: 'threw', reason: describe(e) });
        }
        p.then(
          (v) => {
            clearTimeout(timer);
            res({ outcome: 'resolved', value: v === undefined ? 'undefined' : summarize(v) });
          },
          (e) => {
            clearTimeout(timer);
            res({ outcome: 'rejected', reason: describe(e) });
          },
        );
      }),
  );
  return { ...value, ms: Date.now() - t0, log: lines };
}

function describe(e) {
  if (e === undefined) return 'undefined (rejected without a reason)';
  if (e === null) return 'null (rejected without a reason)';
  if (e instanceof Error) return short(`${e.constructor.name}: ${e.message}${e.code !== undefined ? ` (code ${e.code})` : ''}`);
  return short(typeof e === 'string' ? e : util.inspect(e, { depth: 2 }));
}

function summarize(v) {
  const o = {};
  for (const [k, val] of Object.entries(v)) {
    if (val instanceof Uint8Array) o[k] = hex(val);
    else if (typeof val === 'string' && val.length > 80) o[k] = val.slice(0, 80) + '…';
    else if (val && typeof val === 'object') o[k] = short(JSON.stringify(val, (_, x) => (x instanceof Uint8Array ? hex(x) : x)), 120);
    else o[k] = val;
  }
  return o;
}

function freePort() {
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

async function waitForPort(port, proc, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`immudb exited with code ${proc.exitCode}`);
    const ok = await new Promise((r) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => (s.destroy(), r(true)));
      s.on('error', () => r(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error('immudb did not listen in time');
    await new Promise((r) => setTimeout(r, 100));
  }
}

// Minimal protobuf wire reader, to see what the server really sends (fields the library's
// generated classes do not know are dropped by google-protobuf before the library sees them).
function pbFields(buf) {
  const out = [];
  let i = 0;
  const varint = () => {
    let r = 0n;
    let s = 0n;
    for (;;) {
      const b = buf[i++];
      r |= BigInt(b & 0x7f) << s;
      if (!(b & 0x80)) return r;
      s += 7n;
    }
  };
  while (i < buf.length) {
    const key = Number(varint());
    const field = key >>> 3;
    const wt = key & 7;
    if (wt === 0) out.push({ field, wt, value: varint() });
    else if (wt === 2) {
      const len = Number(varint());
      out.push({ field, wt, value: buf.subarray(i, i + len) });
      i += len;
    } else if (wt === 1) (out.push({ field, wt, value: buf.subarray(i, i + 8) }), (i += 8));
    else if (wt === 5) (out.push({ field, wt, value: buf.subarray(i, i + 4) }), (i += 4));
    else throw new Error('unsupported wire type ' + wt);
  }
  return out;
}
const pbGet = (fields, n) => fields.filter((f) => f.field === n);

/** What the server sent in a VerifiableTx (VerifiableSet / VerifiableTxById response). */
function inspectVerifiableTx(buf) {
  const vt = pbFields(buf);
  const tx = pbGet(vt, 1)[0];
  const dp = pbGet(vt, 2)[0];
  const r = {};
  if (tx) {
    const hdr = pbGet(pbFields(tx.value), 1)[0];
    if (hdr) {
      const h = pbFields(hdr.value);
      r.txId = Number((pbGet(h, 1)[0] || { value: 0n }).value);
      r.txHeaderVersion = Number((pbGet(h, 8)[0] || { value: 0n }).value); // field 8: version (absent = 0)
      r.txHeaderHasMetadataField9 = pbGet(h, 9).length > 0;
    }
  }
  if (dp) r.dualProof = inspectDualProof(dp.value);
  return r;
}
function inspectDualProof(buf) {
  const d = pbFields(buf);
  const th = pbGet(d, 2)[0];
  const sh = pbGet(d, 1)[0];
  const hdr = (x) => {
    if (!x) return undefined;
    const h = pbFields(x.value);
    return { id: Number((pbGet(h, 1)[0] || { value: 0n }).value), blTxId: Number((pbGet(h, 6)[0] || { value: 0n }).value), version: Number((pbGet(h, 8)[0] || { value: 0n }).value) };
  };
  const lap = pbGet(d, 8)[0];
  let linearAdvanceProof = 'absent';
  if (lap) {
    const l = pbFields(lap.value);
    linearAdvanceProof = { linearProofTerms: pbGet(l, 1).length, inclusionProofs: pbGet(l, 2).length };
  }
  return { sourceTxHeader: hdr(sh), targetTxHeader: hdr(th), field8_LinearAdvanceProof: linearAdvanceProof };
}
/** VerifiableEntry (VerifiableGet response): field 2 is a VerifiableTx. */
function inspectVerifiableEntry(buf) {
  const ve = pbFields(buf);
  const vtx = pbGet(ve, 2)[0];
  return vtx ? inspectVerifiableTx(vtx.value) : {};
}

// ---------------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------------
async function main() {
  const results = { startedAt: new Date().toISOString(), node: process.version, checks: {} };
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'eval-immudb-node-'));
  let server;
  const clients = [];
  let cleaned = false;
  const cleanup = async () => {
    if (cleaned) return;
    cleaned = true;
    for (const c of clients) {
      try {
        c.client.close();
      } catch {}
    }
    if (server && server.exitCode === null && server.signalCode === null) {
      await new Promise((res) => {
        const t = setTimeout(() => server.kill('SIGKILL'), 5000);
        server.once('exit', () => (clearTimeout(t), res()));
        server.kill('SIGTERM');
      });
    }
    fs.rmSync(tmp, { recursive: true, force: true });
  };
  const watchdog = setTimeout(() => {
    say('WATCHDOG: run exceeded 100 s, aborting');
    cleanup().finally(() => process.exit(2));
  }, 100_000);
  // The library's own SIGINT handlers (check 6) would otherwise make Ctrl-C a no-op for this run.
  for (const sig of ['SIGINT', 'SIGTERM']) process.once(sig, () => (say(`${sig}: cleaning up`), cleanup().finally(() => process.exit(130))));

  try {
    // --- 1. install and load on Node 24 ------------------------------------------------------
    say(`== 1. install and load (Node ${process.version})`);
    const warnings = [];
    process.on('warning', (w) => warnings.push(`${w.name}: ${w.message}`));
    const pkg = require('immudb-node/package.json');
    const grpcPkgPath = require.resolve('@grpc/grpc-js/package.json', { paths: [path.dirname(require.resolve('immudb-node'))] });
    const grpcVersion = require(grpcPkgPath).version;
    const listenersBeforeRequire = counts();
    let Client;
    const load = await attempt(() => {
      Client = require('immudb-node').default;
      return { loaded: typeof Client };
    });
    const listenersAfterRequire = counts();
    const dts = fs.readFileSync(path.join(path.dirname(require.resolve('immudb-node')), 'state.d.ts'), 'utf8');
    let grpcPkgInstalled = true;
    try {
      require.resolve('grpc');
    } catch {
      grpcPkgInstalled = false;
    }
    results.checks.load = {
      immudbNode: pkg.version,
      grpcJsResolved: grpcVersion,
      pinnedDependencies: pkg.dependencies,
      require: load,
      dtsImportsOldGrpcPackage: /from 'grpc'/.test(dts),
      oldGrpcPackageInstalled: grpcPkgInstalled,
    };
    say(`   immudb-node ${pkg.version}, @grpc/grpc-js resolved ${grpcVersion}; require: ${load.outcome}`);
    say(`   .d.ts imports 'grpc': ${results.checks.load.dtsImportsOldGrpcPackage}; 'grpc' installed: ${grpcPkgInstalled}`);
    results.checks.load.typecheck = typecheckProbe();
    say(`   ${results.checks.load.typecheck.typescript || 'tsc'}: ${results.checks.load.typecheck.summary}`);
    if (results.checks.load.typecheck.grpcImportError) say(`      e.g. ${results.checks.load.typecheck.grpcImportError}`);
    if (results.checks.load.typecheck.schemaPbDts) say(`      dist/src/proto/schema_pb.d.ts (types of all messages) is: ${results.checks.load.typecheck.schemaPbDts}`);

    // --- server --------------------------------------------------------------------------------
    const binDir =
      process.env.IMMUDB_BIN_DIR ||
      execFileSync('bash', [path.join(REPO, 'scripts/install-immudb.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
        .trim()
        .split('\n')
        .pop();
    let immudbVersion = execFileSync(path.join(binDir, 'immudb'), ['version'], { encoding: 'utf8' }).trim().split('\n')[0];
    try {
      // binaries built by scripts/install-immudb.sh carry no version string; the module version is in the build info
      const m = execFileSync('go', ['version', '-m', path.join(binDir, 'immudb')], { encoding: 'utf8' }).match(/mod\s+github\.com\/codenotary\/immudb\s+(\S+)/);
      if (m) immudbVersion = `immudb ${m[1]} (go build info; 'immudb version' says: ${immudbVersion})`;
    } catch {}
    const port = await freePort();
    const dataDir = path.join(tmp, 'server');
    fs.mkdirSync(dataDir);
    const logFd = fs.openSync(path.join(tmp, 'server.log'), 'a');
    server = spawn(
      path.join(binDir, 'immudb'),
      ['--dir', dataDir, '--address', '127.0.0.1', '--port', String(port), '--admin-password', ADMIN_PASSWORD, '--force-admin-password',
        '--metrics-server=false', '--pgsql-server=false', '--web-server=false', '--logdir', tmp],
      { stdio: ['ignore', logFd, logFd], cwd: tmp },
    );
    fs.closeSync(logFd);
    await waitForPort(port, server, 30_000);
    results.server = { version: immudbVersion, address: `127.0.0.1:${port}` };
    say(`== server: ${immudbVersion} on 127.0.0.1:${port}`);

    // database writing tx header version 0, created with immuadmin (private HOME and token file)
    const home = path.join(tmp, 'home');
    fs.mkdirSync(home);
    const adminEnv = { ...process.env, HOME: home };
    const adminArgs = ['-a', '127.0.0.1', '-p', String(port), '--tokenfile', path.join(home, 'token')];
    execFileSync(path.join(binDir, 'immuadmin'), ['login', 'immudb', ...adminArgs], { input: ADMIN_PASSWORD, env: adminEnv, cwd: home, stdio: ['pipe', 'pipe', 'pipe'] });
    const created = execFileSync(path.join(binDir, 'immuadmin'), ['database', 'create', 'v0db', '--write-tx-header-version', '0', ...adminArgs], { env: adminEnv, cwd: home, encoding: 'utf8' });
    say(`   immuadmin: ${created.trim()}`);
    results.server.v0db = created.trim();

    const schemaPb = require('immudb-node/dist/src/proto/schema_pb');
    const { ImmuServiceService } = require('immudb-node/dist/src/proto/schema_grpc_pb');
    const libUtil = require('immudb-node/dist/src/util');
    const { Empty } = require('google-protobuf/google/protobuf/empty_pb');

    const tamperErrors = [];
    // Exceptions thrown inside gRPC callbacks reach 'uncaughtException'; the library's own handler
    // swallows them (check 6). This extra listener only records them, so the report can show them.
    const uncaught = [];
    process.on('uncaughtException', (e) => uncaught.push(short(e && e.stack ? e.stack : String(e), 400)));
    /** Replaces one method of the library's gRPC stub: raw response capture and tampering. */
    function tap(ic, method, { onRaw, rawTransform, mutateRequest, mutateResponse } = {}) {
      const def = ImmuServiceService[method];
      const stub = ic.client;
      const orig = stub[method];
      stub[method] = function (req, md, cb) {
        if (mutateRequest) mutateRequest(req); // mutates in place
        return stub.makeUnaryRequest(
          def.path,
          def.requestSerialize,
          (buf) => {
            if (rawTransform) buf = rawTransform(buf);
            if (onRaw) onRaw(buf);
            return def.responseDeserialize(buf);
          },
          req,
          md,
          (err, res) => {
            if (!err && res && mutateResponse) {
              try {
                mutateResponse(res); // mutates in place
              } catch (e) {
                tamperErrors.push(`${method}: ${e && e.stack}`);
              }
            }
            cb(err, res);
          },
        );
      };
      return () => {
        stub[method] = orig;
      };
    }

    const rawCall = (ic, method, req) =>
      new Promise((res, rej) => ic.client[method](req, ic._metadata, (e, r) => (e ? rej(e) : res(r))));
    /** The server's current state, read without the library's state service. */
    async function serverState(ic) {
      const s = await rawCall(ic, 'currentState', new Empty());
      return { db: s.getDb(), txid: s.getTxid(), txhash: hex(s.getTxhash_asU8()) };
    }
    /** The library's persisted trusted state (its JSON state file). */
    function stateFile(file) {
      if (!fs.existsSync(file)) return '(no file)';
      const j = JSON.parse(fs.readFileSync(file, 'utf8'));
      const o = {};
      for (const [srv, dbs] of Object.entries(j)) for (const [db, st] of Object.entries(dbs)) o[`${srv}/${db}`] = { txid: st.txid, txhash: hex(Uint8Array.from(st.txhash)) };
      return o;
    }

    async function connect(db, stateName) {
      const rootPath = path.join(tmp, stateName);
      const ic = new Client({ host: '127.0.0.1', port: String(port), rootPath });
      clients.push(ic);
      const login = await attempt(() => ic.login({ user: 'immudb', password: ADMIN_PASSWORD }));
      const use = await attempt(() => ic.useDatabase({ databasename: db }));
      const health = await attempt(() => ic.health());
      return { ic, rootPath, login, use, health };
    }

    // --- 1b. login / useDatabase / server identity ---------------------------------------------
    const def = await connect('defaultdb', 'state-defaultdb.json');
    const header = await new Promise((res) => {
      const call = def.ic.client.health(new Empty(), def.ic._metadata, () => {});
      call.on('metadata', (m) => res(m.get('immudb-uuid')[0]));
      setTimeout(() => res('(no metadata event)'), 2000);
    });
    results.checks.session = {
      login: def.login.outcome,
      loginError: def.login.reason,
      useDatabase: def.use.outcome,
      health: def.health,
      libraryServerUUID: def.ic._serverUUID === undefined ? 'undefined' : def.ic._serverUUID,
      serverSendsImmudbUuidHeader: header,
    };
    say(`   login: ${def.login.outcome}; useDatabase(defaultdb): ${def.use.outcome}; health: ${def.health.outcome} ${JSON.stringify(def.health.value || def.health.reason)}`);
    say(`   server sends immudb-uuid header: ${header}; library's _serverUUID after health(): ${results.checks.session.libraryServerUUID}`);

    // --- 2 and 3. verified calls on a v1 (default) and a v0 database ---------------------------
    async function verifiedRound(conn, label) {
      const { ic, rootPath } = conn;
      const r = {};
      for (let i = 0; i < 3; i++) await attempt(() => ic.set({ key: `plain:${i}`, value: `v${i}` }));
      const raw = {};
      const untapS = tap(ic, 'verifiableSet', { onRaw: (b) => (raw.verifiableSet = inspectVerifiableTx(b)) });
      r.verifiedSet = await attempt(() => ic.verifiedSet({ key: 'audit:1', value: '{"who":"alice"}' }));
      untapS();
      r.stateAfterVerifiedSet = stateFile(rootPath);
      r.serverStateAfterVerifiedSet = await serverState(ic);
      const g = await attempt(() => ic.get({ key: 'audit:1' }));
      r.plainGet = g;
      const txOfKey = g.value && g.value.tx;
      const untapG = tap(ic, 'verifiableGet', { onRaw: (b) => (raw.verifiableGet = inspectVerifiableEntry(b)) });
      r.verifiedGet = await attempt(() => ic.verifiedGet({ key: 'audit:1' }));
      untapG();
      const untapT = tap(ic, 'verifiableTxById', { onRaw: (b) => (raw.verifiableTxById = inspectVerifiableTx(b)) });
      r.verifiedTxById = await attempt(() => ic.verifiedTxById({ tx: txOfKey }));
      untapT();
      r.stateAfterAll = stateFile(rootPath);
      r.serverStateAfterAll = await serverState(ic);
      r.serverSent = raw;
      say(`== ${label}`);
      for (const k of ['verifiedSet', 'verifiedGet', 'verifiedTxById']) {
        const a = r[k];
        say(`   ${k}: ${a.outcome}${a.reason ? ' — reason: ' + a.reason : ''}${a.value ? ' — ' + short(JSON.stringify(a.value), 160) : ''}`);
        for (const l of a.log.filter((x) => x.startsWith('error:'))) say(`      ${l}`);
      }
      say(`   server sent: tx header version ${raw.verifiableSet && raw.verifiableSet.txHeaderVersion}; VerifiableSet dual proof LinearAdvanceProof: ${JSON.stringify(raw.verifiableSet && raw.verifiableSet.dualProof && raw.verifiableSet.dualProof.field8_LinearAdvanceProof)}`);
      say(`   library trusted state after the calls: ${JSON.stringify(r.stateAfterAll)}`);
      say(`   server state                         : ${JSON.stringify(r.serverStateAfterAll)}`);
      return r;
    }
    results.checks.v1DefaultDb = await verifiedRound(def, '2. verified calls, defaultdb (tx header v1)');
    const v0 = await connect('v0db', 'state-v0db.json');
    results.checks.v0Db = await verifiedRound(v0, '3. verified calls, v0db (created with --write-tx-header-version 0)');
    results.checks.v0Db.session = { login: v0.login.outcome, useDatabase: v0.use.outcome };

    // --- 4. failed verification vs trusted state; lying server ---------------------------------
    say('== 4. lying server (responses altered at the library gRPC stub), v0db');
    const lies = {};

    // 4a. forged target header in a VerifiableGet response (timestamp +1): the dual proof must fail;
    //     does the library still store the forged Alh as its trusted state?
    {
      const c = await connect('v0db', 'state-4a.json');
      await attempt(() => c.ic.verifiedGet({ key: 'audit:1' })); // establishes the trusted state honestly
      const trustedBefore = stateFile(c.rootPath);
      await attempt(() => c.ic.set({ key: 'audit:2', value: '{"who":"bob"}' }));
      let genuineAlh;
      let forgedAlh;
      const untap = tap(c.ic, 'verifiableGet', {
        mutateResponse: (res) => {
          const tm = res.getVerifiabletx().getDualproof().getTargettxmetadata();
          genuineAlh = hex(libUtil.getAlh(tm));
          tm.setTs(tm.getTs() + 1);
          forgedAlh = hex(libUtil.getAlh(tm));
        },
      });
      const forged = await attempt(() => c.ic.verifiedGet({ key: 'audit:2' }));
      untap();
      const trustedAfter = stateFile(c.rootPath);
      const srv = await serverState(c.ic);
      const honestAfter = await attempt(() => c.ic.verifiedGet({ key: 'audit:2' }));
      const trustedAfterHonest1 = stateFile(c.rootPath);
      const honestAfter2 = await attempt(() => c.ic.verifiedTxById({ tx: srv.txid }));
      const trustedAfterHonest2 = stateFile(c.rootPath);
      const stored = Object.values(trustedAfter)[0] || {};
      lies.forgedHeaderInVerifiedGet = {
        trustedBefore,
        forgedCall: forged,
        genuineAlh,
        forgedAlh,
        trustedAfter,
        serverState: srv,
        storedHashIsForged: stored.txhash === forgedAlh,
        honestVerifiedGetAfterwards: honestAfter,
        trustedAfterHonestVerifiedGet: trustedAfterHonest1,
        honestVerifiedTxByIdAfterwards: honestAfter2,
        trustedAfterHonestVerifiedTxById: trustedAfterHonest2,
      };
      say(`   4a forged target header in VerifiableGet: call ${forged.outcome} (${forged.reason || ''}); log: ${short(forged.log.filter((l) => l.startsWith('error:')).join(' | '), 160)}`);
      say(`      trusted state after the failed call: txid ${stored.txid}, txhash ${stored.txhash}`);
      say(`      forged Alh ${forgedAlh}; genuine Alh ${genuineAlh}; stored hash is the forged one: ${stored.txhash === forgedAlh}`);
      const h1 = Object.values(trustedAfterHonest1)[0] || {};
      say(`      next (honest) verifiedGet: ${honestAfter.outcome} (${honestAfter.reason || ''}); trusted hash after it: ${h1.txhash} (= server's genuine Alh: ${h1.txhash === srv.txhash})`);
      say(`      then (honest) verifiedTxById(${srv.txid}): ${honestAfter2.outcome}`);
    }

    // 4b. forged value in a VerifiableGet response: inclusion must fail.
    {
      const c = await connect('v0db', 'state-4b.json');
      await attempt(() => c.ic.verifiedGet({ key: 'audit:1' }));
      const untap = tap(c.ic, 'verifiableGet', {
        mutateResponse: (res) => res.getEntry().setValue(Buffer.from('{"who":"mallory"}')),
      });
      const forged = await attempt(() => c.ic.verifiedGet({ key: 'audit:1' }));
      untap();
      lies.forgedValueInVerifiedGet = { call: forged, trustedAfter: stateFile(c.rootPath), harnessErrors: tamperErrors.splice(0), uncaughtDuringCall: uncaught.splice(0) };
      say(`   4b forged value in VerifiableGet: ${forged.outcome} (${forged.reason || forged.note || JSON.stringify(forged.value)}); log: ${short(forged.log.filter((l) => l.startsWith('error:')).join(' | '), 160)}`);
      for (const u of lies.forgedValueInVerifiedGet.uncaughtDuringCall) say(`      uncaught exception inside the library's gRPC callback (swallowed by its handler): ${short(u, 300)}`);
      if (lies.forgedValueInVerifiedGet.harnessErrors.length) say(`      HARNESS ERROR: ${short(lies.forgedValueInVerifiedGet.harnessErrors.join(' | '), 400)}`);
    }

    // 4c. missing dual proof in a VerifiableSet response.
    {
      const c = await connect('v0db', 'state-4c.json');
      const untap = tap(c.ic, 'verifiableSet', { mutateResponse: (res) => res.clearDualproof() });
      const call = await attempt(() => c.ic.verifiedSet({ key: 'audit:4c', value: '{"who":"carol"}' }));
      untap();
      const untap2 = tap(c.ic, 'verifiableSet', { mutateResponse: (res) => res.getDualproof().clearTargettxmetadata() });
      const call2 = await attempt(() => c.ic.verifiedSet({ key: 'audit:4c2', value: '{"who":"carol"}' }));
      untap2();
      const u2 = uncaught.splice(0);
      const untap3 = tap(c.ic, 'verifiableSet', { mutateResponse: (res) => res.getTx().clearMetadata() });
      const call3 = await attempt(() => c.ic.verifiedSet({ key: 'audit:4c3', value: '{"who":"carol"}' }));
      untap3();
      const u3 = uncaught.splice(0);
      lies.missingDualProofInVerifiedSet = { call, missingTargetHeader: call2, uncaughtBefore: u2, missingTxHeader: call3, uncaughtMissingTxHeader: u3, trustedAfter: stateFile(c.rootPath) };
      say(`   4c VerifiableSet without dualProof: ${call.outcome} (${call.note || call.reason || ''}); log: ${short(call.log.filter((l) => l.startsWith('error:')).join(' | ') || '(nothing)', 120)}`);
      say(`      without dualProof.targetTxHeader: ${call2.outcome} (${call2.note || call2.reason || ''})`);
      say(`      without tx.header: ${call3.outcome} (${call3.note || call3.reason || ''}); uncaught inside the library's callback (swallowed by its handler): ${short(u3.join(' | ') || '(none)', 160)}`);
    }

    // 4d. a write the server never made: the server stores a decoy instead of our entry and
    //     answers with genuine headers/proofs for that tx plus a Tx whose entry list it made up.
    {
      const c = await connect('v0db', 'state-4d.json');
      await attempt(() => c.ic.verifiedGet({ key: 'audit:1' }));
      const victimValue = '{"who":"dave","what":"DELETE /accounts/7"}';
      const untap = tap(c.ic, 'verifiableSet', {
        mutateRequest: (req) => {
          const kv = req.getSetrequest().getKvsList()[0];
          kv.setKey(Buffer.from('decoy:1'));
          kv.setValue(Buffer.from('nothing to see'));
        },
        mutateResponse: (res) => {
          const e = res.getTx().getEntriesList()[0];
          e.setKey(Buffer.concat([Buffer.from([0]), Buffer.from('audit:victim')]));
          e.setHvalue(crypto.createHash('sha256').update(Buffer.concat([Buffer.from([0]), Buffer.from(victimValue)])).digest());
          e.setVlen(Buffer.byteLength(victimValue) + 1);
        },
      });
      const call = await attempt(() => c.ic.verifiedSet({ key: 'audit:victim', value: victimValue }));
      untap();
      const plainGet = await attempt(() => c.ic.get({ key: 'audit:victim' }));
      const vget = await attempt(() => c.ic.verifiedGet({ key: 'audit:victim' }));
      lies.droppedWriteAcceptedByVerifiedSet = { call, plainGetOfVictim: plainGet, verifiedGetOfVictim: vget, trustedAfter: stateFile(c.rootPath) };
      say(`   4d server stored a decoy, claimed our entry: verifiedSet ${call.outcome} ${call.value ? JSON.stringify(call.value) : call.reason || ''}`);
      say(`      library log: ${short(call.log.filter((l) => l.startsWith('error:')).join(' | '), 160)}`);
      say(`      get('audit:victim') afterwards: ${plainGet.outcome} (${plainGet.reason || JSON.stringify(plainGet.value)}); verifiedGet: ${vget.outcome} (${vget.reason || ''})`);
    }

    // 4e. one client, two databases: the state lookup for a database it has no state for.
    {
      const ic = def.ic; // has trusted state for defaultdb
      await attempt(() => ic.useDatabase({ databasename: 'v0db' }));
      const call = await attempt(() => ic.verifiedSet({ key: 'audit:4e', value: '{"who":"erin"}' }));
      const written = await attempt(() => ic.get({ key: 'audit:4e' }));
      lies.secondDatabaseSameClient = { verifiedSet: call, plainGetAfterwards: written };
      say(`   4e same client, useDatabase(v0db), verifiedSet: ${call.outcome} ${call.value || call.reason || ''}; log: ${short(call.log.join(' | '), 200)}`);
      say(`      get('audit:4e') afterwards: ${written.outcome} (${written.reason || JSON.stringify(written.value)})`);
    }
    results.checks.lyingServer = lies;

    // --- 5. linear advance proof ----------------------------------------------------------------
    say('== 5. LinearAdvanceProof');
    results.checks.linearAdvance = linearAdvanceCodeCheck(schemaPb);
    for (const [k, v] of Object.entries(results.checks.linearAdvance)) say(`   ${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`);
    results.checks.linearAdvance.live = await linearAdvanceLive();
    async function linearAdvanceLive() {
      // A LinearAdvanceProof is non-trivial when the trusted (source) tx S was committed while the
      // server's Merkle tree lagged (S.blTxId < S-1). Look for one after a burst of concurrent writes.
      const w = await connect('v0db', 'state-5-writer.json');
      const before = (await serverState(w.ic)).txid;
      await Promise.all(Array.from({ length: 60 }, (_, i) => attempt(() => w.ic.set({ key: `burst:${i}`, value: `b${i}` }), 10_000)));
      await attempt(() => w.ic.set({ key: 'lap:last', value: 'last' }));
      const last = (await serverState(w.ic)).txid;
      let S;
      let sHdr;
      let maxLag = 0;
      for (let id = before + 1; id < last - 1; id++) {
        const t = await rawCall(w.ic, 'txById', (() => { const r = new schemaPb.TxRequest(); r.setTx(id); return r; })());
        const m = t.getMetadata();
        maxLag = Math.max(maxLag, id - 1 - m.getBltxid());
        if (!S && m.getBltxid() < id - 1) {
          S = id;
          sHdr = m;
        }
      }
      if (!S)
        return {
          lagFound: false,
          note: `61 writes (60 concurrent), tx ${before + 1}..${last}: largest lag (id-1-blTxId) observed: ${maxLag}. With lag 0 the LinearAdvanceProof is trivial and the server omits it (field 8 absent), so a live corrupted-proof test is not possible against this honest server`,
        };
      // Trust tx S (its Alh computed from its v0 header, which the library verified in check 3 to
      // match the server's own state hash), written in the library's state-file format.
      const rootPath = path.join(tmp, 'state-5.json');
      const alh = Array.from(libUtil.getAlh(sHdr));
      fs.writeFileSync(rootPath, JSON.stringify({ undefined: { v0db: { db: 'v0db', txid: S, txhash: alh } } }));
      const ic = new Client({ host: '127.0.0.1', port: String(port), rootPath });
      clients.push(ic);
      await attempt(() => ic.login({ user: 'immudb', password: ADMIN_PASSWORD }));
      await attempt(() => ic.useDatabase({ databasename: 'v0db' }));
      let sent;
      let untap = tap(ic, 'verifiableGet', { onRaw: (b) => (sent = inspectVerifiableEntry(b)) });
      const honest = await attempt(() => ic.verifiedGet({ key: 'lap:last' }));
      untap();
      // Same call again from the same trusted state, with every byte of the LinearAdvanceProof's
      // terms inverted on the wire (lengths kept).
      fs.writeFileSync(rootPath, JSON.stringify({ undefined: { v0db: { db: 'v0db', txid: S, txhash: alh } } }));
      ic.state.servers = ic.state.getInitialState();
      let corrupted = 0;
      let sent2;
      untap = tap(ic, 'verifiableGet', {
        rawTransform: (buf) => {
          const b = Buffer.from(buf);
          const vtx = pbGet(pbFields(b), 2)[0];
          const dp = vtx && pbGet(pbFields(vtx.value), 2)[0];
          const lap = dp && pbGet(pbFields(dp.value), 8)[0];
          if (lap) for (const t of pbGet(pbFields(lap.value), 1)) for (let i = 0; i < t.value.length; i++) (t.value[i] ^= 0xff), corrupted++;
          return b;
        },
        onRaw: (b) => (sent2 = inspectVerifiableEntry(b)),
      });
      const tampered = await attempt(() => ic.verifiedGet({ key: 'lap:last' }));
      untap();
      return { lagFound: true, trustedSourceTx: S, sourceBlTxId: sHdr.getBltxid(), serverSent: sent, verifiedGetWithRealProof: honest, lapBytesInverted: corrupted, serverSentAfterCorruption: sent2, verifiedGetWithCorruptedLinearAdvanceProof: tampered };
    }
    {
      const l = results.checks.linearAdvance.live;
      if (!l.lagFound) say(`   live: ${l.note}`);
      else {
        say(`   live: trusted tx ${l.trustedSourceTx} (its blTxId ${l.sourceBlTxId}); server's dual proof: ${JSON.stringify(l.serverSent.dualProof)}`);
        say(`   verifiedGet with the real proof: ${l.verifiedGetWithRealProof.outcome}; with all ${l.lapBytesInverted} bytes of the LinearAdvanceProof terms inverted: ${l.verifiedGetWithCorruptedLinearAdvanceProof.outcome}${l.verifiedGetWithCorruptedLinearAdvanceProof.reason ? ' (' + l.verifiedGetWithCorruptedLinearAdvanceProof.reason + ')' : ''}`);
      }
    }

    // --- 6. process-wide handlers and other side effects ---------------------------------------
    say('== 6. process-wide handlers');
    results.checks.processHandlers = { inThisProcess: { beforeRequire: listenersBeforeRequire, afterRequire: listenersAfterRequire, afterClients: counts(), clientsConstructed: clients.length } };
    results.checks.processHandlers.children = runChildren(tmp, port);
    for (const [k, v] of Object.entries(results.checks.processHandlers.children)) say(`   ${k}: ${JSON.stringify(v)}`);
    const now = counts();
    // this script itself added one SIGINT and one uncaughtException listener
    const libOwn = { exit: now.exit, SIGINT: now.SIGINT - 1, uncaughtException: now.uncaughtException - 1 };
    results.checks.processHandlers.inThisProcess.libraryListenersNow = libOwn;
    say(`   this process: ${clients.length} clients constructed -> library listeners ${JSON.stringify(libOwn)} (0 of each after require)`);
    results.warnings = warnings;
    if (warnings.length) say(`   process warnings: ${short(warnings.join(' | '), 300)}`);
  } finally {
    clearTimeout(watchdog);
    await cleanup();
  }
  results.finishedAt = new Date().toISOString();
  fs.writeFileSync(path.join(HERE, 'results.json'), JSON.stringify(results, (_, x) => (typeof x === 'bigint' ? Number(x) : x), 2));
  say('== summary written to bench/eval-immudb-node/results.json');
  say(`   server stopped: ${server ? `exit ${server.exitCode ?? server.signalCode}` : 'not started'}; temp dir removed: ${!fs.existsSync(tmp)}`);
  // At exit the library's 'exit' handlers rewrite their state files (here: in the removed temp
  // dir). Count what they print instead of letting it scroll by.
  const exitErrors = [];
  console.error = (...a) => exitErrors.push(util.format(...a));
  const nExit = process.listenerCount('exit');
  process.on('exit', (code) => {
    const first = (exitErrors[0] || '').split('\n')[0];
    process.stdout.write(`   at exit: ${nExit} 'exit' handler(s) of the library ran; they printed ${exitErrors.length} write error(s) via console.error and swallowed them${first ? ` (first: ${first})` : ''}; exit code stays ${code}\n`);
  });
}

function typecheckProbe() {
  const tsc = path.join(REPO, 'node_modules/typescript/bin/tsc');
  if (!fs.existsSync(tsc)) return { summary: 'skipped (no typescript in ../../node_modules)' };
  // The probe lives in a temp dir (not under bench/, which the project's tsconfig compiles) and
  // sees this directory's node_modules through a symlink.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'eval-immudb-node-tsc-'));
  fs.symlinkSync(path.join(HERE, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
  const probe = path.join(dir, 'probe.ts');
  fs.writeFileSync(
    probe,
    [
      "import ImmudbClient from 'immudb-node';",
      'export async function probe(): Promise<void> {',
      "  const c = await ImmudbClient.getInstance({ host: '127.0.0.1', port: '3322', user: 'immudb', password: 'x' });",
      "  await c.verifiedGet({ key: 'k' });",
      '}',
      '',
    ].join('\n'),
  );
  const args = ['--noEmit', '--strict', '--module', 'commonjs', '--moduleResolution', 'node10', '--esModuleInterop', '--types', 'node', '--typeRoots', path.join(REPO, 'node_modules/@types'), probe];
  const r = spawnSync(process.execPath, [tsc, ...args], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
  const r2 = spawnSync(process.execPath, [tsc, '--skipLibCheck', ...args], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
  fs.rmSync(dir, { recursive: true, force: true });
  const clean = (out) => (out || '').split('\n').filter((l) => l.includes('error TS')).map((l) => l.replace(/^[^(]*?node_modules\//, 'node_modules/'));
  const errs = clean(r.stdout);
  const errs2 = clean(r2.stdout);
  const perFile = {};
  for (const e of errs) {
    const f = e.replace(/\(.*/, '');
    perFile[f] = (perFile[f] || 0) + 1;
  }
  const grpcLine = errs.find((l) => l.includes("Cannot find module 'grpc'"));
  const schemaDts = fs.readFileSync(path.join(path.dirname(require.resolve('immudb-node')), 'proto/schema_pb.d.ts'), 'utf8').trim();
  return {
    typescript: (spawnSync(process.execPath, [tsc, '--version'], { encoding: 'utf8' }).stdout || '').trim(),
    summary: `${errs.length} error(s) without skipLibCheck (${Object.entries(perFile).map(([f, n]) => `${f.replace('node_modules/', '')}: ${n}`).join(', ')}); with --skipLibCheck: ${errs2.length}`,
    grpcImportError: grpcLine ? short(grpcLine, 200) : undefined,
    schemaPbDts: short(schemaDts, 80),
    perFile,
    firstErrors: errs.slice(0, 5).map((l) => short(l, 200)),
    withSkipLibCheck: errs2.slice(0, 5),
  };
}

function linearAdvanceCodeCheck(schemaPb) {
  const dist = path.dirname(require.resolve('immudb-node'));
  const read = (f) => fs.readFileSync(path.join(dist, f), 'utf8');
  const all = fs.readdirSync(dist).filter((f) => f.endsWith('.js')).map(read).join('\n') + read('proto/schema_pb.js');
  const proto = fs.readFileSync(path.join(dist, '../../proto/schema.proto'), 'utf8');
  const dualProofMsg = (proto.match(/message DualProof \{[^}]*\}/) || [''])[0].replace(/\s+/g, ' ');
  return {
    dualProofInLibraryProto: dualProofMsg,
    dualProofClassHasLinearAdvanceAccessor: typeof schemaPb.DualProof.prototype.getLinearadvanceproof === 'function',
    mentionsOfLinearAdvanceInDistJs: (all.match(/linearadvance/gi) || []).length,
    txHeaderVersionAccessor: typeof schemaPb.TxMetadata.prototype.getVersion === 'function',
    verifyDualProofLinearStep:
      'verification.js: if (sourceId < tBltxid) verifyLinearProof(linearproof, tBltxid, targetId, targetbltxalh, targetAlh) else verifyLinearProof(linearproof, sourceId, ...); nothing ties sourceAlh to the linear chain between source.blTxId and sourceId',
  };
}

function runChildren(tmp, port) {
  const out = {};
  const run = (mode, extraEnv = {}) => {
    const cwd = fs.mkdtempSync(path.join(tmp, `child-${mode}-`));
    fs.writeFileSync(path.join(cwd, '.env'), 'EVAL_DOTENV_PROBE=loaded-from-dotenv\n');
    const r = spawnSync(process.execPath, [__filename, '--child', mode], {
      cwd,
      encoding: 'utf8',
      timeout: 15_000,
      env: { ...process.env, NODE_PATH: path.join(HERE, 'node_modules'), ...extraEnv },
    });
    const resLine = (r.stdout || '').split('\n').find((l) => l.startsWith('RESULT '));
    const files = fs.readdirSync(cwd).filter((f) => f !== '.env');
    return {
      exitCode: r.status,
      signal: r.signal,
      result: resLine ? JSON.parse(resLine.slice(7)) : undefined,
      stdout: short((r.stdout || '').split('\n').filter((l) => !l.startsWith('RESULT ')).join(' | '), 300),
      stderr: short(r.stderr || '', 260),
      filesLeftInCwd: Object.fromEntries(files.map((f) => [f, short(fs.readFileSync(path.join(cwd, f), 'utf8'), 80)])),
    };
  };
  out.listeners = run('listeners');
  out.uncaughtExceptionControl = run('uncaught-control');
  out.uncaughtExceptionWithClient = run('uncaught');
  out.sigintControl = run('sigint-control');
  out.sigintWithClient = run('sigint');
  out.getInstanceWrongPassword = run('loginfail', { EVAL_HOST: '127.0.0.1', EVAL_PORT: String(port) });
  return out;
}

const ci = process.argv.indexOf('--child');
if (ci !== -1) {
  child(process.argv[ci + 1]).catch((e) => {
    process.stdout.write('CHILD-ERROR ' + e.stack + '\n');
    process.exit(9);
  });
} else {
  main().then(
    () => process.exit(0),
    (e) => {
      process.stdout.write('EVAL FAILED: ' + (e && e.stack) + '\n');
      process.exit(1);
    },
  );
}
