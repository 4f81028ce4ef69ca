'use strict';
// comrade: a process pool for Node.js with a Rust engine.

const { ComputeCluster } = require('./lib/compute-cluster');
const { Pool, PoolError, codes, ncpu } = require('./lib/pool');
const { startWorkerHost } = require('./lib/remote/host');

module.exports = { Pool, PoolError, codes, ncpu, ComputeCluster, startWorkerHost };
