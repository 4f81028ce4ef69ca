'use strict';
// `require('comrade/compute-cluster')` is the constructor itself, like `require('compute-cluster')`.
module.exports = require('./lib/compute-cluster').ComputeCluster;
