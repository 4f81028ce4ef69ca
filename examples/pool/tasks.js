'use strict';
// A Pool worker module: named functions, sync or async, plus an optional init.
const crypto = require('node:crypto');
const { progress, emit, onMessage } = require('comrade-pool/worker');

let salt = '';

// pool.broadcast({ salt }) changes the salt of every worker; the broadcast resolves once each
// live worker has it.
onMessage((message) => {
  if (typeof message.salt === 'string') salt = message.salt;
});

module.exports = {
  // Runs once in each worker before its first job, with the pool's initData.
  init(data) {
    salt = data.salt;
  },
  // CPU-bound: many rounds of sha256.
  hash(text, rounds = 1000) {
    let h = salt + text;
    for (let i = 0; i < rounds; i++) h = crypto.createHash('sha256').update(h).digest('hex');
    return h;
  },
  // Async, with progress reports and an event.
  async countdown(n) {
    for (let i = n; i > 0; i--) {
      progress(i);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    emit('countdown-done', { n, pid: process.pid });
    return 'liftoff';
  },
  fail(message) {
    const err = new RangeError(message);
    err.code = 'E_TOO_FAR';
    throw err;
  },
};
