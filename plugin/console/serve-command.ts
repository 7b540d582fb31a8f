// `immudb-audit serve`: the auditor's console, a read-only page over the workbench's index and
// the verified reads, on 127.0.0.1 unless told otherwise (then with credentials).
import { InvalidArgumentError, type Command } from 'commander';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import type { WorkbenchContext } from '../workbench/commands.js';
import { AuthConfigError, loadCredentials } from './auth.js';
import { consoleServer } from './server.js';
import { checkTraceTemplate, TraceUrlError } from './trace-url.js';

interface ServeOptions {
  host: string;
  port: number;
  tokenFile?: string;
  basicAuthFile?: string;
  traceUrl?: string;
  statusUrl?: string;
  pseudonymKeyFile?: string;
  pseudonymKeyId?: string;
}

function parsePort(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n > 65535) throw new InvalidArgumentError('expected a port number (0: any free port)');
  return n;
}

function parseHttpUrl(v: string): string {
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new InvalidArgumentError(`not a URL: ${JSON.stringify(v)}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new InvalidArgumentError('expected an http or https URL');
  return u.href;
}

export function registerServe(program: Command, ctx: WorkbenchContext & { serverPublicKey: () => string | undefined }): void {
  program
    .command('serve')
    .description("the auditor's console: a read-only web page (search, timeline, verified entries, writers' status) over the same index and verified reads as the CLI")
    .option('--host <address>', 'listen address; anything but loopback needs --token-file or --basic-auth-file (or their environment variables)', '127.0.0.1')
    .option('--port <port>', 'listen port', parsePort, 8089)
    .option('--token-file <file>', 'file holding a bearer token every request must carry (or IMMUDB_AUDIT_CONSOLE_TOKEN)')
    .option('--basic-auth-file <file>', 'file holding "user:password" for HTTP basic authentication (or IMMUDB_AUDIT_CONSOLE_BASIC_AUTH)')
    .option('--trace-url <template>', "link to an entry's trace, {trace_id} replaced (e.g. http://localhost:16686/trace/{trace_id}; or IMMUDB_AUDIT_TRACE_URL)", process.env.IMMUDB_AUDIT_TRACE_URL)
    .option('--status-url <url>', "the plugin server's /status URL (e.g. http://127.0.0.1:9542/status), fetched by this server", parseHttpUrl)
    .option('--pseudonym-key-file <file>', 'pseudonym key file: search pseudonymised fields by their clear value')
    .option('--pseudonym-key-id <id>', 'its key id')
    .action(async (o: ServeOptions) => {
      let credentials;
      let traceTemplate;
      try {
        credentials = loadCredentials(o);
        traceTemplate = o.traceUrl ? checkTraceTemplate(o.traceUrl) : undefined;
      } catch (e) {
        if (e instanceof AuthConfigError || e instanceof TraceUrlError) throw new InvalidArgumentError(e.message);
        throw e;
      }
      const server = consoleServer(
        {
          ...ctx,
          signatureChecked: Boolean(ctx.serverPublicKey()),
          serverPublicKeyPem: ctx.serverPublicKey() ? readFileSync(ctx.serverPublicKey()!, 'utf8') : undefined,
          traceTemplate,
          statusUrl: o.statusUrl,
          keyOptions: { pseudonymKeyFile: o.pseudonymKeyFile, pseudonymKeyId: o.pseudonymKeyId },
        },
        credentials,
      );
      server.listen(o.port, o.host);
      await once(server, 'listening');
      const addr = server.address();
      const port = typeof addr === 'object' && addr ? addr.port : o.port;
      const host = o.host.includes(':') ? `[${o.host}]` : o.host;
      process.stdout.write(`immudb-audit console on http://${host}:${port}/ (read-only${credentials ? `, ${credentials.kind} authentication` : ', loopback only'})\n`);
      // Read-only: open connections can be cut at once.
      const stop = () => {
        server.close();
        server.closeAllConnections();
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      await once(server, 'close');
    });
}
