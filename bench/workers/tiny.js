'use strict';
// A tiny job for bench/responsiveness.js and bench/soak.js: echo. Serves as a comrade Pool
// module (default export) and, through process.on('message'), as a compute-cluster worker.
module.exports = (x) => x;
if (typeof process.send === 'function') {
  process.on('message', (m) => process.send(m));
}
