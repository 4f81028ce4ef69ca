'use strict';
// `require('comrade-pool/compute-cluster')` is the constructor itself, like `require('compute-cluster')`.
module.exports = require('./lib/compute-cluster').ComputeCluster;
