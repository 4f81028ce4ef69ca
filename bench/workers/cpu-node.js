'use strict';
// Worker for bench/worker-cpu.js: the workloads of bench/workers/pool-node.js, and `cpu`, this
// process's own CPU time so far (so that the harness reads the worker's CPU, not the pool's).
const crypto = require('node:crypto');

module.exports = (x) => x;
module.exports.md5 = (payload) => [payload, crypto.createHash('md5').update(payload).digest('hex')];
module.exports.cpu = () => process.cpuUsage();
