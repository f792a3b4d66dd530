// Compiles the boxlite.yaml schema into a standalone validator at build time, so the CLI does not load ajv's
// compiler and compile the schema at every start (about 100 ms). The loader falls back to compiling it.
import * as fs from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import standaloneCode from 'ajv/dist/standalone/index.js';

const schema = JSON.parse(fs.readFileSync('schema/boxlite.schema.json', 'utf8'));
const ajv = new Ajv2020({ allErrors: true, verbose: true, strict: true, strictTuples: false, allowUnionTypes: true, code: { source: true } });
ajv.addKeyword({ keyword: 'x-expected', schemaType: 'string' });
const validate = ajv.compile(schema);
fs.mkdirSync('dist/src/spec', { recursive: true });
fs.writeFileSync('dist/src/spec/schema-validator.cjs', standaloneCode.default ? standaloneCode.default(ajv, validate) : standaloneCode(ajv, validate));
console.log('dist/src/spec/schema-validator.cjs: the boxlite.yaml validator');
