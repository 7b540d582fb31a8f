// The plugin's version: a leaf read by what Kong loads (plugin-info.ts) and by the auditor's
// CLI, which must not load the handler and its pipeline for it.
export const Version = '0.1.0';
