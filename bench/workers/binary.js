'use strict';
// Binary payloads for bench/binary-rss.js and bench/binary.js.
exports.length = (buf) => buf.length;
exports.make = (n) => Buffer.alloc(n, 2);
exports.echo = (buf) => buf;
