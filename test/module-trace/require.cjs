// Preloaded with --require: appends every CommonJS module the process loads to $MODULE_TRACE.
const Module = require('node:module');
const fs = require('node:fs');
const load = Module._load;
Module._load = function (request, parent, isMain) {
  const loaded = load.apply(this, arguments);
  try {
    fs.appendFileSync(process.env.MODULE_TRACE, `${Module._resolveFilename(request, parent, isMain)}\n`);
  } catch {} // a built-in has no file name
  return loaded;
};
