// Converts Kong's KongPlugin / KongClusterPlugin CustomResourceDefinitions into the JSON Schema
// files kubeconform reads (`<kind>_<version>.json`, lower-case kind), as kubeconform's own
// openapi2jsonschema.py does: each version's openAPIV3Schema, with `additionalProperties: false`
// on every object that lists its properties (kubectl's strict validation) and int-or-string
// fields as either. The result is vendored in test/fixtures/crd-schemas/ with its origin.
//
//   node dist/scripts/vendor-crd-schemas.js <origin commit> <crd.yaml>...
//
// The CRDs come from github.com/Kong/kubernetes-configuration (MIT licence, see
// test/fixtures/crd-schemas/LICENSE.kubernetes-configuration).
import { readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import YAML from 'yaml';
import { projectRoot } from '../test/helpers/kong-driver.js';

type Json = Record<string, unknown>;

function strict(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(strict);
  if (!node || typeof node !== 'object') return node;
  const out: Json = {};
  for (const [k, v] of Object.entries(node as Json)) out[k] = strict(v);
  if (out['x-kubernetes-int-or-string'] === true) {
    delete out.type;
    out.oneOf = [{ type: 'string' }, { type: 'integer' }];
  }
  if (out.properties && !('additionalProperties' in out) && out['x-kubernetes-preserve-unknown-fields'] !== true) out.additionalProperties = false;
  return out;
}

const [commit, ...files] = process.argv.slice(2);
if (!commit || !files.length) {
  console.error('usage: vendor-crd-schemas <origin commit> <crd.yaml>...');
  process.exit(2);
}
const dir = join(projectRoot(), 'test', 'fixtures', 'crd-schemas');
for (const file of files) {
  const crd = YAML.parse(readFileSync(file, 'utf8')) as { spec: { names: { kind: string }; versions: Array<{ name: string; schema: { openAPIV3Schema: Json } }> } };
  for (const v of crd.spec.versions) {
    const name = `${crd.spec.names.kind.toLowerCase()}_${v.name}.json`;
    const schema = {
      $comment: `Converted by scripts/vendor-crd-schemas.ts from github.com/Kong/kubernetes-configuration@${commit} ${basename(file)} (MIT licence, Copyright (c) 2024 Kong: LICENSE.kubernetes-configuration)`,
      ...(strict(v.schema.openAPIV3Schema) as Json),
    };
    writeFileSync(join(dir, name), JSON.stringify(schema, null, 2) + '\n');
    console.log(name);
  }
}
