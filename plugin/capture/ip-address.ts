// IP addresses from untrusted text: parsed strictly (anything else is not an address), written
// in one canonical form (dotted IPv4; RFC 5952 IPv6, IPv4-mapped IPv6 as IPv4) so that one
// address always gives one pseudonym, and truncated to a network prefix on request.

export interface IpAddress {
  family: 4 | 6;
  /** 4 or 16 bytes. */
  bytes: Uint8Array;
}

const V4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

function parseV4(s: string): Uint8Array | null {
  if (!V4.test(s)) return null;
  return Uint8Array.from(s.split('.').map(Number));
}

function parseV6(s: string): Uint8Array | null {
  if (s.length > 45 || !/^[0-9a-fA-F:.]+$/.test(s)) return null;
  const halves = s.split('::');
  if (halves.length > 2) return null;
  const groups = (part: string): number[] | null => {
    if (part === '') return [];
    const out: number[] = [];
    const items = part.split(':');
    for (let i = 0; i < items.length; i++) {
      const g = items[i]!;
      if (i === items.length - 1 && g.includes('.')) {
        const v4 = parseV4(g);
        if (!v4) return null;
        out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
        out.push(parseInt(g, 16));
      }
    }
    return out;
  };
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if (!head || !tail) return null;
  // An embedded IPv4 part is only allowed at the very end.
  if (halves.length === 2 && halves[0]!.includes('.')) return null;
  let all: number[];
  if (halves.length === 2) {
    const missing = 8 - head.length - tail.length;
    if (missing < 1) return null;
    all = [...head, ...new Array<number>(missing).fill(0), ...tail];
  } else {
    all = head;
  }
  if (all.length !== 8) return null;
  const bytes = new Uint8Array(16);
  all.forEach((g, i) => {
    bytes[i * 2] = g >> 8;
    bytes[i * 2 + 1] = g & 0xff;
  });
  return bytes;
}

/**
 * An address from text: IPv4, IPv6 (brackets and a zone id are accepted and dropped), IPv4-mapped
 * IPv6 becomes IPv4. Null for anything else (host names, ports, garbage).
 */
export function parseIp(text: string): IpAddress | null {
  let s = text.trim();
  if (s.length === 0 || s.length > 64) return null;
  if (s.startsWith('[') && s.endsWith(']')) s = s.slice(1, -1);
  const v4 = parseV4(s);
  if (v4) return { family: 4, bytes: v4 };
  const zone = s.indexOf('%');
  if (zone > 0) s = s.slice(0, zone);
  const v6 = parseV6(s);
  if (!v6) return null;
  const mapped = v6.slice(0, 10).every((b) => b === 0) && v6[10] === 0xff && v6[11] === 0xff;
  if (mapped) return { family: 4, bytes: v6.slice(12) };
  return { family: 6, bytes: v6 };
}

/** Canonical text of an address (RFC 5952 for IPv6: lower case, longest zero run as ::). */
export function formatIp(ip: IpAddress): string {
  if (ip.family === 4) return Array.from(ip.bytes).join('.');
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((ip.bytes[i]! << 8) | ip.bytes[i + 1]!);
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestLen < 2) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/** The network of `ip` with a prefix length: the address with host bits cleared. */
export function maskIp(ip: IpAddress, prefix: number): IpAddress {
  const bits = ip.bytes.length * 8;
  const p = Math.max(0, Math.min(bits, Math.floor(prefix)));
  const bytes = Uint8Array.from(ip.bytes);
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, p - i * 8));
    bytes[i] = bytes[i]! & ((0xff << (8 - keep)) & 0xff);
  }
  return { family: ip.family, bytes };
}

/**
 * The canonical text of an address, truncated to its network when the prefix for its family is
 * shorter than a full address: "203.0.113.0/24", "2001:db8:1234::/48".
 */
export function truncatedIp(ip: IpAddress, v4Prefix: number, v6Prefix: number): string {
  const prefix = ip.family === 4 ? v4Prefix : v6Prefix;
  const full = ip.family === 4 ? 32 : 128;
  if (prefix >= full) return formatIp(ip);
  return `${formatIp(maskIp(ip, prefix))}/${prefix}`;
}
