'use strict';
// The demo's CPU-bound job: hash a seed, then hash the digest, n times.
// Pure computation with a checkable answer; about 2-3 µs per round.
const crypto = require('node:crypto');

function sha256Chain(seed, n) {
  let digest = Buffer.from(String(seed));
  for (let i = 0; i < n; i++) digest = crypto.createHash('sha256').update(digest).digest();
  return digest.toString('hex');
}

module.exports = { sha256Chain };
