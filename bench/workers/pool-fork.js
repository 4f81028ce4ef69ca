'use strict';
// Benchmark worker for bench/pool.js, bare pipelined child_process.fork: each
// message is [id, fn, arg]; the reply [id, result] goes out at once, so many
// jobs can be in flight and the parent matches replies by id.
const crypto = require('node:crypto');

process.on('message', ([id, fn, arg]) => {
  process.send([id, fn === 'md5' ? [arg, crypto.createHash('md5').update(arg).digest('hex')] : arg]);
});
