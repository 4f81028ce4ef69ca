'use strict';
// Benchmark worker for bench/pool.js, npm piscina (worker threads). Called by
// name ({ name: 'echo' } / { name: 'md5' }): piscina only looks up a named
// export when the module itself is not a function.
const crypto = require('node:crypto');

module.exports = {
  echo: (x) => x,
  md5: (payload) => [payload, crypto.createHash('md5').update(payload).digest('hex')],
};
