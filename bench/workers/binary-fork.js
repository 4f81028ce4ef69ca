'use strict';
// bench/binary.js: the bare fork contender's child (serialization: 'advanced').
process.on('message', (m) => process.send(m));
