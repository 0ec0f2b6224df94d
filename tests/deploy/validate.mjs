// Validates Kubernetes objects against Kubernetes' own OpenAPI schemas,
// offline, with the npm package kubernetes-models (its classes carry the
// schema of each kind; validate() throws on a violation).
// Reads a JSON array of {"name": label, "object": {...}} on stdin; prints
// one JSON line per object {"name", "ok", "error"}; exit 0 when it could
// judge them all (the caller decides which must pass and which must fail),
// 2 when a kind has no model.
// Usage: node validate.mjs NODE_MODULES_PARENT < objects.json
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(path.resolve(process.argv[2], 'node_modules', 'x.js'));
const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const items = JSON.parse(Buffer.concat(chunks).toString('utf8'));
let unknown = 0;
for (const { name, object } of items) {
  const [group, version] = object.apiVersion.includes('/')
    ? object.apiVersion.split('/') : [null, object.apiVersion];
  const mod = `kubernetes-models/${group ? group + '/' : ''}${version}/${object.kind}`;
  let Model;
  try {
    Model = require(mod)[object.kind];
  } catch (e) {
    console.log(JSON.stringify({ name, ok: false, error: `no model ${mod}` }));
    unknown++;
    continue;
  }
  try {
    new Model(object).validate();
    console.log(JSON.stringify({ name, ok: true }));
  } catch (e) {
    console.log(JSON.stringify({ name, ok: false, error: String(e.message).slice(0, 500) }));
  }
}
process.exit(unknown ? 2 : 0);
