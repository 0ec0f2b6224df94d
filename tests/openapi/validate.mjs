// openapi.validate: docs/openapi.yaml is a valid OpenAPI 3.1 document
// (@apidevtools/swagger-parser: the schema of the OpenAPI specification,
// every $ref resolved), and the copy the daemon serves
// (src/http/static/openapi.json) says exactly the same.
// Usage: node validate.mjs SOURCE_DIR NODE_MODULES_DIR [DOCUMENT]
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import path from 'node:path';

const [src, modules, doc] = process.argv.slice(2);
const require = createRequire(path.resolve(modules, 'node_modules', 'x.js'));
const SwaggerParser = require('@apidevtools/swagger-parser');

const file = doc ?? path.join(src, 'docs', 'openapi.yaml');
let api;
try {
  api = await SwaggerParser.validate(file);
} catch (e) {
  console.error(`openapi.validate: ${file} is not a valid OpenAPI document:\n${e.message}`);
  process.exit(1);
}
if (api.openapi !== '3.1.0') {
  console.error(`openapi.validate: want OpenAPI 3.1.0, the document says ${api.openapi}`);
  process.exit(1);
}
const n = Object.values(api.paths).reduce(
  (k, p) => k + Object.keys(p).filter((m) => m !== 'parameters').length, 0);
console.log(`openapi.validate: ${file}: valid OpenAPI ${api.openapi}, ` +
            `${Object.keys(api.paths).length} paths, ${n} operations`);
// The validator must be able to say no: the same document with one
// operation's responses made a string (they must be an object) is refused.
const broken = structuredClone(await new SwaggerParser().parse(file));
broken.paths['/v1/orders'].post.responses = 'none';
try {
  await SwaggerParser.validate(broken);
  console.error('openapi.validate: a document with responses: "none" passed: the validator checks nothing');
  process.exit(1);
} catch (e) {
  console.log('openapi.validate: a broken copy is refused, as it must be');
}
if (doc === undefined) {
  // The served copy: parse both without dereferencing and compare.
  const yaml = await SwaggerParser.parse(path.join(src, 'docs', 'openapi.yaml'));
  const json = JSON.parse(readFileSync(path.join(src, 'src', 'http', 'static', 'openapi.json'), 'utf8'));
  if (JSON.stringify(yaml) !== JSON.stringify(json)) {
    console.error('openapi.validate: src/http/static/openapi.json differs from ' +
                  'docs/openapi.yaml: run scripts/openapi-json.py');
    process.exit(1);
  }
  console.log('openapi.validate: src/http/static/openapi.json matches');
}
