'use strict';
// Benchmark worker for bench/large-args.js: takes a large argument and answers its size, or
// makes a large result.
module.exports = {
  size: (v) => (typeof v === 'string' ? v.length : v.length),
  make: (n) => 'r'.repeat(n),
};
