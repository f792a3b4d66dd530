// Rewrites the boxlite.yaml reference in README.md from the JSON Schema (npm run docs).
import * as fs from 'node:fs';
import { projectSchema } from '../dist/src/spec/load.js';
import { schemaReference, REFERENCE_START, REFERENCE_END } from '../dist/src/spec/reference.js';

const readme = fs.readFileSync('README.md', 'utf8');
const a = readme.indexOf(REFERENCE_START);
const b = readme.indexOf(REFERENCE_END);
if (a < 0 || b < 0) throw new Error('README.md has no reference markers');
fs.writeFileSync('README.md', readme.slice(0, a + REFERENCE_START.length) + '\n\n' + schemaReference(projectSchema()) + '\n\n' + readme.slice(b));
console.log('README.md: boxlite.yaml reference updated');
