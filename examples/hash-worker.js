'use strict';
// A plain compute-cluster worker script: one { seed, n } in, one hex digest out.
const { sha256Chain } = require('./sha256-chain.js');

process.on('message', ({ seed, n }) => {
  process.send(sha256Chain(seed, n));
});
