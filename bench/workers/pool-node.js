'use strict';
// Benchmark worker for bench/pool.js, comrade Pool + Node function worker:
// the default function echoes its argument; md5 is the luafan workload.
const crypto = require('node:crypto');

module.exports = (x) => x;
module.exports.md5 = (payload) => [payload, crypto.createHash('md5').update(payload).digest('hex')];
