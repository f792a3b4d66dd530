// Loads the agent bundle with V8's code cache (made by `boxlite setup` with this same node binary), so the guest
// does not parse and compile the whole bundle at every boot. Falls back to a plain load if the cache is refused.
const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');
const Module = require('node:module');

const file = path.join(__dirname, 'agent.cjs');
const source = fs.readFileSync(file, 'utf8');
let cachedData;
try {
  // One cache per set of V8 flags the agent runs with (V8 refuses a cache made under others): see start.sh.
  cachedData = fs.readFileSync(process.execArgv.includes('--jitless') ? `${file}.jitless.cache` : `${file}.cache`);
} catch {}
const script = new vm.Script(Module.wrap(source), { filename: file, cachedData });
const makeCache = process.argv[2] === '--make-cache';
if (cachedData && script.cachedDataRejected) process.stderr.write('boxlite-agent: code cache refused, compiling\n');
const mod = new Module(file, module);
mod.filename = file;
mod.paths = Module._nodeModulePaths(__dirname);
try {
  script.runInThisContext()(mod.exports, (id) => mod.require(id), mod, file, __dirname);
} catch (e) {
  if (!makeCache) throw e;
}
if (makeCache) {
  // Made on the host at setup: the run above stops where it looks for the guest's ports, after every module has
  // initialised and the proto has been loaded, so the cache holds the functions a boot needs.
  fs.writeFileSync(process.argv[3], script.createCachedData());
  process.exit(0);
}
