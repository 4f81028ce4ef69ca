'use strict';
// bench/binary.js: the piscina contender's worker; the buffer goes back moved, not copied.
const { move } = require('piscina');

module.exports = (buf) => move(buf);
