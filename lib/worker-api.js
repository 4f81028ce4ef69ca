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
// It is written at once, even from synchronous code; while the channel is busy only the latest
// value per job waits (a flood of calls does not pile up).
function progress(value) {
  const s = state();
  const job = currentJob(s, 'progress()');
  s.sendProgress(job.id, value);
}

function currentJob(s, what) {
  const job = s.als.getStore();
  if (job === undefined) {
    const err = new Error(`comrade/worker: ${what} called outside a job`);
    err.code = 'ERR_NO_JOB';
    throw err;
  }
  return job;
}

// The AbortSignal of the job this code runs for: it aborts when the pool cancels the job (its
// caller aborted it, or it ran past its timeout), with an AbortError as its reason. Stop the
// work then (the answer is not delivered, but it frees the job's place on this worker); a job
// that goes on past the pool's cancelGraceMs has its worker killed.
function getSignal() {
  const job = currentJob(state(), 'signal');
  if (job.controller === null) job.controller = new AbortController();
  return job.controller.signal;
}

// The caller's trace context for the job this code runs for: { traceparent } (a W3C
// traceparent: a tracer's span here continues the caller's trace), or null when the call
// carries none (nobody traced it in the parent, or the tracer gave none).
function traceContext() {
  const tp = currentJob(state(), 'traceContext()').traceparent;
  return typeof tp === 'string' ? { traceparent: tp } : null;
}

// Sends an event to the pool: pool.on('event', (name, data, pid) => ...).
function emit(name, data) {
  if (typeof name !== 'string') {
    throw new TypeError('comrade/worker: emit(name, data) needs a string name');
  }
  state().sendEvent(name, data);
}

// Registers `handler(message)` for the pool's broadcasts (`pool.broadcast(message)`). Every
// handler registered runs for each message, in the order they were registered; the worker
// acknowledges the message once they have all returned (a returned Promise is awaited), which
// counts this worker as reached. A handler that throws (or rejects) still lets the ack go, with
// its error: the broadcast then rejects with ERR_BROADCAST_FAILED. A worker without a handler
// acknowledges messages and ignores them. Returns a function that removes the handler.
function onMessage(handler) {
  if (typeof handler !== 'function') {
    throw new TypeError('comrade/worker: onMessage(handler) needs a function');
  }
  const handlers = state().messageHandlers;
  const entry = { handler };
  handlers.push(entry);
  return function off() {
    const i = handlers.indexOf(entry);
    if (i !== -1) handlers.splice(i, 1);
  };
}

// Asks the pool to send no more jobs here; the worker is stopped once the jobs it holds are
// answered, and replaced if work needs it.
function retire() {
  state().sendRetire();
}

// The pool's `initData` (also passed to the module's init()). The pool gives it to the worker
// after its module has loaded, so it is there in init() and in every job, never at the module's
// top level: reading it there throws (instead of a silent `undefined` kept forever by a
// destructuring `const { initData } = require(...)`).
function getInitData() {
  const s = state();
  if (!s.initDataReady) {
    const err = new Error('comrade-pool/worker: initData is not available yet (the module is ' +
      'still loading); call getInitData() in init() or in a job, not at the top level');
    err.code = 'ERR_INIT_DATA_NOT_READY';
    throw err;
  }
  return s.initData;
}

// Internal (the bootstrap, lib/pool-worker.js): stores the pool's initData and updates the ES
// module's live `initData` binding (worker.mjs subscribes through INIT_DATA_LISTENERS).
const INIT_DATA_LISTENERS = Symbol.for('comrade.worker.initDataListeners');
function setInitData(data) {
  const s = state();
  s.initData = data;
  s.initDataReady = true;
  for (const listener of s[INIT_DATA_LISTENERS] || []) listener(data);
}

module.exports = {
  progress,
  emit,
  retire,
  onMessage,
  getInitData,
  getSignal,
  traceContext,
  // The current job's AbortSignal (see getSignal).
  get signal() {
    return getSignal();
  },
  // True inside a pool worker.
  get isWorker() {
    return Boolean(globalThis[STATE]);
  },
  // Deprecated: getInitData(). The same value, read as a property (in init() or a job).
  get initData() {
    return getInitData();
  },
  STATE,
};
Object.defineProperties(module.exports, {
  setInitData: { value: setInitData },
  INIT_DATA_LISTENERS: { value: INIT_DATA_LISTENERS },
});
