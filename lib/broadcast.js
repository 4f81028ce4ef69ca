'use strict';
// pool.broadcast(message): the checks every kind of pool makes before a message leaves (Pool,
// and a producer of a queue on Redis), and the error of a broadcast whose handlers failed.

const json = require('./json');
const binary = require('./binary');
const { codes, PoolError } = require('./errors');

// The message as JSON text, or throws the PoolError that rejects the broadcast.
function messageText(message, maxMessage) {
  let text;
  try {
    const t = typeof message;
    if (t === 'function' || t === 'symbol') throw new TypeError(`the message is a ${t}`);
    if (t === 'object' && message !== null && binary.hasBinary(message)) {
      throw new TypeError('it holds binary data (an ArrayBuffer or a view of one); broadcast ' +
        'messages travel as JSON');
    }
    // undefined (or a toJSON that returns it) is null, as for a job's argument.
    text = json.stringify(message) ?? 'null';
  } catch (e) {
    throw new PoolError(codes.UNSERIALIZABLE,
      `comrade Pool: the broadcast message cannot be serialized (${e.message})`);
  }
  if (text.length * 3 > maxMessage && Buffer.byteLength(text) > maxMessage) {
    throw new PoolError(codes.MESSAGE_TOO_LARGE,
      `the broadcast message is ${Buffer.byteLength(text)} bytes as JSON, more than ` +
      `maxMessage (${maxMessage})`, { maxMessage });
  }
  return text;
}

// ERR_BROADCAST_FAILED: `failures` are { pid, error } (and `host` in a queue on Redis).
function failedError(reached, failures) {
  const first = failures[0];
  const where = first.pid ? `worker ${first.pid}` : 'a worker';
  const on = first.host ? ` on host ${first.host}` : '';
  return new PoolError(codes.BROADCAST_FAILED,
    `the message handler failed in ${failures.length} of the ${reached} workers reached ` +
    `(${where}${on}: ${first.error.message})`, { reached, failures });
}

// A broadcast after close() or terminate().
function closedError() {
  return new PoolError(codes.POOL_CLOSED, 'the pool is closed: broadcast() is refused');
}

module.exports = { messageText, failedError, closedError };
