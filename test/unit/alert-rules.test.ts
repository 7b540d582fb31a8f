// The alert rules shipped in docs/operations.md and examples/prometheus are the same, and every
// metric they use is one the plugin server exports.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { projectRoot } from '../helpers/kong-driver.js';
import { AuditMetrics } from '../../plugin/telemetry/metrics.js';

const file = readFileSync(join(projectRoot(), 'examples', 'prometheus', 'kong-immudb-audit.rules.yml'), 'utf8');

test('the rules file is the block of docs/operations.md', (t) => {
  const doc = readFileSync(join(projectRoot(), 'docs', 'operations.md'), 'utf8');
  const block = /```yaml\n(groups:\n[\s\S]*?)```/.exec(doc)?.[1];
  t.truthy(block);
  t.true(file.endsWith(block!), 'examples/prometheus/kong-immudb-audit.rules.yml ends with the block of docs/operations.md');
});

test('every rule has an alert name, an expression on exported metrics, a severity and a summary', async (t) => {
  const rules = (YAML.parse(file) as { groups: Array<{ rules: Array<{ alert: string; expr: string; labels: { severity: string }; annotations: { summary: string } }> }> }).groups.flatMap((g) => g.rules);
  t.true(rules.length >= 5);
  const exported = new Set((await new AuditMetrics().registry.getMetricsAsJSON()).map((m) => m.name));
  for (const r of rules) {
    t.regex(r.alert, /^[A-Z][A-Za-z]+$/);
    t.true(['critical', 'warning'].includes(r.labels.severity), r.alert);
    t.truthy(r.annotations.summary, r.alert);
    for (const name of r.expr.match(/kong_immudb_audit_[a-z_]+/g) ?? []) t.true(exported.has(name), `${r.alert}: ${name} is exported`);
  }
  for (const name of ['kong_immudb_audit_write_failing', 'kong_immudb_audit_permanent_error', 'kong_immudb_audit_writer_halted', 'kong_immudb_audit_entries_refused_total']) {
    t.true(rules.some((r) => r.expr.includes(name)), `an alert on ${name}`);
  }
});

test('docs/operations.md lists every exported metric', async (t) => {
  const doc = readFileSync(join(projectRoot(), 'docs', 'operations.md'), 'utf8');
  for (const m of await new AuditMetrics().registry.getMetricsAsJSON()) t.true(doc.includes(`| \`${m.name}\` |`), `${m.name} in the metric list`);
});
