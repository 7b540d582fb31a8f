/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
// The console page's script (served as /app.js). Every value from an entry is set with
// textContent or an SVG attribute, never parsed as HTML; links come from the server (which
// builds them from its template, http/https only). Bidi overrides and control characters are
// shown as ⟨U+XXXX⟩ so that a path cannot pretend to be another.

interface State {
  complete_up_to_tx: number;
  verified_at: string | null;
  server_uuid: string;
  database: string;
  prefix: string;
  entries_indexed: number;
}
type Row = Record<string, string | number | null>;
interface SearchAnswer { state: State; matched: number | null; rows: Row[]; next: string | null }
interface Bucket { from: string; to: string; total: number; status_4xx: number; status_5xx: number; kong_401_403: number }
interface TimelineAnswer { state: State; from: string | null; to: string | null; bucket_ms: number; buckets: Bucket[] }
interface EntryAnswer {
  audit_id: string; key: string; tx: number; server_uuid: string; database: string; verified_at: string;
  proof: { inclusion: string; consistency: string; signature: string; first_contact: boolean };
  trace_url: string | null; fields: Array<[string, string]>;
}

const $ = <T extends Element = HTMLElement>(sel: string) => document.querySelector(sel) as T;
const SVG = 'http://www.w3.org/2000/svg';
const MAX_CELL = 200;

/** Bidi controls, other invisible format characters and C0/C1 controls, made visible. */
const SUSPICIOUS = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]/g;
function visible(text: string, max = Infinity): { text: string; suspicious: boolean } {
  let suspicious = false;
  let t = text.replace(SUSPICIOUS, (c) => {
    suspicious = true;
    return `⟨U+${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}⟩`;
  });
  if (t.length > max) t = `${t.slice(0, max)}… (${t.length - max} more characters)`;
  return { text: t, suspicious };
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, text?: string | null, max?: number): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) {
    const v = visible(text, max);
    e.textContent = v.text;
    if (v.suspicious) e.classList.add('suspicious');
  }
  return e;
}

async function getJson<T>(url: string): Promise<T> {
  const res = await fetch(url, { headers: { Accept: 'application/json' } });
  const body = (await res.json()) as T & { error?: string };
  if (!res.ok) throw Object.assign(new Error(body.error ?? `HTTP ${res.status}`), { status: res.status });
  return body;
}

function showError(message: string | null) {
  const p = $('#error');
  p.hidden = message === null;
  p.textContent = message ?? '';
  // A failed check: nothing on the page is current any more, say so where the state is.
  if (message?.startsWith('VERIFICATION FAILED')) {
    const s = $('#state');
    s.textContent = `VERIFICATION FAILED: the index is not brought up to date; ${s.textContent ?? ''}`;
    s.classList.add('failed');
  }
}

function showState(s: State) {
  $('#state').classList.remove('failed');
  $('#state').textContent = `complete up to tx ${s.complete_up_to_tx} of database ${s.database} (prefix ${s.prefix}) on server ${s.server_uuid}, verified at ${s.verified_at ?? 'never'} · ${s.entries_indexed} entries indexed`;
}

function filterQuery(): URLSearchParams {
  const q = new URLSearchParams();
  for (const [k, v] of new FormData($<HTMLFormElement>('#filters'))) if (typeof v === 'string' && v.trim()) q.set(k, v.trim());
  return q;
}

// Paging: the cursors of the pages seen, so that "previous" goes back without an offset.
let query = new URLSearchParams();
let cursors: Array<string | null> = [null];
let page = 0;
let matched: number | null = null;
const pageSizes: number[] = [];

const consumerOf = (r: Row) => r.consumer_username ?? r.consumer_custom_id ?? r.consumer_id ?? (r.subject !== null ? `subject ${r.subject}` : null);

async function loadPage() {
  const q = new URLSearchParams(query);
  const after = cursors[page];
  if (after) q.set('after', after);
  const a = await getJson<SearchAnswer>(`/api/search?${q}`);
  showState(a.state);
  if (a.matched !== null) matched = a.matched;
  const body = $('#results tbody');
  body.replaceChildren(
    ...a.rows.map((r) => {
      const tr = el('tr');
      tr.dataset.auditId = String(r.audit_id);
      const cells = [r.time, r.tx_id, r.method, r.path, r.status, r.result, consumerOf(r), r.client_ip, r.route_name ?? r.route_id];
      for (const c of cells) tr.append(el('td', c === null ? '-' : String(c), MAX_CELL));
      const td = el('td');
      const link = el('a', String(r.audit_id));
      link.href = `#entry=${encodeURIComponent(String(r.audit_id))}`;
      td.append(link);
      tr.append(td);
      return tr;
    }),
  );
  cursors[page + 1] = a.next;
  pageSizes[page] = a.rows.length;
  const shownFrom = countBefore() + 1;
  $('#count').textContent = a.rows.length
    ? `entries ${shownFrom}–${shownFrom + a.rows.length - 1} of ${matched ?? '?'} matching`
    : page === 0 ? 'no entries match' : 'no more entries';
  $<HTMLButtonElement>('#prev').disabled = page === 0;
  $<HTMLButtonElement>('#next').disabled = !a.next;
}
const countBefore = () => pageSizes.slice(0, page).reduce((a, b) => a + b, 0);

function bar(g: SVGGElement, cls: string, x: number, w: number, yBase: number, h: number) {
  if (h <= 0) return;
  const r = document.createElementNS(SVG, 'rect');
  r.setAttribute('class', `bar ${cls}`);
  r.setAttribute('x', String(x));
  r.setAttribute('width', String(w));
  r.setAttribute('y', String(yBase - h));
  r.setAttribute('height', String(h));
  g.append(r);
}

function text(svg: SVGSVGElement, x: number, y: number, t: string, anchor = 'start') {
  const e = document.createElementNS(SVG, 'text');
  e.setAttribute('class', 'axis');
  e.setAttribute('x', String(x));
  e.setAttribute('y', String(y));
  e.setAttribute('text-anchor', anchor);
  e.textContent = t;
  svg.append(e);
}

/** A bar per bucket: all requests, and stacked on the baseline 5xx then 4xx (Kong's 401/403 inside them). */
function drawChart(t: TimelineAnswer) {
  const W = 800, H = 200, top = 14, bottom = 20, left = 36;
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.setAttribute('role', 'img');
  const max = Math.max(1, ...t.buckets.map((b) => b.total));
  const plotH = H - top - bottom;
  const slot = (W - left) / Math.max(1, t.buckets.length);
  const scale = (n: number) => (n / max) * plotH;
  const base = H - bottom;
  t.buckets.forEach((b, i) => {
    const g = document.createElementNS(SVG, 'g');
    g.setAttribute('class', 'bucket');
    g.setAttribute('data-from', b.from);
    g.setAttribute('data-total', String(b.total));
    g.setAttribute('data-4xx', String(b.status_4xx));
    g.setAttribute('data-5xx', String(b.status_5xx));
    g.setAttribute('data-kong', String(b.kong_401_403));
    const title = document.createElementNS(SVG, 'title');
    title.textContent = `${b.from} – ${b.to}: ${b.total} requests, ${b.status_4xx} 4xx (${b.kong_401_403} 401/403 from Kong), ${b.status_5xx} 5xx`;
    g.append(title);
    const x = left + i * slot + 1;
    const w = Math.max(1, slot - 2);
    bar(g, 'total', x, w, base, scale(b.total));
    bar(g, 'c5xx', x, w, base, scale(b.status_5xx));
    bar(g, 'c4xx', x, w, base - scale(b.status_5xx), scale(b.status_4xx));
    bar(g, 'kong', x + w / 4, w / 2, base - scale(b.status_5xx), scale(b.kong_401_403));
    svg.append(g);
  });
  text(svg, left - 4, top + 4, String(max), 'end');
  text(svg, left - 4, base, '0', 'end');
  if (t.from && t.to) {
    text(svg, left, H - 4, t.from);
    text(svg, W, H - 4, t.to, 'end');
  }
  $('#chart').replaceChildren(t.buckets.length ? svg : el('p', 'no requests in this range'));
}

/** The filters of the address (`?status=4xx&since=24h`), so that a search can be linked to. */
function formFromAddress() {
  const form = $<HTMLFormElement>('#filters');
  for (const [k, v] of new URLSearchParams(location.search)) {
    const field = form.elements.namedItem(k);
    if (field instanceof HTMLInputElement || field instanceof HTMLSelectElement) field.value = v;
  }
}

async function runSearch() {
  showError(null);
  query = filterQuery();
  history.replaceState(null, '', `${query.size ? `?${query}` : location.pathname}${location.hash}`);
  cursors = [null];
  page = 0;
  matched = null;
  pageSizes.length = 0;
  try {
    await loadPage();
    drawChart(await getJson<TimelineAnswer>(`/api/timeline?${query}`));
  } catch (e) {
    showError((e as Error).message);
  }
}

function showEntry(a: EntryAnswer | { error: string }) {
  const section = $('#entry');
  section.hidden = false;
  const box = $('#verification');
  const fields = $('#fields tbody');
  const download = $<HTMLAnchorElement>('#download');
  const trace = $<HTMLAnchorElement>('#trace-link');
  if ('error' in a) {
    const v = el('p', a.error);
    v.className = 'verdict failed';
    v.id = 'verdict';
    box.replaceChildren(v);
    fields.replaceChildren();
    download.hidden = true;
    trace.hidden = true;
    return;
  }
  $('#entry-id').textContent = a.audit_id;
  const verdict = el('p', `verified: ${a.key} in tx ${a.tx} on server ${a.server_uuid} (database ${a.database}), at ${a.verified_at}`);
  verdict.className = 'verdict ok';
  verdict.id = 'verdict';
  const parts: HTMLElement[] = [verdict];
  if (a.proof.first_contact) {
    const w = el('p', 'FIRST CONTACT: this auditor had never verified this server before; its current history is now trusted as it is. Check it against another record (another auditor, a published state) before relying on it.');
    w.className = 'verdict first-contact';
    w.id = 'first-contact';
    parts.push(w);
  }
  const checks = el('ul');
  checks.className = 'checks';
  for (const [k, v] of [['transaction', `tx ${a.tx}`], ['inclusion', a.proof.inclusion], ['consistency', a.proof.consistency], ['signature', a.proof.signature]] as const) {
    const li = el('li', `${k}: ${v}`);
    li.dataset.check = k;
    checks.append(li);
  }
  parts.push(checks);
  box.replaceChildren(...parts);
  fields.replaceChildren(
    ...a.fields.map(([k, v]) => {
      const tr = el('tr');
      tr.append(el('td', k), el('td', v));
      return tr;
    }),
  );
  download.hidden = false;
  download.href = `/api/entry/bundle?id=${encodeURIComponent(a.audit_id)}`;
  download.download = `audit-${a.audit_id}.bundle.json`;
  trace.hidden = !a.trace_url;
  if (a.trace_url && /^https?:\/\//i.test(a.trace_url)) trace.href = a.trace_url;
  else trace.removeAttribute('href');
}

async function route() {
  const m = /^#entry=(.+)$/.exec(location.hash);
  if (!m) return;
  const id = decodeURIComponent(m[1]!);
  $('#entry-id').textContent = id;
  $('#verification').replaceChildren(el('p', 'verifying…'));
  $('#entry').hidden = false;
  try {
    showEntry(await getJson<EntryAnswer>(`/api/entry?id=${encodeURIComponent(id)}`));
  } catch (e) {
    showEntry({ error: (e as Error).message });
  }
  $('#entry').scrollIntoView();
}

async function writers() {
  const a = await getJson<{ configured: boolean; ok?: boolean; error?: string; url?: string; status?: { pid: number; destinations: Record<string, Record<string, unknown>> } }>('/api/status');
  if (!a.configured) return;
  const section = $('#writers');
  section.hidden = false;
  const body = $('#writers-body');
  if (!a.ok || !a.status) {
    const p = el('p', a.error ?? 'unavailable');
    p.className = 'halted';
    body.replaceChildren(p);
    return;
  }
  const parts: HTMLElement[] = [el('p', `plugin server pid ${a.status.pid} (${a.url})`)];
  const dests = Object.entries(a.status.destinations ?? {});
  if (!dests.length) parts.push(el('p', 'no destination used yet'));
  const keys = ['captured', 'written', 'spooled', 'refused', 'retries', 'queued_memory', 'spool_entries', 'oldest_unacked_ms', 'last_tx_id'];
  if (dests.length) {
    const t = el('table');
    const head = el('tr');
    for (const k of ['destination', 'state', ...keys]) head.append(el('th', k));
    t.append(head);
    for (const [name, s] of dests) {
      const tr = el('tr');
      tr.dataset.destination = name;
      const state = el('td', s.halted ? `HALTED: ${String(s.halted)}` : 'writing');
      if (s.halted) state.classList.add('halted');
      tr.append(el('td', name), state, ...keys.map((k) => el('td', s[k] === undefined || s[k] === null ? '-' : String(s[k]))));
      t.append(tr);
    }
    parts.push(t);
  }
  body.replaceChildren(...parts);
}

$<HTMLFormElement>('#filters').addEventListener('submit', (ev) => {
  ev.preventDefault();
  void runSearch();
});
$('#next').addEventListener('click', () => {
  page++;
  void loadPage().catch((e: Error) => showError(e.message));
});
$('#prev').addEventListener('click', () => {
  page = Math.max(0, page - 1);
  void loadPage().catch((e: Error) => showError(e.message));
});
window.addEventListener('hashchange', () => void route());
// The entry named in the address first, then the search (one request at a time: the server
// answers them in turn anyway).
formFromAddress();
void route().then(runSearch);
void writers().catch((e: Error) => showError(e.message));
