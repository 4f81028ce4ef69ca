'use strict';
// `require('comrade/worker')`: the API for code running inside a Pool worker.
module.exports = require('./lib/worker-api');
