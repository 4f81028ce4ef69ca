'use strict';
// Pool: the modern API. Named functions, Promises or callbacks, per-worker concurrency, worker
// events, and workers in any language that speak docs/PROTOCOL.md.
//
// Calls made in one tick reach the engine in one native call; results come back in batches,
// one JSON.parse per batch.

const { EventEmitter } = require('node:events');
const path = require('node:path');
const { ncpu, install, NODE_WORKER_ENV_REMOVE, KIND } = require('./native');
const json = require('./json');
const {
  codes, PoolError, argumentError, unserializableError, abortError, closedError,
  rejectionError, renderFailure, decodeFailure, POOL_FAILURES, submitError, unknownOptionError,
  optionError,
} = require('./errors');
const {
  resolveOptions, internalLimits, MAX_DURATION_MS, durationMessage,
} = require('./options');
const { Session, Job, ScopedJob } = require('./session');
const metrics = require('./metrics');
const { statusHandler, History } = require('./status-page');

const POOL_WORKER = path.join(__dirname, 'pool-worker.js');
// Never in a Pool worker's environment, whatever the parent's environment or `env` holds.
const WORKER_ENV_REMOVE = Object.freeze([
  'NODE_CHANNEL_FD', 'NODE_CHANNEL_SERIALIZATION_MODE', ...NODE_WORKER_ENV_REMOVE,
]);

// One executor for every job's Promise: no closure per job. The Promise constructor calls it
// synchronously, so its resolve/reject are read back before anything else can run.
let captured = null;
function capture(resolve, reject) {
  captured = new Job(resolve, reject, null, undefined);
}
// The same for a job with an onProgress, which runs in the context of the run() call.
function captureScoped(resolve, reject) {
  captured = new ScopedJob(resolve, reject, null, undefined);
}
function promiseJob() {
  const job = captured;
  captured = null;
  return job;
}

class Pool extends EventEmitter {
  #session;
  #state = 'open'; // 'open' | 'closing' | 'terminating'
  #done = null; // { promise, resolve } once close()/terminate() was called
  #protocolErrors = new Map(); // pid -> message, until that worker's exit is reported
  #maxWorkers;
  #minWorkers;
  #concurrency;
  #rejectedHere = 0;
  #timedOut = 0; // jobs failed with ERR_JOB_TIMEOUT
  #abortedHere = 0; // jobs whose signal was aborted before run()/exec() was called
  #maxMessage;
  #name; // the `pool` label of metrics()
  #observer = new metrics.Observer();
  #history = null; // the status page's once-a-second samples, from its first statusHandler()

  constructor(options) {
    super();
    const o = resolveOptions(options);
    this.#name = o.name;
    this.#maxWorkers = o.maxWorkers;
    this.#concurrency = o.concurrency;
    this.#minWorkers = o.minWorkers;
    this.#maxMessage = o.maxMessage;
    const { program, args } = o.module !== undefined
      ? { program: process.execPath, args: [...o.execArgv, POOL_WORKER, o.module] }
      : o.command;
    install();
    // A Node worker must not take fd 3 for Node's own IPC, nor believe it is a cluster worker:
    // these are removed from the inherited environment, and left out of the user's `env` too
    // (the engine sets `env` after removing, so they would come back).
    // COMRADE_MAX_MESSAGE: a worker's longest message, so that it fails a job whose result is
    // too large instead of breaking the protocol (docs/PROTOCOL.md).
    const env = { ...o.env, COMRADE_CHANNEL_FD: '3', COMRADE_MAX_MESSAGE: String(o.maxMessage) };
    for (const name of WORKER_ENV_REMOVE) delete env[name];
    this.#session = new Session({
      program,
      args,
      env,
      envRemove: WORKER_ENV_REMOVE,
      cwd: o.cwd,
      maxWorkers: o.maxWorkers,
      concurrency: o.concurrency,
      // A limit that is off (null here) is left out of the engine's options.
      maxBacklog: o.maxBacklog ?? undefined,
      maxRequestTime: o.maxExpectedWait === null ? undefined : o.maxExpectedWait / 1000,
      maxMessage: o.maxMessage,
      killGraceMs: o.killGraceMs,
      cancelGraceMs: o.cancelGraceMs,
      protocol: 'lines',
      hello: `{"t":"init","data":${o.initData}}`,
      minWorkers: o.minWorkers,
      spawnDelayMs: o.spawnDelay,
      idleTimeoutMs: o.idleTimeout || undefined, // 0: never
      maxJobsPerWorker: o.maxJobsPerWorker ?? undefined,
      maxRss: o.maxRss ?? undefined,
      affinity: o.affinity,
      nice: o.niceIncrement,
      retries: o.retries,
      timeoutMs: o.timeout ?? undefined,
      priority: o.priority,
      prioritySlots: o.prioritySlots ?? undefined,
      sacredGuarantees: o.sacredGuarantees,
      ...internalLimits(options),
    }, {
      record: (kind, id, value) => this.#record(kind, id, value),
      // What a failed job's error says depends on the pool's state and its workers' history.
      failure: (value) => {
        if (decodeFailure(value).reason === 'timeout') this.#timedOut++;
        return renderFailure(value, POOL_FAILURES, {
          terminated: this.#state === 'terminating', protocolErrors: this.#protocolErrors,
        });
      },
      rejection: rejectionError,
      submitFailure: submitError,
    }, {
      calls: true, retries: o.retries, timeout: o.timeout ?? 0, priority: o.priority,
      observer: this.#observer, traceName: o.name,
    });
  }

  /**
   * Runs the default function (or `options.name`) with `task` as its one argument.
   * Options: name, onProgress, signal (AbortSignal), timeout (ms), retries, priority.
   */
  run(task, options) {
    if (options === undefined) {
      const promise = new Promise(capture);
      this.#submit(null, task, undefined, promiseJob());
      return promise;
    }
    const job = optionsJob(options, RUN);
    const promise = optPromise;
    const name = optName;
    optPromise = null;
    if (job !== null) this.#submit(name, task, undefined, job);
    else if (name === ABORTED) this.#abortedOnCall(null);
    return promise;
  }

  /** Runs the named function with positional arguments. */
  call(name, ...args) {
    if (typeof name !== 'string') {
      return Promise.reject(argumentError('call(name, ...args): name must be a string'));
    }
    const promise = new Promise(capture);
    this.#submit(name, undefined, args, promiseJob());
    return promise;
  }

  /**
   * Runs the named function with the array `args` as its arguments (workerpool's order).
   * Options: onProgress, signal (AbortSignal), timeout (ms), retries, priority.
   */
  exec(name, args, options) {
    if (typeof name !== 'string') {
      return Promise.reject(argumentError('exec(name, args, options): name must be a string'));
    }
    if (args === undefined || args === null) {
      args = [];
    } else if (!Array.isArray(args)) {
      return Promise.reject(argumentError('exec(name, args, options): args must be an array'));
    }
    if (options === undefined) {
      const promise = new Promise(capture);
      this.#submit(name, undefined, args, promiseJob());
      return promise;
    }
    const job = optionsJob(options, EXEC);
    const promise = optPromise;
    const why = optName;
    optPromise = null;
    if (job !== null) this.#submit(name, undefined, args, job);
    else if (why === ABORTED) this.#abortedOnCall(name);
    return promise;
  }

  /** Runs the default function with `task`; `cb(err, result)` runs once, in this call's async context. */
  enqueue(task, cb) {
    if (typeof cb !== 'function') throw argumentError('enqueue(task, cb): cb must be a function');
    this.#submit(null, task, undefined, new ScopedJob(null, null, cb, undefined));
    return this;
  }

  /** Finishes every accepted job, then stops the workers. Resolves once every worker is reaped. */
  close() {
    return this.#shutdown(true);
  }

  /** Stops now: unfinished jobs fail with ERR_POOL_TERMINATED. Resolves once every worker is reaped. */
  terminate() {
    return this.#shutdown(false);
  }

  /** Pids of the live workers. */
  get pids() {
    return this.#session.pids();
  }

  /** Jobs accepted and not settled yet. */
  get pending() {
    return this.#session.size;
  }

  get maxWorkers() {
    return this.#maxWorkers;
  }

  get concurrency() {
    return this.#concurrency;
  }

  get minWorkers() {
    return this.#minWorkers;
  }

  /** The `name` option: the `pool` label of metrics(), the title on the status page. */
  get name() {
    return this.#name;
  }

  /**
   * Prometheus text exposition (format 0.0.4, content type Pool.METRICS_CONTENT_TYPE) of the
   * pool's counters, gauges and wait/run histograms (lib/metrics.js).
   */
  metrics() {
    return metrics.render([this.#metricsSnapshot()]);
  }

  /** metrics() of several pools in one text (one HELP/TYPE per metric); names should differ. */
  static metrics(pools) {
    return metrics.render(Pool.#poolList(pools, 'Pool.metrics(pools)').map((p) => p.#metricsSnapshot()));
  }

  /**
   * A read-only status page for this pool (and more pools: Pool.statusHandler([a, b])), as a
   * `(req, res)` handler for node:http and Express: HTML, or JSON with `?format=json`.
   */
  statusHandler() {
    return statusHandler([this.#statusSource()]);
  }

  static statusHandler(pools) {
    return statusHandler(Pool.#poolList(pools, 'Pool.statusHandler(pools)').map((p) => p.#statusSource()));
  }

  // A Pool or an array of them, as an array (a clear error for anything else).
  static #poolList(pools, usage) {
    const list = Array.isArray(pools) ? pools : [pools];
    if (list.length === 0 || !list.every((p) => p !== null && typeof p === 'object' && #session in p)) {
      throw argumentError(`${usage}: pools must be a Pool or a non-empty array of Pools`);
    }
    return list;
  }

  /**
   * A snapshot: each worker (pid, state, jobs done and in flight, RSS), the queue, totals
   * since the start (completed, errored, failed, retried, rejected, aborted, timedOut),
   * completions per second over the last ten seconds, and wait/run time percentiles (ms) over
   * recent jobs.
   */
  stats() {
    return this.#withHostTotals(JSON.parse(this.#session.stats()));
  }

  // Adds the totals only this side counts to the engine's (stats() and metrics() alike).
  #withHostTotals(s) {
    s.rejected += this.#rejectedHere;
    s.pending = this.#session.size;
    s.aborted = this.#session.aborted + this.#abortedHere;
    s.timedOut = this.#timedOut;
    return s;
  }

  #metricsSnapshot() {
    const engine = JSON.parse(this.#session.native.metrics());
    // The engine's totals with this side's, as stats() reports them.
    const stats = this.#withHostTotals({
      completed: engine.completed, errored: engine.errored, failed: engine.failed,
      rejected: engine.rejected,
    });
    return { name: this.#name, engine, stats, observer: this.#observer };
  }

  // What the status page shows of this pool; sampling its history starts now.
  #statusSource() {
    if (this.#history === null) {
      const session = this.#session;
      this.#history = new History(() => {
        if (session.exited) return null;
        const m = JSON.parse(session.native.metrics());
        return { queued: m.queued, done: m.completed + m.errored + m.failed };
      });
    }
    return {
      name: this.#name,
      snapshot: () => {
        const stats = this.stats();
        return {
          name: this.#name, stats, history: this.#history.toJSON(),
          errors: this.#observer.errors, exits: this.#observer.exits,
        };
      },
    };
  }

  #abortedOnCall(name) {
    this.#abortedHere++;
    this.#observer.outcome(name, metrics.ABORTED);
  }

  #rejected(job, name, err) {
    this.#rejectedHere++;
    this.#observer.outcome(name, metrics.REJECTED);
    this.#fail(job, err);
  }

  #shutdown(drain) {
    if (!drain && this.#state !== 'terminating') this.#state = 'terminating';
    else if (drain && this.#state === 'open') this.#state = 'closing';
    if (this.#done === null) {
      let resolve;
      const promise = new Promise((r) => { resolve = r; });
      this.#done = { promise, resolve };
    }
    this.#session.shutdown(drain);
    return this.#done.promise;
  }

  // One job: `task` as the only argument, or the array `args` (call()).
  #submit(name, task, args, job) {
    if (this.#state !== 'open') {
      this.#rejected(job, name, closedError());
      return;
    }
    // The engine gets each call's arguments as JSON without the enclosing brackets: one
    // argument needs no array built around it.
    let argsText;
    try {
      // JSON would silently drop a function; a top-level one is surely a mistake.
      if (args === undefined) {
        const t = typeof task;
        if (t === 'function' || t === 'symbol') throw new TypeError(`argument 0 is a ${t}`);
        // undefined (or a toJSON that returns it) is null, as inside an array.
        argsText = json.stringify(task) ?? 'null';
      } else {
        for (let i = 0; i < args.length; i++) {
          const t = typeof args[i];
          if (t === 'function' || t === 'symbol') throw new TypeError(`argument ${i} is a ${t}`);
        }
        argsText = json.stringify(args).slice(1, -1);
      }
    } catch (e) {
      this.#rejected(job, name, unserializableError(e.message));
      return;
    }
    // The same limit as for what workers send (the length in UTF-16 units bounds the UTF-8
    // size from below; count bytes only when it could matter).
    if (argsText.length * 3 > this.#maxMessage &&
        Buffer.byteLength(argsText) > this.#maxMessage) {
      this.#rejected(job, name, new PoolError(codes.MESSAGE_TOO_LARGE,
        `the arguments are ${Buffer.byteLength(argsText)} bytes as JSON, more than maxMessage ` +
        `(${this.#maxMessage})`, { maxMessage: this.#maxMessage }));
      return;
    }
    this.#session.add(job, argsText, name);
  }

  // A record that is not a job's outcome: the pool's events. Runs in the async context the
  // pool was constructed in.
  #record(kind, id, value) {
    switch (kind) {
      case KIND.EVENT:
        this.emit('event', value.name, value.data, id);
        break;
      case KIND.SPAWNED:
        this.emit('workerSpawn', { pid: id });
        break;
      case KIND.EXITED:
        this.#protocolErrors.delete(id);
        this.#observer.exited(id, value);
        this.emit('workerExit', {
          pid: id, code: value.code, signal: value.signal, expected: value.expected,
          reason: value.reason,
        });
        break;
      case KIND.RETIRING:
        this.emit('workerRetire', { pid: id });
        break;
      case KIND.PROTOCOL_ERROR:
        this.#protocolErrors.set(id, value);
        this.emit('protocolError', { pid: id, message: value });
        break;
      case KIND.ALL_EXITED:
        if (this.#done) this.#done.resolve();
        break;
      default:
        // STRAY (a reply to a job no longer in flight), SPAWN_FAILED (its jobs fail on their
        // own), debug records: nothing to do.
        break;
    }
  }

  #fail(job, err) {
    // Submission errors are asynchronous, like every other outcome.
    process.nextTick(settleLater, this.#session, job, err);
  }
}

// The per-job options of run() and exec(): what each method takes, and how it is named in
// errors. exec() takes its function's name as its first argument, not as an option.
const JOB_OPTIONS = ['onProgress', 'signal', 'timeout', 'retries', 'priority'];
const ABORTED = Symbol('aborted');
const RUN = {
  what: 'run', usage: 'run(task, options)', names: ['name', ...JOB_OPTIONS],
};
const EXEC = {
  what: 'exec', usage: 'exec(name, args, options)', names: JOB_OPTIONS,
};
RUN.known = new Set(RUN.names);
EXEC.known = new Set(EXEC.names);

// A job with its per-job `options` read (for `m`, RUN or EXEC), or null when an option is
// wrong (its Promise is then rejected: a getter that throws, an unknown option, a wrong value
// never make the method throw). Out-parameters, so that the hot path allocates nothing beyond
// the job and its Promise: `optPromise`, the job's Promise; `optName`, run()'s options.name
// (or null), or ABORTED when the signal was aborted already.
let optPromise = null;
let optName = null;
function optionsJob(options, m) {
  // onProgress runs in the calling method's async context: such a job carries it. The options
  // are read once, here.
  let onProgress;
  let error = null;
  if (options === null || typeof options !== 'object') {
    error = argumentError(`${m.usage}: options must be an object`);
  } else {
    try {
      // for...in with an own-property check: Object.keys() would allocate an array per job.
      for (const key in options) {
        if (m.known.has(key) || !Object.hasOwn(options, key)) continue;
        error = key === 'name' && m === EXEC
          ? optionError('exec(): the function\'s name is exec\'s first argument, not an option')
          : unknownOptionError(`${m.what}() option`, key, m.names);
        break;
      }
      if (error === null) onProgress = options.onProgress;
    } catch (e) {
      error = argumentError(`${m.usage}: options cannot be read`, e);
    }
  }
  optPromise = new Promise(onProgress !== undefined ? captureScoped : capture);
  const job = promiseJob();
  let name = error;
  if (error === null) {
    try {
      name = readOptions(job, options, onProgress, m.what);
    } catch (e) {
      name = argumentError(`${m.usage}: options cannot be read`, e);
    }
  }
  if (name instanceof Error) {
    job.reject(name);
    optName = name.name === 'AbortError' ? ABORTED : null;
    return null;
  }
  optName = name;
  return job;
}

// Per-job options into `job` (`onProgress` was read already); returns run()'s function name
// (a string or null) or an Error. Getters of `options` and of its signal may throw: the caller
// turns that into the Promise's rejection.
function readOptions(job, options, onProgress, what) {
  const { signal, timeout, retries, priority } = options;
  const name = what === 'run' ? options.name : undefined;
  if (name !== undefined && name !== null && typeof name !== 'string') {
    return argumentError(`${what}(): options.name must be a string`);
  }
  if (onProgress !== undefined) {
    if (typeof onProgress !== 'function') {
      return argumentError(`${what}(): options.onProgress must be a function`);
    }
    job.onProgress = onProgress;
  }
  if (timeout !== undefined) {
    if (typeof timeout !== 'number' || !(timeout > 0)) {
      return argumentError(`${what}(): options.timeout must be a number of milliseconds > 0`);
    }
    if (timeout !== Infinity && timeout > MAX_DURATION_MS) {
      return argumentError(`${what}(): ${durationMessage('options.timeout', timeout)}`);
    }
    job.timeout = timeout === Infinity ? 0 : timeout;
  }
  if (retries !== undefined) {
    if (!Number.isInteger(retries) || retries < 0 || retries > 1000) {
      return argumentError(`${what}(): options.retries must be an integer from 0 to 1000`);
    }
    job.retries = retries;
  }
  if (priority !== undefined) {
    if (typeof priority !== 'number' || !Number.isFinite(priority)) {
      return argumentError(`${what}(): options.priority must be a finite number`);
    }
    job.priority = priority;
  }
  if (signal !== undefined && signal !== null) {
    if (typeof signal !== 'object' || typeof signal.aborted !== 'boolean' ||
        typeof signal.addEventListener !== 'function') {
      return argumentError(`${what}(): options.signal must be an AbortSignal`);
    }
    if (signal.aborted) return abortError(signal);
    job.signal = signal;
  }
  return name ?? null;
}

Pool.METRICS_CONTENT_TYPE = metrics.CONTENT_TYPE;

function settleLater(session, job, err) {
  session.settle(job, err, undefined);
}

// ncpu(): physical cores and execution units (logical CPUs), straight from the engine.
module.exports = { Pool, PoolError, codes, ncpu };
