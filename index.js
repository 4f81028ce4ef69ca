'use strict';
// comrade: a process pool for Node.js with a Rust engine.

const { ComputeCluster } = require('./lib/compute-cluster');

module.exports = { ComputeCluster };
