'use strict';
// Preloaded (`node --require`) into every ComputeCluster worker; the worker script itself is
// unchanged. compute-cluster's protocol carries no job ids, so a worker that answers one job
// twice could have its second message taken as the next job's reply. Here ids travel in
// envelopes the script never sees:
// - each job arrives as {cmd: 'NODE_COMRADE_JOB', id, m: args}. A `NODE_` command is internal
//   to Node's IPC (Node emits it as 'internalMessage'), so the script cannot see or count it;
//   this preload notes the id and emits `m` as the script's 'message'.
// - every process.send(message) leaves as {cmd: 'NODE_COMRADE', id, m: message}, `id` the
//   job the script last received (-1: none yet). The engine finds the envelope by its fixed
//   prefix, without parsing `m`, and takes the message as that job's reply only if that job
//   is still in flight there: a second answer, or one sent before any job, is dropped with an
//   'info'. A second answer sent after the next job reached the script carries the next
//   job's id and cannot be told apart (see README, "Differences from compute-cluster").

if (typeof process.send === 'function') {
  const send = process.send;
  const emit = process.emit;
  const JOB = 'NODE_COMRADE_JOB';
  let current = -1;
  // Jobs that arrived before the script listened for 'message' (Node holds ordinary messages
  // back the same way, until a listener is added).
  let held = null;

  // Wrapping emit (not adding a 'message' listener) leaves the channel's ref count, and so
  // the worker's exit behaviour, exactly as the script made it.
  // `arguments` rather than rest parameters: every event of the process passes through here,
  // and this allocates nothing on the way.
  process.emit = function comradeEmit(event, message) {
    if (event === 'internalMessage' && message !== null && typeof message === 'object' &&
        message.cmd === JOB) {
      if (this.listenerCount('message') === 0) {
        (held ??= []).push(message);
        return false;
      }
      current = message.id;
      return emit.call(this, 'message', message.m);
    }
    return Reflect.apply(emit, this, arguments);
  };

  process.on('newListener', (event) => {
    if (event === 'message' && held !== null) process.nextTick(release);
  });

  process.send = function comradeSend(message) {
    // What Node refuses (undefined, a function, a symbol, a BigInt) goes to Node as it is, to
    // throw there; Node-internal messages pass through and the pool ignores them.
    const type = typeof message;
    if ((type === 'object' || type === 'string' || type === 'number' || type === 'boolean') &&
        !isInternal(message)) {
      arguments[0] = { cmd: 'NODE_COMRADE', id: current, m: message };
    }
    return Reflect.apply(send, this, arguments);
  };

  function release() {
    if (held === null || process.listenerCount('message') === 0) return;
    const jobs = held;
    held = null;
    for (const job of jobs) process.emit('internalMessage', job);
  }
}

// Node's own test (lib/internal/child_process.js).
function isInternal(message) {
  return message !== null && typeof message === 'object' && typeof message.cmd === 'string' &&
    message.cmd.length > 5 && message.cmd.startsWith('NODE_');
}
