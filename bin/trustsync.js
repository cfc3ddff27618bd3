#!/usr/bin/env node
// The compiled CLI; `npm install` builds it (the `prepare` script).
import('../dist/src/cli/main.js').catch((err) => {
  if (err && err.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes('dist/src/cli/main.js')) {
    console.error('trustsync is not built yet: run `npm install` (or `npm run build`) in the trustsync folder.');
    process.exit(2);
  }
  throw err;
});
