// Generates the configuration reference of docs/operations.md from the plugin's schema (the one
// GetPluginInfo hands to Kong), so that the documentation cannot drift from the code:
//   npx tsc -p . && node dist/scripts/gen-config-docs.js          # rewrite the section
//   node dist/scripts/gen-config-docs.js --check                  # exit 1 if it is stale
// test/unit/kong-yml.test.ts fails when the section is stale.
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { configFields } from '../plugin/config/schema.js';
import type { KongField, KongFieldList } from '../plugin/config/kong-schema.js';

export const BEGIN = '<!-- BEGIN GENERATED: configuration reference (scripts/gen-config-docs.ts; do not edit by hand) -->';
export const END = '<!-- END GENERATED: configuration reference -->';

/** Markdown-safe table cell text (no HTML: `<key_prefix>` would be taken for a tag). */
function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/</g, '&lt;').replace(/\r?\n/g, ' ');
}

/** A code span; one that contains a backtick is fenced with two. */
function code(text: string): string {
  const t = text.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
  return t.includes('`') ? `\`\` ${t} \`\`` : `\`${t}\``;
}

function typeName(f: KongField): string {
  if (f.type === 'array') return `array of ${typeName(f.elements)}`;
  return f.type;
}

function constraints(f: KongField, prefix = ''): string[] {
  const out: string[] = [];
  const any = f as KongField & { between?: [number, number]; gt?: number; one_of?: string[]; match?: string; len_min?: number; len_max?: number };
  if (any.between) out.push(`${prefix}${any.between[0]} to ${any.between[1]}`);
  if (any.gt !== undefined) out.push(`${prefix}> ${any.gt}`);
  if (any.one_of) out.push(`${prefix}one of ${any.one_of.map((v) => code(String(v))).join(', ')}`);
  if (any.len_min !== undefined && any.len_max !== undefined) out.push(`${prefix}length ${any.len_min} to ${any.len_max}`);
  else if (any.len_min !== undefined) out.push(`${prefix}length at least ${any.len_min}`);
  else if (any.len_max !== undefined) out.push(`${prefix}${f.type === 'array' ? 'at most' : 'length at most'} ${any.len_max}${f.type === 'array' ? ' elements' : ''}`);
  if (any.match) out.push(`${prefix}matches ${code(any.match)}`);
  // Rules with the plugin's own message (Kong's `err`): the message says the rule.
  if (f.eq === null && f.err) out.push(`${prefix}any value refused: ${cell(f.err)}`);
  if (f.type === 'string' && f.match_any) out.push(`${prefix}${cell(f.match_any.err)}`);
  if (f.type === 'string' && f.match_none) out.push(...[...new Set(f.match_none.map((m) => m.err))].map((e) => `${prefix}refused: ${cell(e)}`));
  if (f.err && f.eq !== null) out.push(`${prefix}else: ${cell(f.err)}`);
  if (f.type === 'record') {
    for (const c of f.entity_checks ?? []) {
      if ('conditional_at_least_one_of' in c) out.push(cell(c.conditional_at_least_one_of.then_err).replace('%s', c.conditional_at_least_one_of.then_at_least_one_of.map((n) => code(n)).join(', ')));
      else out.push(`all or none of ${c.mutually_required.map((n) => code(n)).join(', ')}`);
    }
  }
  if (f.type === 'array') out.push(...constraints(f.elements, 'each: '));
  return out;
}

function defaultText(f: KongField): string {
  if (f.type === 'record') return '(record)';
  const d = 'default' in f ? f.default : undefined;
  if (d === undefined || d === null) return 'none';
  return code(JSON.stringify(d));
}

function rows(fields: KongFieldList, prefix: string, out: string[]): void {
  for (const entry of fields) {
    for (const [name, f] of Object.entries(entry)) {
      const path = `${prefix}${name}`;
      const flags: string[] = [];
      if (f.required) flags.push('required');
      const s = f as KongField & { encrypted?: boolean; referenceable?: boolean };
      if (s.encrypted) flags.push('**secret**');
      if (s.referenceable) flags.push('vault reference allowed');
      const notes = [...flags, ...constraints(f)].join('; ');
      out.push(`| ${code(path)} | ${typeName(f)} | ${defaultText(f)} | ${notes || ' '} | ${cell(f.description ?? '')} |`);
      if (f.type === 'record') rows(f.fields, `${path}.`, out);
    }
  }
}

/** The generated section (between and including the markers). */
export function renderConfigReference(fields: KongFieldList = configFields): string {
  const out = [
    BEGIN,
    '',
    'Every field of the plugin\'s `config`, as its schema declares it: Kong validates `kong.yml` against this schema, and the plugin validates again when an instance starts. A "required" field always has a value: its default when `kong.yml` sets none. "matches" gives a Kong `match` validator, which is a Lua pattern (Kong applies it with `string.match`), not a regular expression.',
    '',
    '| field | type | default | constraints | meaning |',
    '|---|---|---|---|---|',
  ];
  rows(fields, '', out);
  out.push('', END);
  return out.join('\n');
}

/** `doc` with its generated section replaced by `section`; throws if the markers are missing. */
export function replaceSection(doc: string, section: string): string {
  const a = doc.indexOf(BEGIN);
  const b = doc.indexOf(END);
  if (a < 0 || b < a) throw new Error(`docs/operations.md: markers not found (${BEGIN} ... ${END})`);
  return doc.slice(0, a) + section + doc.slice(b + END.length);
}

/** The project's root (the directory of package.json "kong-immudb-audit"), from this file upwards. */
export function projectRootFrom(start: string): string {
  for (let dir = start; ; dir = dirname(dir)) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'kong-immudb-audit') return dir;
    if (dirname(dir) === dir) throw new Error('gen-config-docs: project root not found');
  }
}

export const docPath = () => join(projectRootFrom(dirname(fileURLToPath(import.meta.url))), 'docs', 'operations.md');

function main(argv: string[]): number {
  const file = docPath();
  const doc = readFileSync(file, 'utf8');
  const updated = replaceSection(doc, renderConfigReference());
  if (argv.includes('--check')) {
    if (updated !== doc) {
      process.stderr.write(`${file}: the configuration reference is stale; run: npx tsc -p . && node dist/scripts/gen-config-docs.js\n`);
      return 1;
    }
    return 0;
  }
  if (updated !== doc) writeFileSync(file, updated);
  process.stdout.write(`${file}: configuration reference ${updated !== doc ? 'updated' : 'already up to date'}\n`);
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) process.exitCode = main(process.argv.slice(2));
