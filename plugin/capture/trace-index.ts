// The trace index: for an entry `<prefix>:entry:<id>` whose trace id is T, the key
// `<prefix>:trace:<T>:<id>` (value: the entry's key) is written in the same immudb transaction,
// so `immudb-audit find --trace T` reads a trace's entries by prefix instead of scanning all.

// In canonical JSON a top-level "trace_id" member is preceded by `{` or `,`; inside a string
// value the quote would be escaped, so a forged match cannot come from request data.
const TRACE_ID = /[{,]"trace_id":"([0-9a-f]{32})"/;
const ENTRY_KEY = /^(.*):entry:([0-9a-f-]{36})$/;

export function traceIndexPrefix(keyPrefix: string, traceId: string): string {
  return `${keyPrefix}:trace:${traceId}:`;
}

/** The index key/value of an encoded entry, or undefined when it has no trace id. */
export function traceIndexOf(key: Buffer, value: Buffer): { key: Buffer; value: Buffer } | undefined {
  const k = ENTRY_KEY.exec(key.toString('latin1'));
  if (!k) return undefined;
  const t = TRACE_ID.exec(value.toString('latin1'));
  if (!t) return undefined;
  return { key: Buffer.from(traceIndexPrefix(k[1]!, t[1]!) + k[2]!), value: key };
}
