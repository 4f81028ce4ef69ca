'use strict';
// Preloaded (`node --require`) into every ComputeCluster worker; the worker script itself is
// unchanged. compute-cluster's protocol carries no job ids, so a worker that answers one job
// twice could have its second message taken as the next job's reply. Here the worker side
// marks every message sent after a job was already answered, and before the next job
// arrived, as stray; the pool drops it with an 'info' instead of misdelivering it.
// A `NODE_`-prefixed command is internal to Node's IPC, so the marker never reaches a user listener.

if (typeof process.send === 'function') {
  const send = process.send;
  const emit = process.emit;
  let answered = true;
  // Wrapping emit (not adding a 'message' listener) leaves the channel's ref count, and so
  // the worker's exit behaviour, exactly as the script made it.
  // `arguments` rather than rest parameters: every event of the process passes through here,
  // and this allocates nothing on the way.
  process.emit = function comradeEmit(event) {
    if (event === 'message') answered = false;
    return Reflect.apply(emit, this, arguments);
  };
  process.send = function comradeSend(message) {
    // Node-internal messages are no replies; they pass through and the pool ignores them.
    if (!isInternal(message)) {
      if (answered) arguments[0] = { cmd: 'NODE_COMRADE_STRAY', msg: message };
      else answered = true;
    }
    return Reflect.apply(send, this, arguments);
  };
}

function isInternal(message) {
  return message !== null && typeof message === 'object' &&
    typeof message.cmd === 'string' && message.cmd.startsWith('NODE_');
}
