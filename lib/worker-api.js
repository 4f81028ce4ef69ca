'use strict';
// The API a Pool worker's module uses from inside the worker: require('comrade/worker').
// The bootstrap (lib/pool-worker.js) attaches the channel. The state lives on a global symbol so
// that a second copy of this package (say, a nested node_modules) still finds it.

const STATE = Symbol.for('comrade.worker.state');

function state() {
  const s = globalThis[STATE];
  if (!s) {
    const err = new Error('comrade/worker: not running inside a comrade Pool worker');
    err.code = 'ERR_NOT_IN_WORKER';
    throw err;
  }
  return s;
}

// Reports progress of the job this code runs for (found through AsyncLocalStorage, so it also
// works after an await). The caller's `onProgress` receives `value`.
function progress(value) {
  const s = state();
  const id = s.als.getStore();
  if (id === undefined) {
    const err = new Error('comrade/worker: progress() called outside a job');
    err.code = 'ERR_NO_JOB';
    throw err;
  }
  s.send('progress', id, value);
}

// Sends an event to the pool: pool.on('event', (name, data, pid) => ...).
function emit(name, data) {
  if (typeof name !== 'string') {
    throw new TypeError('comrade/worker: emit(name, data) needs a string name');
  }
  state().sendEvent(name, data);
}

// Asks the pool to send no more jobs here; the worker is stopped once the jobs it holds are
// answered, and replaced if work needs it.
function retire() {
  state().sendRetire();
}

module.exports = {
  progress,
  emit,
  retire,
  // True inside a pool worker.
  get isWorker() {
    return Boolean(globalThis[STATE]);
  },
  // The pool's `initData` (also passed to the module's init()).
  get initData() {
    return state().initData;
  },
  STATE,
};
