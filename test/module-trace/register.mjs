// Loaded with --import: registers hooks.mjs, so ES modules are traced as require.cjs traces CommonJS ones.
import { register } from 'node:module';
register('./hooks.mjs', import.meta.url);
