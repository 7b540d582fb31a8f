// Points in time for --since/--until: RFC 3339 ("2026-12-01T09:30:00Z", "...+02:00", or a
// full date "2026-12-01", taken as midnight UTC) or a duration back from now ("30m", "24h", "7d").

const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 } as const;
const RELATIVE = /^(\d{1,9})([smhdw])$/;
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2}))?$/;

/** Milliseconds since the epoch, or an Error saying what is accepted. */
export function parseTimeSpec(text: string, now: number): number | Error {
  const rel = RELATIVE.exec(text);
  if (rel) return now - Number(rel[1]) * UNIT_MS[rel[2] as keyof typeof UNIT_MS];
  const m = RFC3339.exec(text);
  if (m) {
    const [, y, mo, d, h = '00', mi = '00', s = '00'] = m;
    // Date.parse rolls 02-30 over to March; a valid date survives the round trip.
    const day = new Date(Date.UTC(Number(y), Number(mo) - 1, Number(d)));
    const ms = Date.parse(m[4] === undefined ? `${text}T00:00:00Z` : text.replace(' ', 'T'));
    if (day.getUTCMonth() === Number(mo) - 1 && day.getUTCDate() === Number(d) && Number(h) < 24 && Number(mi) < 60 && Number(s) < 60 && Number.isFinite(ms)) return ms;
  }
  return new Error('expected an RFC 3339 time (2026-12-01T09:30:00Z, 2026-12-01) or a duration back from now (30m, 24h, 7d, 2w)');
}
