'use strict';
// Benchmark worker for bench/pool.js, npm workerpool in process mode.
const crypto = require('node:crypto');
const workerpool = require('workerpool');

workerpool.worker({
  echo: (x) => x,
  md5: (payload) => [payload, crypto.createHash('md5').update(payload).digest('hex')],
});
