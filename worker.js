'use strict';
// `require('comrade-pool/worker')`: the API for code running inside a Pool worker.
module.exports = require('./lib/worker-api');
