'use strict';
// ComputeCluster: a drop-in for the npm package compute-cluster@0.0.9 on the comrade engine.
// Same options, validation strings, callback strings and event texts; its bugs fixed (see
// README "Differences from compute-cluster").

const { EventEmitter } = require('node:events');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const {
  install,
  workerExecArgv,
  NODE_WORKER_ENV,
  NODE_WORKER_ENV_REMOVE,
  KIND,
  REJECT,
  DEFAULTS,
} = require('./native');
const { renderFailure, COMPUTE_CLUSTER_FAILURES } = require('./errors');
const json = require('./json');
const { internalLimits } = require('./options');
const { Session, ScopedJob } = require('./session');

const WORKER_PRELOAD = path.join(__dirname, 'compute-cluster-worker.js');
// max_processes must be below this (its floor fits the engine's unsigned 32-bit count).
const MAX_PROCESSES_LIMIT = 2 ** 32;

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
  // compute-cluster takes any larger number; the engine counts workers in 32 bits, so more
  // (Infinity included) is refused in compute-cluster's style rather than cut down.
  if (options.max_processes && !(options.max_processes < MAX_PROCESSES_LIMIT)) {
    throw `when provided, max_processes must be at most ${MAX_PROCESSES_LIMIT - 1}`;
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
  this._exiting = false;
  this._exitCbs = [];

  const cc = this;
  this._session = new Session({
    program: process.execPath,
    args: [...workerExecArgv(), '--require', WORKER_PRELOAD, path.resolve(options.module)],
    env: NODE_WORKER_ENV,
    envRemove: NODE_WORKER_ENV_REMOVE,
    maxWorkers: max,
    concurrency: 1,
    maxBacklog: backlog > 0 ? backlog : undefined,
    maxRequestTime: this._MAX_REQUEST_TIME > 0 ? this._MAX_REQUEST_TIME : undefined,
    maxMessage: DEFAULTS.maxMessage,
    killGraceMs: DEFAULTS.killGraceMs,
    ...internalLimits(options),
  }, {
    record: (kind, id, value) => cc._record(kind, id, value),
    failure: (value) => renderFailure(value, COMPUTE_CLUSTER_FAILURES),
    rejection: (reason, value) => cc._rejection(reason, value),
    submitFailure: (error) => `cannot enqueue work: ${error instanceof Error ? error.message : 'internal error'}`,
  });

  // Per-job debug records cost a little; produce them only while someone listens.
  this.on('newListener', (event) => {
    if (event === 'debug') this._session.setDebug(true);
  });
  this.on('removeListener', (event) => {
    if (event === 'debug') this._session.setDebug(this.listenerCount('debug') > 0);
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
    // Long strings go to the binding raw and are escaped there (lib/json.js, src/rawtext.rs):
    // the worker receives JSON.stringify's text. No size limit applies to what is sent here.
    text = json.stringify(args, true);
    if (text === undefined) problem = `${typeof args} is not JSON`;
  } catch (e) {
    problem = e.message;
  }
  if (problem !== undefined) {
    process.nextTick(callback, cb, `cannot enqueue work: args cannot be serialized (${problem})`);
    return this;
  }
  // The callback runs in this call's async context (so, for example, an AsyncLocalStorage
  // request context survives the trip through the pool).
  this._session.add(new ScopedJob(null, null, typeof cb === 'function' ? cb : ignore, undefined), text, null);
  return this;
};

// A job the engine refused: 'info' about it, and the job's error string.
ComputeCluster.prototype._rejection = function _rejection(reason, value) {
  if (reason === REJECT.BACKLOG) {
    this.emit('info', `maximum work backlog hit (${value})!  cannot enqueue additional work!`);
    return `cannot enqueue work: maximum backlog exceeded (${value})`;
  }
  if (reason === REJECT.DURATION) {
    this.emit('info', `maximum expected work duration hit hit (work would take about ${value}s, ` +
      `which is greater than ${this._MAX_REQUEST_TIME})!  cannot enqueue!`);
    return `cannot enqueue work: maximum expected work duration exceeded (${value}s)`;
  }
  return 'cannot enqueue work: compute cluster is exiting';
};

// A record that is not a job's outcome: compute-cluster's events.
ComputeCluster.prototype._record = function _record(kind, id, value) {
  switch (kind) {
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
      const cbs = this._exitCbs;
      this._exitCbs = [];
      for (const cb of cbs) cb(null);
      break;
    }
    default:
      break;
  }
};

ComputeCluster.prototype.exit = function exit(cb) {
  const session = this._session;
  session.flush();
  if (session.exited) {
    if (cb) setTimeout(cb, 0, null);
    return this;
  }
  if (cb) this._exitCbs.push(cb);
  if (this._exiting) return this;
  this._exiting = true;
  const n = session.pids().length;
  if (n > 0) session.inScope(this.emit, this, 'info', `exit called, shutting down ${n} child processes`);
  session.shutdown(false);
  return this;
};

function callback(cb, err) {
  if (typeof cb === 'function') cb(err);
}

function ignore() {}

module.exports = { ComputeCluster };
