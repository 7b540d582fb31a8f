// The console's HTTP server (node:http): the page, its script and style (all shipped in the
// package: no third-party origin, works offline) and the JSON API, read-only (GET and HEAD only),
// behind a strict Content-Security-Policy. Without credentials it answers only requests whose
// Host is a loopback name (a DNS-rebinding page cannot talk to it).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { readFileSync } from 'node:fs';
import { authorized, challenge, isLoopback, type Credentials } from './auth.js';
import { bundle, entry, search, status, timelineOf, type ApiAnswer, type ConsoleContext } from './api.js';
import { PAGE_HTML } from './page/html.js';
import { PAGE_CSS } from './page/css.js';

export const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

const SECURITY_HEADERS: Record<string, string> = {
  'Content-Security-Policy': CSP,
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'Cache-Control': 'no-store',
};

/** The page's script, compiled by tsc next to this module (read when first asked for, not by every CLI command). */
let pageJs: Buffer | undefined;
const PAGE_JS = () => (pageJs ??= readFileSync(new URL('./page/app.js', import.meta.url)));

const API: Record<string, (ctx: ConsoleContext, q: URLSearchParams) => Promise<ApiAnswer>> = {
  '/api/search': search,
  '/api/entry': entry,
  '/api/entry/bundle': bundle,
  '/api/timeline': timelineOf,
  '/api/status': (ctx) => status(ctx),
};

function send(req: IncomingMessage, res: ServerResponse, code: number, type: string, body: string | Buffer, headers: Record<string, string> = {}) {
  res.writeHead(code, { ...SECURITY_HEADERS, 'Content-Type': type, 'Content-Length': String(Buffer.byteLength(body)), ...headers });
  res.end(req.method === 'HEAD' ? undefined : body);
}

const json = (v: unknown) => JSON.stringify(v);
const JSON_TYPE = 'application/json; charset=utf-8';

export function consoleServer(ctx: ConsoleContext, credentials: Credentials | undefined): Server {
  return createServer((req, res) => {
    void handle(ctx, credentials, req, res).catch((e: unknown) => {
      if (!res.headersSent) send(req, res, 500, JSON_TYPE, json({ error: (e as Error).message }));
      else res.destroy();
    });
  });
}

async function handle(ctx: ConsoleContext, credentials: Credentials | undefined, req: IncomingMessage, res: ServerResponse) {
  if (!credentials) {
    const host = /^(\[[^\]]*\]|[^:]*)/.exec(req.headers.host ?? '')?.[1] ?? '';
    if (!isLoopback(host)) return send(req, res, 421, JSON_TYPE, json({ error: 'this console answers only to a loopback host name' }));
  } else if (!authorized(credentials, req.headers.authorization)) {
    return send(req, res, 401, JSON_TYPE, json({ error: 'authentication required' }), { 'WWW-Authenticate': challenge(credentials) });
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') return send(req, res, 405, JSON_TYPE, json({ error: 'read-only: GET only' }), { Allow: 'GET, HEAD' });
  const url = new URL(req.url ?? '/', 'http://console.invalid');
  if (url.pathname === '/') return send(req, res, 200, 'text/html; charset=utf-8', PAGE_HTML);
  if (url.pathname === '/app.js') return send(req, res, 200, 'text/javascript; charset=utf-8', PAGE_JS());
  if (url.pathname === '/app.css') return send(req, res, 200, 'text/css; charset=utf-8', PAGE_CSS);
  const api = API[url.pathname];
  if (!api) return send(req, res, 404, JSON_TYPE, json({ error: 'not found' }));
  const a = await api(ctx, url.searchParams);
  send(req, res, a.status, JSON_TYPE, json(a.body), a.headers);
}
