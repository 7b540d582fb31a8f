// The same JSON data with every object's members in reverse order: an entry that canonical JSON
// must sort (its sorted-copy path), for the tests of canonical-json.ts and benchmark 5.

export function reverseMembers(v: unknown): unknown {
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map(reverseMembers);
  return Object.fromEntries(Object.entries(v).reverse().map(([k, x]) => [k, reverseMembers(x)]));
}
