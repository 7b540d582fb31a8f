// Links to a trace in the trace backend, built by the server from a configured template
// (`http://localhost:16686/trace/{trace_id}`): the id is URL-encoded into it and only http and
// https URLs come out, so an entry's content can never become a `javascript:` link.

export class TraceUrlError extends Error {
  override readonly name = 'TraceUrlError';
}

const PLACEHOLDER = '{trace_id}';

export function checkTraceTemplate(template: string): string {
  if (!template.includes(PLACEHOLDER)) throw new TraceUrlError(`--trace-url must contain ${PLACEHOLDER}`);
  let url: URL;
  try {
    url = new URL(template.split(PLACEHOLDER).join('0af7651916cd43dd8448eb211c80319c'));
  } catch {
    throw new TraceUrlError(`--trace-url is not a URL: ${JSON.stringify(template)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TraceUrlError('--trace-url must be an http or https URL');
  return template;
}

/** The trace's URL, or null without a template or a W3C trace id. */
export function traceUrl(template: string | undefined, traceId: unknown): string | null {
  if (!template || typeof traceId !== 'string' || !/^[0-9a-f]{32}$/i.test(traceId)) return null;
  const url = new URL(template.split(PLACEHOLDER).join(encodeURIComponent(traceId.toLowerCase())));
  return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
}
