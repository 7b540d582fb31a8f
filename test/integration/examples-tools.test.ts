// The configuration examples checked by the tools that own their formats: the Kubernetes
// manifests by kubeconform (built from its Go module) against Kong's own KongPlugin /
// KongClusterPlugin CRD schemas, the decK file and kong.yml by decK's own JSON schema of its
// file format (vendored: test/fixtures/*/README.md say from where). That the plugin's config in
// them is valid for Kong and the plugin is test/unit/kong-yml.test.ts's job.
import test from 'ava';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import YAML from 'yaml';
import { projectRoot } from '../helpers/kong-driver.js';

const root = projectRoot();
const crdDir = join(root, 'test', 'fixtures', 'crd-schemas');

interface KubeconformResult {
  resources: Array<{ filename: string; kind: string; name: string; status: string; msg: string }>;
  summary: { valid: number; invalid: number; errors: number; skipped: number };
}

/** kubeconform with Kong's CRD schemas only (no download: other kinds are skipped, and said so). */
function kubeconform(...files: string[]): { code: number; result: KubeconformResult } {
  const bin = execFileSync('bash', [join(root, 'kong', 'install-kubeconform.sh')], { encoding: 'utf8' }).trim();
  const r = spawnSync(bin, ['-strict', '-summary', '-verbose', '-output', 'json', '-ignore-missing-schemas', '-schema-location', join(crdDir, '{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json'), ...files], { encoding: 'utf8' });
  return { code: r.status ?? -1, result: JSON.parse(r.stdout) as KubeconformResult };
}

const manifests = () => readdirSync(join(root, 'examples', 'kubernetes')).filter((f) => f.endsWith('.yaml')).map((f) => join(root, 'examples', 'kubernetes', f));

test('examples/kubernetes: every KongPlugin and KongClusterPlugin is valid for the CRD schema (kubeconform -strict)', (t) => {
  const { code, result } = kubeconform(...manifests());
  const kong = result.resources.filter((r) => r.kind === 'KongPlugin' || r.kind === 'KongClusterPlugin');
  t.deepEqual(kong.map((r) => r.kind).sort(), ['KongClusterPlugin', 'KongPlugin']);
  t.deepEqual(kong.filter((r) => r.status !== 'statusValid'), [], 'valid');
  t.is(result.summary.invalid + result.summary.errors, 0, JSON.stringify(result.resources));
  t.is(code, 0);
  // The CRDs' CEL rules (x-kubernetes-validations), which kubeconform does not evaluate.
  for (const file of manifests()) {
    for (const doc of YAML.parseAllDocuments(readFileSync(file, 'utf8')).map((d) => d.toJS() as Record<string, unknown>)) {
      if (doc.kind !== 'KongPlugin' && doc.kind !== 'KongClusterPlugin') continue;
      t.false('config' in doc && 'configFrom' in doc, 'Using both config and configFrom fields is not allowed.');
      t.false('configFrom' in doc && 'configPatches' in doc, 'Using both configFrom and configPatches fields is not allowed.');
      t.is(doc.plugin, 'immudb-audit');
    }
  }
});

test('kubeconform refuses what the CRD schema refuses (the check has teeth)', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kia-kubeconform-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const bad = join(dir, 'bad.yaml');
  writeFileSync(bad, 'apiVersion: configuration.konghq.com/v1\nkind: KongPlugin\nmetadata: {name: x}\nplugin: immudb-audit\nconfg: {immudb_host: immudb}\n---\napiVersion: configuration.konghq.com/v1\nkind: KongClusterPlugin\nmetadata: {name: y}\nconfig: {}\n');
  const { code, result } = kubeconform(bad);
  t.is(code, 1);
  t.is(result.summary.invalid, 2, JSON.stringify(result.resources));
  const msg = (kind: string) => result.resources.find((r) => r.kind === kind)?.msg ?? '';
  t.regex(msg('KongPlugin'), /additional properties 'confg' not allowed/);
  t.regex(msg('KongClusterPlugin'), /missing property 'plugin'/);
  for (const f of ['kongplugin_v1.json', 'kongclusterplugin_v1.json']) {
    t.regex((JSON.parse(readFileSync(join(crdDir, f), 'utf8')) as { $comment: string }).$comment, /Kong\/kubernetes-configuration@[0-9a-f]{40} .*MIT/);
  }
});

/** decK's schema, compiled as gojsonschema reads it (draft-04; the keywords it uses mean the same in ajv's draft-07). */
function deckValidator() {
  const schema = JSON.parse(readFileSync(join(root, 'test', 'fixtures', 'deck', 'kong_json_schema.json'), 'utf8'), (k, v: unknown) => (k === '$schema' ? undefined : v)) as object;
  return new Ajv({ strict: false, allErrors: true }).compile(schema);
}

test("examples/deck/kong.yaml and kong/kong.yml are valid for decK's own schema of its file format", (t) => {
  const validate = deckValidator();
  for (const file of [join(root, 'examples', 'deck', 'kong.yaml'), join(root, 'kong', 'kong.yml')]) {
    const doc = YAML.parse(readFileSync(file, 'utf8')) as unknown;
    t.true(validate(doc), `${file}: ${JSON.stringify(validate.errors)}`);
  }
  // ... and the schema refuses what decK refuses: a misspelt plugin key, a plugin without a name.
  t.false(validate({ _format_version: '3.0', plugins: [{ name: 'immudb-audit', confg: {} }] }));
  t.false(validate({ _format_version: '3.0', services: [{ name: 's', url: 'http://x', routes: [{ name: 'r', plugins: [{ config: {} }] }] }] }));
});
