'use strict';
// ComputeCluster: a drop-in for the npm package compute-cluster@0.0.9 on the comrade engine.
// Same options, validation strings, callback strings and event texts; its bugs fixed (see
// README "Differences from compute-cluster").

const { EventEmitter } = require('node:events');
const { AsyncResource } = require('node:async_hooks');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const {
  NativePool,
  install,
  workerExecArgv,
  NODE_WORKER_ENV,
  NODE_WORKER_ENV_REMOVE,
  KIND,
  REJECT,
} = require('./native');
const { JobTable } = require('./job-table');

const DEFAULT_MAX_MESSAGE = 64 * 1024 * 1024;
const KILL_GRACE_MS = 5000;
const WORKER_PRELOAD = path.join(__dirname, 'compute-cluster-worker.js');

// A job's callback, run in the async context of the enqueue() call (so, for example, an
// AsyncLocalStorage request context survives the trip through the pool).
class Job extends AsyncResource {
  constructor(cb) {
    super('comrade.ComputeClusterJob');
    this.cb = cb;
    this.id = -1;
  }

  settle(err, result) {
    const cb = this.cb;
    if (typeof cb === 'function') {
      if (err === null) this.runInAsyncScope(cb, undefined, null, result);
      else this.runInAsyncScope(cb, undefined, err);
    }
    this.emitDestroy();
  }
}

function ComputeCluster(options) {
  // compute-cluster's README calls the constructor without `new`.
  if (!(this instanceof ComputeCluster)) return new ComputeCluster(options);
  // Validation throws strings, exactly as compute-cluster does.
  if (!options || typeof options.module !== 'string') {
    throw "missing required 'module' argument";
  }
  if (!fs.existsSync(options.module)) {
    throw "module doesn't exist: " + options.module;
  }
  if (options.max_processes &&
      (typeof options.max_processes !== 'number' || options.max_processes < 1)) {
    throw 'when provided, max_processes must be an integer greater than one';
  }
  if (options.max_backlog && typeof options.max_backlog !== 'number') {
    throw 'when provided, max_backlog must be a number';
  }
  if (options.max_request_time && typeof options.max_request_time !== 'number') {
    throw 'when provided, max_request_time must be a number';
  }
  EventEmitter.call(this);
  install();

  const max = Math.floor(options.max_processes || Math.ceil(os.cpus().length * 1.25));
  // `||`: 0 means "default", as in compute-cluster; any negative value means no limit.
  const backlog = options.max_backlog || max * 10;
  this._MAX_KIDS = max;
  this._MAX_BACKLOG = backlog;
  this._MAX_REQUEST_TIME = options.max_request_time || 0;
  this._module = options.module;
  this._jobs = new JobTable();
  this._nextId = 0;
  this._batch = [];
  this._batchFirst = 0;
  this._exiting = false;
  this._exited = false;
  this._exitCbs = [];
  this._refed = false;

  this._pool = new NativePool({
    program: process.execPath,
    args: [...workerExecArgv(), '--require', WORKER_PRELOAD, path.resolve(options.module)],
    env: NODE_WORKER_ENV,
    envRemove: NODE_WORKER_ENV_REMOVE,
    maxWorkers: max,
    concurrency: 1,
    maxBacklog: backlog > 0 ? backlog : undefined,
    maxRequestTime: this._MAX_REQUEST_TIME > 0 ? this._MAX_REQUEST_TIME : undefined,
    maxMessage: DEFAULT_MAX_MESSAGE,
    killGraceMs: KILL_GRACE_MS,
  }, () => this._drain());

  // Per-job debug records cost a little; produce them only while someone listens.
  this.on('newListener', (event) => {
    if (event === 'debug') this._pool.setDebug(true);
  });
  this.on('removeListener', (event) => {
    if (event === 'debug') this._pool.setDebug(this.listenerCount('debug') > 0);
  });
}

Object.setPrototypeOf(ComputeCluster.prototype, EventEmitter.prototype);
Object.setPrototypeOf(ComputeCluster, EventEmitter);

ComputeCluster.prototype.enqueue = function enqueue(args, cb) {
  if (this._exiting) {
    process.nextTick(callback, cb, 'cannot enqueue work: compute cluster is exiting');
    return this;
  }
  let text;
  let problem;
  try {
    text = JSON.stringify(args);
    if (text === undefined) problem = `${typeof args} is not JSON`;
  } catch (e) {
    problem = e.message;
  }
  if (problem !== undefined) {
    process.nextTick(callback, cb, `cannot enqueue work: args cannot be serialized (${problem})`);
    return this;
  }
  const id = this._nextId;
  this._nextId = (id + 1) >>> 0;
  if (this._batch.length === 0) {
    this._batchFirst = id;
    queueMicrotask(() => this._flush());
  }
  this._batch.push(text);
  const job = new Job(cb);
  job.id = id;
  this._jobs.set(id, job);
  if (!this._refed) this._setRef(true);
  return this;
};

// Hands every job enqueued in this tick to the engine in one call.
ComputeCluster.prototype._flush = function _flush() {
  const batch = this._batch;
  if (batch.length === 0) return;
  this._batch = [];
  const first = this._batchFirst;
  const rejected = this._pool.submit(first, batch.join('\n'), batch.length);
  for (let i = 0; i < rejected.length; i += 3) {
    const id = (first + rejected[i]) >>> 0;
    const job = this._jobs.take(id);
    let msg;
    if (rejected[i + 1] === REJECT.BACKLOG) {
      const mb = rejected[i + 2];
      this.emit('info', `maximum work backlog hit (${mb})!  cannot enqueue additional work!`);
      msg = `cannot enqueue work: maximum backlog exceeded (${mb})`;
    } else if (rejected[i + 1] === REJECT.DURATION) {
      const expected = rejected[i + 2];
      this.emit('info', `maximum expected work duration hit hit (work would take about ${expected}s, ` +
        `which is greater than ${this._MAX_REQUEST_TIME})!  cannot enqueue!`);
      msg = `cannot enqueue work: maximum expected work duration exceeded (${expected}s)`;
    } else {
      msg = 'cannot enqueue work: compute cluster is exiting';
    }
    job.settle(msg);
  }
  this._updateRef();
};

// Called on the JS thread when the engine has records: results, failures, worker events.
ComputeCluster.prototype._drain = function _drain() {
  const errors = [];
  let batch;
  while ((batch = this._pool.take()) !== null) {
    const recs = JSON.parse(batch);
    for (let i = 0; i < recs.length; i += 3) {
      // One throwing callback or listener must not strand the rest of the batch.
      try {
        this._record(recs[i], recs[i + 1], recs[i + 2]);
      } catch (e) {
        errors.push(e);
      }
    }
  }
  this._updateRef();
  for (const e of errors) process.nextTick(rethrow, e);
};

ComputeCluster.prototype._record = function _record(kind, id, value) {
  switch (kind) {
    case KIND.RESULT: {
      const job = this._jobs.take(id);
      if (job) job.settle(null, value);
      break;
    }
    case KIND.FAILED: {
      const job = this._jobs.take(id);
      if (job) job.settle(failureText(value));
      break;
    }
    case KIND.SPAWNED:
      this.emit('info', `spawned new worker process (${id}) ${value[0]}/${value[1]} processes running`);
      break;
    case KIND.EXITED:
      if (!this._exiting) this.emit('error', `compute process (${id}) dies with code: ${value.code}`);
      this.emit('info', `compute process (${id}) exits with code ${value.code}`);
      break;
    case KIND.STRAY:
      this.emit('info', `compute process (${id}) sent a message with no job in flight; message dropped`);
      break;
    case KIND.DISPATCHED:
      this.emit('debug', `passing compute job to process ${value}`);
      break;
    case KIND.COMPLETED:
      this.emit('debug', `process ${id} completed work in ${value.toFixed(2)}s`);
      break;
    case KIND.PROTOCOL_ERROR:
      this.emit('info', `compute process (${id}) broke the IPC protocol (${value}); killing it`);
      break;
    case KIND.SPAWN_FAILED:
      this.emit('info', `cannot start a compute process: ${value}`);
      break;
    case KIND.ALL_EXITED: {
      this._exited = true;
      const cbs = this._exitCbs;
      this._exitCbs = [];
      for (const cb of cbs) cb(null);
      break;
    }
    default:
      break;
  }
};

function failureText(value) {
  switch (value.reason) {
    case 'exit':
      return `compute process (${value.pid}) dies with code: ${value.code}`;
    case 'closed':
      return 'cannot run work: compute cluster exited';
    case 'spawn':
      return `cannot run work: ${value.message}`;
    default:
      return `cannot run work: ${JSON.stringify(value)}`;
  }
}

// The pool keeps Node alive only while a job is unsettled or exit() is under way.
ComputeCluster.prototype._updateRef = function _updateRef() {
  const want = this._jobs.size > 0 || (this._exiting && !this._exited);
  if (want !== this._refed) this._setRef(want);
};

ComputeCluster.prototype._setRef = function _setRef(on) {
  this._refed = on;
  this._pool.setRef(on);
};

ComputeCluster.prototype.exit = function exit(cb) {
  this._flush();
  if (this._exited) {
    if (cb) setTimeout(cb, 0, null);
    return this;
  }
  if (cb) this._exitCbs.push(cb);
  if (this._exiting) return this;
  this._exiting = true;
  const n = this._pool.pids().length;
  if (n > 0) this.emit('info', `exit called, shutting down ${n} child processes`);
  this._pool.shutdown(false);
  this._updateRef();
  return this;
};

function callback(cb, err) {
  if (typeof cb === 'function') cb(err);
}

function rethrow(e) {
  throw e;
}

module.exports = { ComputeCluster };
