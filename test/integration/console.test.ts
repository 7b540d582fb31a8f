// The auditor's console (`immudb-audit serve`) in a real browser (Debian's chromium driven by
// playwright-core) against the real immudb, with entries written by the real plugin server:
// search and paging give the CLI's answers, the chart counts them, an entry shows its
// verification (and fails loudly once the server is replaced by one holding a forged entry), the
// download is the entry's evidence bundle (verify-bundle passes it, a changed byte fails), hostile strings stay text, and credentials are enforced.
import test, { type ExecutionContext } from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { projectRoot, simulateWorkers, type KongInstance } from '../helpers/kong-driver.js';
import { generateFixtures, SCENARIO_KINDS, type KongSerializedLog } from '../fixtures/serialized-logs.js';
import { PLUGIN_NAME, startAuditStack, waitForEntries, type AuditStack } from '../helpers/audit-stack.js';
import { cliTarget, runCli } from '../helpers/cli.js';
import { freePort, startImmudb } from '../../scripts/lib/immudb-server.js';
import { ImmudbClient } from '../../plugin/store/immudb-client.js';

const CHROMIUM = '/usr/bin/chromium';
const DB = 'console';
const PREFIX = 'c';
/** Plain entries, one every 97 s from 2026-01-01T00:00:00Z (seeds are seconds), all kinds in turn. */
const PLAIN = 60;
const SINCE = '2026-01-01T00:00:00Z';
const UNTIL = '2026-01-01T03:00:00Z';
const TRACE_TEMPLATE = 'http://127.0.0.1:16686/trace/{trace_id}';
const TOKEN = 'console-test-token-0123456789abcdef';

const hasChromium = existsSync(CHROMIUM);
const serial = hasChromium ? test.serial : test.serial.skip;
if (!hasChromium) console.warn(`console.test: SKIPPED the browser tests: ${CHROMIUM} is absent (apt-get install chromium)`);

const shots = mkdtempSync(join(tmpdir(), 'kia-console-shots-'));
const dir = mkdtempSync(join(tmpdir(), 'kia-console-'));
const auditor = join(dir, 'auditor');
let stack: AuditStack;
let worker: KongInstance | undefined;
let target: string[];
let env: NodeJS.ProcessEnv;
let browser: Browser;
let metricsPort: number;

/** Strings a caller chose, each meant to run script if rendered as HTML or followed as a link. */
const SCRIPT_PATH = '/<script>window.__pwned=1</script>/x';
const IMG_USER = '<img src=x onerror="window.__pwned=1;alert(1)">';
const RTL_PATH = `/files/\u202Egnp.exe/${'b'.repeat(1500)}`;
const LINK_ROUTE = 'javascript:window.__pwned=1//';
const LONG_NOTE = `<b>${'A'.repeat(4000)}</b>`;

function hostileLogs(): string[] {
  const base = generateFixtures(4, { seed: 7000, kinds: ['key-auth-consumer'] });
  const edits: Array<(l: KongSerializedLog) => void> = [
    (l) => {
      l.request.uri = SCRIPT_PATH;
      l.request.headers['x-note'] = LONG_NOTE;
    },
    (l) => {
      l.consumer!.username = IMG_USER;
    },
    (l) => {
      l.request.uri = RTL_PATH;
    },
    (l) => {
      l.route!.name = LINK_ROUTE;
      l.trace_id = { w3c: 'javascript:alert(1)' };
    },
  ];
  return base.map((f, i) => {
    const log = JSON.parse(f.json) as KongSerializedLog;
    edits[i]!(log);
    return JSON.stringify(log);
  });
}

interface ConsoleProcess {
  url: string;
  proc: ChildProcess;
  stop(): Promise<void>;
}

/** Runs `immudb-audit serve` and waits for the line that says where it listens. */
async function startConsole(args: string[], extraEnv: NodeJS.ProcessEnv = {}, state = auditor): Promise<ConsoleProcess> {
  const proc = spawn(process.execPath, [join(projectRoot(), 'dist/plugin/cli.js'), ...cliTarget(stack.immudb, DB, PREFIX, state), 'serve', '--port', '0', ...args], {
    env: { ...process.env, ...env, ...extraEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const deadline = Date.now() + 60_000;
  for (;;) {
    const m = /console on (http:\/\/\S+\/)/.exec(out);
    if (m) {
      return {
        url: m[1]!.replace('0.0.0.0', '127.0.0.1'),
        proc,
        async stop() {
          if (proc.exitCode !== null || proc.signalCode !== null) return;
          const exited = new Promise((r) => proc.once('exit', r));
          proc.kill('SIGTERM');
          const k = setTimeout(() => proc.kill('SIGKILL'), 10_000);
          await exited;
          clearTimeout(k);
        },
      };
    }
    if (proc.exitCode !== null || Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`serve did not start: ${out}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

let main: ConsoleProcess;

interface CliRow {
  audit_id: string;
  status: number | null;
  path: string | null;
  consumer_username: string | null;
  entry: { outcome: { source: string; status: number | null }; trace_id: string | null; what: { request_headers: Record<string, string> | null } };
}

async function cliSearch(args: string[]): Promise<CliRow[]> {
  const r = await runCli([...target, '--json', 'search', '--limit', '100000', ...args], env);
  if (r.code !== 0) throw new Error(`search failed: ${r.stderr}`);
  const lines = r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as CliRow & { summary?: unknown });
  return lines.filter((l) => !l.summary);
}

/** A fresh browser context (and page) that records dialogs and page errors. */
async function openPage(t: ExecutionContext, url: string, opts: Parameters<Browser['newContext']>[0] = {}): Promise<{ ctx: BrowserContext; page: Page; dialogs: string[] }> {
  const ctx = await browser.newContext({ acceptDownloads: true, ...opts });
  const page = await ctx.newPage();
  const dialogs: string[] = [];
  page.on('dialog', (d) => {
    dialogs.push(d.message());
    void d.dismiss();
  });
  page.on('pageerror', (e) => t.log(`page error: ${e.message}`));
  await page.goto(url);
  return { ctx, page, dialogs };
}

async function shot(t: ExecutionContext, page: Page, name: string) {
  const file = join(shots, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  t.log(`screenshot: ${file}`);
}

const rowIds = (page: Page) => page.locator('#results tbody tr').evaluateAll((trs) => trs.map((tr) => (tr as HTMLElement).dataset.auditId!));

test.before(async () => {
  if (!hasChromium) return;
  metricsPort = await freePort();
  stack = await startAuditStack({ env: { IMMUDB_AUDIT_METRICS_PORT: String(metricsPort) } });
  [worker] = await simulateWorkers(stack.rpc, 1, PLUGIN_NAME, stack.config({
    immudb_database: DB, create_database: true, key_prefix: PREFIX,
    privacy: { request_headers: ['x-note'] },
    queue: { max_batch_size: 8, max_coalescing_delay: 0.01, initial_retry_delay: 0.05, max_retry_delay: 0.5 },
  }));
  const logs = [
    ...Array.from({ length: PLAIN }, (_, i) => generateFixtures(1, { seed: 1 + i * 97, kinds: [SCENARIO_KINDS[i % SCENARIO_KINDS.length]!] })[0]!.json),
    ...hostileLogs(),
  ];
  for (const json of logs) await worker!.runLogEvent({ 'kong.log.serialize': json });
  const client = await stack.client(DB);
  await waitForEntries(client, `${PREFIX}:entry:`, logs.length);
  target = cliTarget(stack.immudb, DB, PREFIX, join(dir, 'cli-auditor'));
  env = { IMMUDB_PASSWORD: stack.immudb.password };
  main = await startConsole(['--trace-url', TRACE_TEMPLATE, '--status-url', `http://127.0.0.1:${metricsPort}/status`]);
  // Each launch gets a fresh temporary profile (user-data-dir) from playwright, removed at close.
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

test.after.always(async () => {
  await browser?.close();
  await main?.stop();
  await stack?.dispose();
  rmSync(dir, { recursive: true, force: true });
  console.log(`console.test: screenshots in ${shots}`);
});

serial('the page searches the index with the CLI filters, pages through the answer, and states what it is complete up to', async (t) => {
  const { ctx, page } = await openPage(t, main.url);
  try {
    const all = await cliSearch([]);
    t.is(all.length, PLAIN + 4);
    await page.waitForFunction(() => document.querySelectorAll('#results tbody tr').length > 0);
    await t.notThrowsAsync(page.locator('#state').filter({ hasText: /^complete up to tx \d+ of database console \(prefix c\) on server \S+, verified at \d{4}-/ }).waitFor());
    // First page: 50 rows, then the rest, in the CLI's order.
    const first = await rowIds(page);
    t.is(first.length, 50);
    t.regex((await page.locator('#count').textContent())!, /^entries 1–50 of 64 matching$/);
    await page.click('#next');
    await page.locator('#count').filter({ hasText: /^entries 51–64 of 64 matching$/ }).waitFor();
    t.deepEqual([...first, ...(await rowIds(page))], all.map((r) => r.audit_id));
    await page.click('#prev');
    await page.locator('#count').filter({ hasText: /^entries 1–50/ }).waitFor();

    // Filters: the same answer as the CLI's for the same filters.
    await page.fill('input[name=status]', '4xx');
    await page.fill('input[name=since]', SINCE);
    await page.fill('input[name=until]', UNTIL);
    await page.selectOption('select[name=result]', 'failure');
    await page.click('#search');
    const want = (await cliSearch(['--status', '4xx', '--since', SINCE, '--until', UNTIL, '--result', 'failure'])).map((r) => r.audit_id);
    t.true(want.length > 0 && want.length < PLAIN);
    await page.waitForFunction((n) => document.querySelectorAll('#results tbody tr').length === n, want.length);
    t.deepEqual(await rowIds(page), want);
    // The address keeps the filters: the same answer from a link.
    const link = page.url();
    t.regex(link, /\?status=4xx&result=failure&since=2026-01-01T00%3A00%3A00Z&until=2026-01-01T03%3A00%3A00Z$/);
    const linked = await ctx.newPage();
    await linked.goto(link);
    await linked.waitForFunction((n) => document.querySelectorAll('#results tbody tr').length === n, want.length);
    t.deepEqual(await rowIds(linked), want);
    t.is(await linked.inputValue('input[name=status]'), '4xx');
    await linked.close();
    // A bad value gets the CLI's message.
    await page.fill('input[name=status]', '9xx');
    await page.click('#search');
    await t.notThrowsAsync(page.locator('#error').filter({ hasText: 'status: expected status codes or classes' }).waitFor());
    await shot(t, page, 'search');
  } finally {
    await ctx.close();
  }
});

serial('the chart counts requests, 4xx, 5xx and the 401/403 Kong answered itself, per bucket', async (t) => {
  const { ctx, page } = await openPage(t, main.url);
  try {
    await page.fill('input[name=since]', SINCE);
    await page.fill('input[name=until]', UNTIL);
    await page.click('#search');
    await page.waitForFunction(() => document.querySelectorAll('#chart svg g.bucket').length === 36);
    const buckets = await page.locator('#chart g.bucket').evaluateAll((gs) =>
      gs.map((g) => ({ total: Number(g.getAttribute('data-total')), c4: Number(g.getAttribute('data-4xx')), c5: Number(g.getAttribute('data-5xx')), kong: Number(g.getAttribute('data-kong')), rects: g.querySelectorAll('rect.bar.total').length })),
    );
    const rows = await cliSearch(['--since', SINCE, '--until', UNTIL]);
    const sum = (f: (b: (typeof buckets)[number]) => number) => buckets.reduce((a, b) => a + f(b), 0);
    t.is(sum((b) => b.total), rows.length);
    t.is(sum((b) => b.c4), rows.filter((r) => r.status !== null && r.status >= 400 && r.status < 500).length);
    t.is(sum((b) => b.c5), rows.filter((r) => r.status !== null && r.status >= 500).length);
    const kong = rows.filter((r) => (r.status === 401 || r.status === 403) && r.entry.outcome.source === 'kong').length;
    t.true(kong > 0);
    t.is(sum((b) => b.kong), kong);
    // A bar for each bucket that has requests, none for the empty ones.
    t.is(sum((b) => b.rects), buckets.filter((b) => b.total > 0).length);
    t.true(buckets.some((b) => b.total === 0));
    await shot(t, page, 'chart');
  } finally {
    await ctx.close();
  }
});

serial('hostile strings in entries are shown as text and never run', async (t) => {
  const { ctx, page, dialogs } = await openPage(t, main.url);
  try {
    await page.waitForFunction(() => document.querySelectorAll('#results tbody tr').length === 50);
    await page.click('#next');
    await page.locator('#count').filter({ hasText: /^entries 51–64/ }).waitFor();
    const cells = await page.locator('#results tbody td').allTextContents();
    const stored = await cliSearch([]);
    const scriptRow = stored.find((r) => r.path?.includes('<script>'));
    t.truthy(scriptRow, 'the plugin stored the <script> path');
    t.true(cells.includes(scriptRow!.path!), 'the path is shown as the text it is');
    t.true(cells.includes(IMG_USER), 'the username is shown as the text it is');
    t.true(cells.includes(LINK_ROUTE), 'the route name is shown as the text it is');
    // The RTL override is made visible rather than applied.
    // The RTL override is made visible rather than applied; the long path is cut in the table.
    const rtl = cells.find((c) => c.startsWith('/files/⟨U+202E⟩gnp.exe/bbb'));
    t.truthy(rtl, `no visible U+202E in ${JSON.stringify(stored.map((r) => r.path?.slice(0, 40)).slice(-4))}`);
    t.regex(rtl!, /^.{200}… \(\d+ more characters\)$/u);
    // No element came from the data: one script (the page's own), no img, no link but ours.
    t.is(await page.locator('script').count(), 1);
    t.is(await page.locator('img').count(), 0);
    const hrefs = await page.locator('a[href]').evaluateAll((as) => as.map((a) => a.getAttribute('href')!));
    t.true(hrefs.every((h) => h.startsWith('#entry=')), hrefs.join(' '));

    // The entry view of the long, scripted one: every field as text, in full.
    await page.click(`a[href="#entry=${scriptRow!.audit_id}"]`);
    await page.locator('#verdict').filter({ hasText: /^verified: / }).waitFor();
    const fields = await page.locator('#fields tbody tr').evaluateAll((trs) => trs.map((tr) => [tr.children[0]!.textContent, tr.children[1]!.textContent]));
    const note = fields.find(([k]) => k === 'what.request_headers.x-note');
    t.is(note?.[1], scriptRow!.entry.what.request_headers!['x-note']);
    t.true(note![1]!.length >= 1000, 'the long header is shown whole');
    t.deepEqual(fields.find(([k]) => k === 'what.path'), ['what.path', scriptRow!.path]);
    // The route named like a javascript: link is text.
    const linkRow = stored.find((r) => (r as unknown as { route_name: string }).route_name === LINK_ROUTE)!;
    t.truthy(linkRow);
    await page.click(`a[href="#entry=${linkRow.audit_id}"]`);
    await page.locator('#entry-id').filter({ hasText: linkRow.audit_id }).waitFor();
    await page.locator('#verdict').filter({ hasText: new RegExp(`^verified: c:entry:${linkRow.audit_id}`) }).waitFor();
    // Its trace link, if any, is the template's (the serialized javascript: trace id is not one).
    t.not(linkRow.entry.trace_id, 'javascript:alert(1)');
    const wantHref = linkRow.entry.trace_id ? `http://127.0.0.1:16686/trace/${linkRow.entry.trace_id}` : null;
    t.is(await page.locator('#trace-link').getAttribute('href'), wantHref);
    t.is(await page.locator('#trace-link').isHidden(), wantHref === null);
    t.is(await page.evaluate(() => (window as unknown as { __pwned?: unknown }).__pwned), undefined);
    t.deepEqual(dialogs, []);
    await shot(t, page, 'hostile');
  } finally {
    await ctx.close();
  }
});

serial("an entry's view: its verification, its trace link, the writers' status, and its evidence bundle, verified by verify-bundle", async (t) => {
  const { ctx, page } = await openPage(t, main.url);
  try {
    const rows = await cliSearch(['--since', SINCE, '--until', UNTIL]);
    const traced = rows.find((r) => r.entry.trace_id !== null)!;
    t.truthy(traced);
    await page.goto(`${main.url}#entry=${traced.audit_id}`);
    await page.locator('#verdict').filter({ hasText: new RegExp(`^verified: c:entry:${traced.audit_id} in tx \\d+ on server`) }).waitFor();
    const checks = await page.locator('#verification li').allTextContents();
    t.regex(checks[0]!, /^transaction: tx \d+$/);
    t.regex(checks[1]!, /^inclusion: the entry's key and value are included in tx \d+/);
    t.regex(checks[2]!, /^consistency: tx \d+ is consistent with the state this auditor trusted before \(tx \d+\)$/);
    t.regex(checks[3]!, /^signature: not checked: no --server-public-key given$/);
    t.is(await page.locator('#first-contact').count(), 0);
    t.is(await page.locator('#trace-link').getAttribute('href'), `http://127.0.0.1:16686/trace/${traced.entry.trace_id}`);
    // The writers' status, fetched by the console from the plugin server.
    await page.locator(`#writers tr[data-destination]`).first().waitFor();
    t.regex((await page.locator('#writers').textContent())!, /plugin server pid \d+/);
    await shot(t, page, 'entry');

    // The download is the entry's evidence bundle, which verify-bundle checks with no immudb access.
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
    t.is(download.suggestedFilename(), `audit-${traced.audit_id}.bundle.json`);
    const file = join(dir, 'download.bundle.json');
    await download.saveAs(file);
    const offline = await runCli(['--json', 'verify-bundle', file], { IMMUDB_ADDRESS: '127.0.0.1:9', IMMUDB_PASSWORD: '' });
    t.is(offline.code, 0, offline.stderr);
    const checked = JSON.parse(offline.stdout) as { verified: boolean; database: string; entries: Array<{ audit_id: string; tx: number }> };
    t.true(checked.verified);
    t.is(checked.database, DB);
    const cli = await runCli([...target, '--json', 'verify', traced.audit_id], env);
    t.is(cli.code, 0, cli.stderr);
    const v = JSON.parse(cli.stdout) as { key: string; tx: number; server_uuid: string; entry: unknown };
    t.deepEqual(checked.entries, [{ audit_id: traced.audit_id, tx: v.tx }]);
    const got = JSON.parse(readFileSync(file, 'utf8')) as { server_uuid: string; entries: Array<{ key: string; entry: unknown; value: string }> };
    t.is(got.server_uuid, v.server_uuid);
    t.is(got.entries[0]!.key, v.key);
    t.deepEqual(got.entries[0]!.entry, v.entry);
    t.deepEqual(JSON.parse(Buffer.from(got.entries[0]!.value, 'base64').toString('utf8')), v.entry);
    // A changed byte of the downloaded entry fails, naming it.
    writeFileSync(file, readFileSync(file, 'utf8').replace(got.entries[0]!.value, Buffer.from(Buffer.from(got.entries[0]!.value, 'base64').toString('utf8').replace('"schema_version"', '"schema_versioN"')).toString('base64')));
    const changed = await runCli(['verify-bundle', file]);
    t.is(changed.code, 3);
    t.regex(changed.stderr, /^immudb-audit: VERIFICATION FAILED: entries\[0\]\.(entry|inclusion_proof)/);
  } finally {
    await ctx.close();
  }
});

serial('first contact is flagged loudly', async (t) => {
  const fresh = await startConsole([], {}, join(dir, 'fresh-auditor'));
  const { ctx, page } = await openPage(t, 'about:blank');
  try {
    const [row] = await cliSearch(['--limit', '1']);
    await page.goto(`${fresh.url}#entry=${row!.audit_id}`);
    await page.locator('#first-contact').filter({ hasText: /^FIRST CONTACT: / }).waitFor();
    t.regex((await page.locator('#verification li[data-check=consistency]').textContent())!, /first contact: nothing was trusted before/);
  } finally {
    await ctx.close();
    await fresh.stop();
  }
});

serial('credentials: refused without them, served with them; no credentials refuses a non-loopback bind', async (t) => {
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
  const refused = await runCli([...target, 'serve', '--host', '0.0.0.0', '--port', '0'], env);
  t.is(refused.code, 2);
  t.regex(refused.stderr, /listening on 0\.0\.0\.0 \(not loopback\) needs credentials/);

  const c = await startConsole(['--host', '0.0.0.0', '--token-file', tokenFile]);
  try {
    for (const path of ['', 'app.js', 'api/search']) {
      const res = await fetch(c.url + path);
      t.is(res.status, 401, path);
      t.is(res.headers.get('www-authenticate'), 'Bearer realm="immudb-audit"');
    }
    t.is((await fetch(`${c.url}api/search`, { headers: { Authorization: 'Bearer wrong-token-0123456789' } })).status, 401);
    const ok = await fetch(`${c.url}api/search`, { headers: { Authorization: `Bearer ${TOKEN}` } });
    t.is(ok.status, 200);
    const { page, ctx } = await openPage(t, 'about:blank');
    try {
      const res = await page.goto(c.url);
      t.is(res!.status(), 401);
    } finally {
      await ctx.close();
    }
    const authed = await openPage(t, c.url, { extraHTTPHeaders: { Authorization: `Bearer ${TOKEN}` } });
    try {
      await authed.page.waitForFunction(() => document.querySelectorAll('#results tbody tr').length > 0);
    } finally {
      await authed.ctx.close();
    }
  } finally {
    await c.stop();
  }

  const b = await startConsole([], { IMMUDB_AUDIT_CONSOLE_BASIC_AUTH: 'auditor:correct-horse-battery' });
  try {
    t.is((await fetch(b.url)).status, 401);
    const basic = await openPage(t, b.url, { httpCredentials: { username: 'auditor', password: 'correct-horse-battery' } });
    try {
      await basic.page.waitForFunction(() => document.querySelectorAll('#results tbody tr').length > 0);
    } finally {
      await basic.ctx.close();
    }
  } finally {
    await b.stop();
  }
});

serial('the page serves its strict headers, is read-only, and answers only to loopback names without credentials', async (t) => {
  const res = await fetch(main.url);
  t.is(res.headers.get('content-security-policy'), "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'");
  t.is(res.headers.get('x-content-type-options'), 'nosniff');
  t.is((await fetch(`${main.url}api/search`, { method: 'POST' })).status, 405);
  const { request } = await import('node:http');
  const status = await new Promise<number>((resolve, reject) => {
    const req = request(main.url, { headers: { Host: 'attacker.example' } }, (r) => {
      r.resume();
      resolve(r.statusCode!);
    });
    req.on('error', reject);
    req.end();
  });
  t.is(status, 421);
});

// Last: it replaces the server.
serial('a tampered entry fails loudly: the server replaced by one holding a forged value', async (t) => {
  const [row] = await cliSearch(['--limit', '1']);
  const port = stack.immudb.port;
  await stack.immudb.stop();
  const impostor = await startImmudb({ port });
  try {
    const forged = await ImmudbClient.connect({ host: impostor.host, port: impostor.port, username: impostor.username, password: impostor.password, database: DB, createDatabase: true });
    await forged.set([{ key: Buffer.from(`${PREFIX}:entry:${row!.audit_id}`), value: Buffer.from('{"forged":"<script>window.__pwned=1</script>"}') }]);
    await forged.close();
    const { ctx, page, dialogs } = await openPage(t, `${main.url}#entry=${row!.audit_id}`);
    try {
      await page.locator('#verdict.failed').filter({ hasText: /^VERIFICATION FAILED: immudb at 127\.0\.0\.1:\d+ \(server \S+\) (does not hold log console as verified: its history forks|reports tx \d+ of console, but this auditor verified tx \d+ of log console before)/ }).waitFor();
      t.true(await page.locator('#download').isHidden());
      t.is(await page.locator('#fields tbody tr').count(), 0);
      await page.locator('#error').filter({ hasText: /VERIFICATION FAILED/ }).waitFor();
      await page.locator('#state.failed').filter({ hasText: /^VERIFICATION FAILED: the index is not brought up to date/ }).waitFor();
      t.is((await fetch(`${main.url}api/entry/bundle?id=${row!.audit_id}`)).status, 409);
      t.is(await page.evaluate(() => (window as unknown as { __pwned?: unknown }).__pwned), undefined);
      t.deepEqual(dialogs, []);
      await shot(t, page, 'tampered');
    } finally {
      await ctx.close();
    }
  } finally {
    await impostor.dispose();
  }
});
