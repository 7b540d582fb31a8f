// Keys of lifecycle entries: what happened to the log itself (a trust reset), recorded in the
// log next to the audit entries. Defined here until plugin/store/key-layout.ts (the key layout
// of every kind of key) lands; it then moves there.
export function lifecycleKey(prefix: string, id: string): string {
  return `${prefix}:lifecycle:${id}`;
}
