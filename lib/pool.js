'use strict';
// Pool: the modern API. Named functions, Promises or callbacks, per-worker concurrency, worker
// events, and workers in any language that speak docs/PROTOCOL.md.
//
// Calls made in one tick reach the engine in one native call; results come back in batches,
// one JSON.parse per batch.

const { EventEmitter } = require('node:events');
const { performance } = require('node:perf_hooks');
const { AsyncResource } = require('node:async_hooks');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { fileURLToPath } = require('node:url');
const { NativePool, ncpu, install, workerExecArgv, NODE_WORKER_ENV_REMOVE, KIND, REJECT } =
  require('./native');

const json = require('./json');
const { JobTable } = require('./job-table');

const POOL_WORKER = path.join(__dirname, 'pool-worker.js');
const DEFAULT_MAX_MESSAGE = 64 * 1024 * 1024;
const DEFAULT_KILL_GRACE_MS = 5000;
const DEFAULT_SPAWN_DELAY_MS = 100;
const DEFAULT_IDLE_TIMEOUT_MS = 10000;
const MAX_U32 = 0xffffffff;
// Longest stretch of result handling before the host's event loop gets a turn, in ms.
const DRAIN_SLICE_MS = 0.5;

// Errors raised by the pool itself carry one of these codes.
const codes = Object.freeze({
  INVALID_OPTION: 'ERR_INVALID_OPTION',
  INVALID_ARGUMENT: 'ERR_INVALID_ARGUMENT',
  POOL_CLOSED: 'ERR_POOL_CLOSED',
  POOL_TERMINATED: 'ERR_POOL_TERMINATED',
  BACKLOG_FULL: 'ERR_BACKLOG_FULL',
  EXPECTED_WAIT: 'ERR_EXPECTED_WAIT',
  UNSERIALIZABLE: 'ERR_UNSERIALIZABLE',
  MESSAGE_TOO_LARGE: 'ERR_MESSAGE_TOO_LARGE',
  WORKER_EXITED: 'ERR_WORKER_EXITED',
  WORKER_INIT_FAILED: 'ERR_WORKER_INIT_FAILED',
  SPAWN_FAILED: 'ERR_SPAWN_FAILED',
  JOB_TIMEOUT: 'ERR_JOB_TIMEOUT',
  ABORTED: 'ABORT_ERR',
});

class PoolError extends Error {
  constructor(code, message, props) {
    super(message);
    this.code = code;
    if (props) Object.assign(this, props);
  }
}
Object.defineProperty(PoolError.prototype, 'name', { value: 'PoolError', configurable: true });

const BUILTIN_ERRORS = {
  Error, TypeError, RangeError, SyntaxError, ReferenceError, EvalError, URIError,
};

// A worker's error object (docs/PROTOCOL.md) as a real Error of the right class, with the
// worker's stack and every other property.
function rebuildError(e, depth = 0) {
  if (e === null || typeof e !== 'object') {
    return new PoolError(codes.WORKER_EXITED, `worker sent a malformed error: ${JSON.stringify(e)}`);
  }
  const name = typeof e.name === 'string' ? e.name : 'Error';
  const Ctor = Object.hasOwn(BUILTIN_ERRORS, name) ? BUILTIN_ERRORS[name] : Error;
  const err = new Ctor(typeof e.message === 'string' ? e.message : String(e.message));
  if (Ctor.name !== name) {
    Object.defineProperty(err, 'name', {
      value: name, enumerable: false, writable: true, configurable: true,
    });
  }
  if (typeof e.stack === 'string') {
    Object.defineProperty(err, 'stack', {
      value: e.stack, enumerable: false, writable: true, configurable: true,
    });
  }
  for (const key of Object.keys(e)) {
    if (key === 'name' || key === 'message' || key === 'stack') continue;
    err[key] = key === 'cause' && depth < 4 && e.cause && typeof e.cause === 'object' &&
      typeof e.cause.message === 'string'
      ? rebuildError(e.cause, depth + 1)
      : e[key];
  }
  return err;
}

function optionError(message, Ctor = TypeError) {
  const err = new Ctor(`comrade Pool: ${message}`);
  err.code = codes.INVALID_OPTION;
  return err;
}

function nonNegative(options, key, dflt, what = 'milliseconds') {
  const v = options[key];
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !(v >= 0)) {
    throw optionError(`${key} must be a number of ${what} >= 0`, RangeError);
  }
  return v;
}

function positiveInt(options, key, dflt, max = MAX_U32) {
  const v = options[key];
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v)) {
    throw optionError(`${key} must be an integer, got ${typeof v === 'number' ? v : typeof v}`);
  }
  if (v < 1 || v > max) throw optionError(`${key} must be between 1 and ${max}, got ${v}`, RangeError);
  return v;
}

function resolveModule(m) {
  let file = m;
  if (m instanceof URL) file = fileURLToPath(m);
  else if (typeof m === 'string' && m.startsWith('file:')) file = fileURLToPath(m);
  if (typeof file !== 'string' || file.length === 0) {
    throw optionError('module must be a path (string) or a file URL');
  }
  file = path.resolve(file);
  if (!fs.existsSync(file)) {
    throw optionError(`module not found: ${file}`, Error);
  }
  return file;
}

function resolveCommand(command, cwd) {
  const argv = typeof command === 'string' ? [command] : command;
  if (!Array.isArray(argv) || argv.length === 0 || !argv.every((a) => typeof a === 'string')) {
    throw optionError('command must be a non-empty array of strings: [executable, ...args]');
  }
  let program = argv[0];
  // A path with a slash is relative to the worker's cwd; a bare name is looked up in PATH.
  if (program.includes('/')) program = path.resolve(cwd || process.cwd(), program);
  return { program, args: argv.slice(1) };
}

function stringEnv(env) {
  if (env === undefined) return undefined;
  if (env === null || typeof env !== 'object') throw optionError('env must be an object');
  const out = {};
  for (const [k, v] of Object.entries(env)) {
    if (v !== undefined) out[k] = String(v);
  }
  return out;
}

// One executor for every job's Promise: no closure per job. The Promise constructor calls it
// synchronously, so its resolve/reject are read back before anything else can run.
let captured = null;
function capture(resolve, reject) {
  captured = new Job(resolve, reject, null, undefined);
}
function promiseJob() {
  const job = captured;
  captured = null;
  return job;
}

// The JSON text of a function name; the few names a program uses are kept.
const nameTexts = new Map();
function nameJson(name) {
  let text = nameTexts.get(name);
  if (text === undefined) {
    text = JSON.stringify(name);
    if (nameTexts.size < 1024) nameTexts.set(name, text);
  }
  return text;
}

// A job's continuation: a Promise's resolve/reject, or a Node-style callback run in the async
// context of the enqueue() call.
class Job {
  constructor(resolve, reject, cb, onProgress) {
    this.resolve = resolve;
    this.reject = reject;
    this.cb = cb;
    this.onProgress = onProgress;
    this.id = -1;
    this.signal = null;
    // Per-job overrides of the pool's retries / timeout (undefined: the pool's).
    this.retries = undefined;
    this.timeout = undefined;
  }
}

// An AbortError as Node's own APIs raise it.
function abortError(signal) {
  const err = new Error('the job was aborted', { cause: signal.reason });
  err.name = 'AbortError';
  err.code = codes.ABORTED;
  return err;
}

class Pool extends EventEmitter {
  #native;
  #jobs = new JobTable();
  #nextId = 0;
  #batch = [];
  #batchFirst = 0;
  #flushQueued = false;
  #state = 'open'; // 'open' | 'closing' | 'terminating'
  #done = null; // { promise, resolve } once close()/terminate() was called
  #exited = false;
  #refed = false;
  #protocolErrors = new Map(); // pid -> message, until that worker's exit is reported
  #maxWorkers;
  #minWorkers;
  #concurrency;
  #retries;
  #timeout;
  #batchFns = null; // per-job function names (JSON) of the current batch, when any job has one
  #batchOpts = null; // per-job [retries, timeout] of the current batch, when any job has its own
  #signals = new Map(); // AbortSignal -> { jobs: Set<Job>, listener }: one listener per signal
  #rejectedHere = 0;
  #maxMessage;
  #stash = null; // records taken from the engine and not handled yet (a drain used its slice)
  #stashAt = 0;
  #resumeQueued = false;

  constructor(options) {
    super();
    if (options === null || typeof options !== 'object') {
      throw optionError('options must be an object: new Pool({ module }) or new Pool({ command })');
    }
    const hasModule = options.module !== undefined;
    const hasCommand = options.command !== undefined;
    if (hasModule === hasCommand) {
      throw optionError('give exactly one of `module` (a Node module) or `command` (an executable)');
    }
    const cpus = os.availableParallelism ? os.availableParallelism() : os.cpus().length;
    this.#maxWorkers = positiveInt(options, 'maxWorkers', Math.ceil(cpus * 1.25), 1024);
    this.#concurrency = positiveInt(options, 'concurrency', 1, 65536);
    this.#minWorkers = options.minWorkers === undefined ? 0 :
      positiveIntOrZero(options, 'minWorkers', this.#maxWorkers);
    // AnyEvent::Fork::Pool's defaults: grow by one worker per 0.1 s, stop a worker idle 10 s.
    const spawnDelay = nonNegative(options, 'spawnDelay', DEFAULT_SPAWN_DELAY_MS);
    const idleTimeout = options.idleTimeout === Infinity || options.idleTimeout === 0 ? 0 :
      nonNegative(options, 'idleTimeout', DEFAULT_IDLE_TIMEOUT_MS);
    const maxJobsPerWorker = options.maxJobsPerWorker === undefined || options.maxJobsPerWorker === Infinity
      ? 0 : positiveInt(options, 'maxJobsPerWorker', 0, Number.MAX_SAFE_INTEGER);
    const maxRss = options.maxRss === undefined ? 0 : positiveInt(options, 'maxRss', 0, Number.MAX_SAFE_INTEGER);
    this.#retries = options.retries === undefined ? 0 : positiveIntOrZero(options, 'retries', 1000);
    this.#timeout = options.timeout === undefined || options.timeout === Infinity ? 0 :
      positiveNumber(options, 'timeout');
    const nice = options.niceIncrement === undefined ? 0 : positiveIntOrZero(options, 'niceIncrement', 19);
    if (options.affinity !== undefined && typeof options.affinity !== 'boolean') {
      throw optionError('affinity must be a boolean');
    }
    const maxMessage = positiveInt(options, 'maxMessage', DEFAULT_MAX_MESSAGE, 0x7fffffff);
    this.#maxMessage = maxMessage;
    let killGraceMs = DEFAULT_KILL_GRACE_MS;
    if (options.killGraceMs !== undefined) {
      if (typeof options.killGraceMs !== 'number' || !(options.killGraceMs >= 0) ||
          options.killGraceMs > MAX_U32) {
        throw optionError('killGraceMs must be a number of milliseconds >= 0', RangeError);
      }
      killGraceMs = Math.floor(options.killGraceMs);
    }
    let maxBacklog = -1;
    if (options.maxBacklog !== undefined && options.maxBacklog !== Infinity) {
      if (typeof options.maxBacklog !== 'number' || !Number.isInteger(options.maxBacklog) ||
          options.maxBacklog < 0) {
        throw optionError('maxBacklog must be an integer >= 0, or Infinity', RangeError);
      }
      maxBacklog = options.maxBacklog;
    }
    let maxExpectedWait = 0;
    if (options.maxExpectedWait !== undefined) {
      if (typeof options.maxExpectedWait !== 'number' || !(options.maxExpectedWait > 0)) {
        throw optionError('maxExpectedWait must be a number of milliseconds > 0', RangeError);
      }
      maxExpectedWait = options.maxExpectedWait;
    }
    let initText = 'null';
    if (options.initData !== undefined) {
      try {
        initText = JSON.stringify(options.initData);
      } catch (e) {
        throw optionError(`initData cannot be serialized: ${e.message}`);
      }
      if (initText === undefined) throw optionError('initData cannot be serialized');
    }
    if (options.cwd !== undefined && typeof options.cwd !== 'string') {
      throw optionError('cwd must be a string');
    }
    const env = stringEnv(options.env);
    let program;
    let args;
    if (hasModule) {
      const file = resolveModule(options.module);
      let execArgv = workerExecArgv();
      if (options.execArgv !== undefined) {
        if (!Array.isArray(options.execArgv) || !options.execArgv.every((a) => typeof a === 'string')) {
          throw optionError('execArgv must be an array of strings');
        }
        execArgv = options.execArgv;
      }
      program = process.execPath;
      args = [...execArgv, POOL_WORKER, file];
    } else {
      ({ program, args } = resolveCommand(options.command, options.cwd));
    }
    install();
    this.#native = new NativePool({
      program,
      args,
      env: { ...env, COMRADE_CHANNEL_FD: '3' },
      // A Node worker must not take fd 3 for Node's own IPC, nor believe it is a cluster worker.
      envRemove: ['NODE_CHANNEL_FD', 'NODE_CHANNEL_SERIALIZATION_MODE', ...NODE_WORKER_ENV_REMOVE],
      cwd: options.cwd,
      maxWorkers: this.#maxWorkers,
      concurrency: this.#concurrency,
      maxBacklog: maxBacklog < 0 ? undefined : maxBacklog,
      maxRequestTime: maxExpectedWait > 0 ? maxExpectedWait / 1000 : undefined,
      maxMessage,
      killGraceMs,
      protocol: 'lines',
      hello: `{"t":"init","data":${initText}}`,
      minWorkers: this.#minWorkers,
      spawnDelayMs: spawnDelay,
      idleTimeoutMs: idleTimeout || undefined,
      maxJobsPerWorker: maxJobsPerWorker || undefined,
      maxRss: maxRss || undefined,
      affinity: options.affinity === true,
      nice,
      retries: this.#retries,
      timeoutMs: this.#timeout || undefined,
    }, () => this.#drain());
  }

  /**
   * Runs the default function (or `options.name`) with `task` as its one argument.
   * Options: name, onProgress, signal (AbortSignal), timeout (ms), retries.
   */
  run(task, options) {
    const promise = new Promise(capture);
    const job = promiseJob();
    let name = null;
    if (options !== undefined) {
      const err = this.#applyOptions(job, options);
      if (err) {
        job.reject(err);
        return promise;
      }
      name = options.name ?? null;
    }
    this.#submit(name, task, undefined, job);
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

  // Reads run()'s options into the job; returns an Error for a wrong one.
  #applyOptions(job, options) {
    if (options === null || typeof options !== 'object') {
      return argumentError('run(task, options): options must be an object');
    }
    const { name, onProgress, signal, timeout, retries } = options;
    if (name !== undefined && name !== null && typeof name !== 'string') {
      return argumentError('run(): options.name must be a string');
    }
    if (onProgress !== undefined) {
      if (typeof onProgress !== 'function') {
        return argumentError('run(): options.onProgress must be a function');
      }
      job.onProgress = onProgress;
    }
    if (timeout !== undefined) {
      if (typeof timeout !== 'number' || !(timeout > 0)) {
        return argumentError('run(): options.timeout must be a number of milliseconds > 0');
      }
      job.timeout = timeout === Infinity ? 0 : timeout;
    }
    if (retries !== undefined) {
      if (!Number.isInteger(retries) || retries < 0 || retries > 1000) {
        return argumentError('run(): options.retries must be an integer from 0 to 1000');
      }
      job.retries = retries;
    }
    if (signal !== undefined && signal !== null) {
      if (typeof signal !== 'object' || typeof signal.aborted !== 'boolean' ||
          typeof signal.addEventListener !== 'function') {
        return argumentError('run(): options.signal must be an AbortSignal');
      }
      if (signal.aborted) return abortError(signal);
      job.signal = signal;
    }
    return null;
  }

  /** Runs the default function with `task`; `cb(err, result)` runs once, in this call's async context. */
  enqueue(task, cb) {
    if (typeof cb !== 'function') throw argumentError('enqueue(task, cb): cb must be a function');
    this.#submit(null, task, undefined, new Job(null, null, AsyncResource.bind(cb), undefined));
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
    return this.#native.pids();
  }

  /** Jobs accepted and not settled yet. */
  get pending() {
    return this.#jobs.size;
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

  /**
   * A snapshot: each worker (pid, state, jobs done and in flight, RSS), the queue, totals
   * since the start (completed, errored, failed, retried, rejected), completions per second
   * over the last ten seconds, and wait/run time percentiles (ms) over recent jobs.
   */
  stats() {
    const s = JSON.parse(this.#native.stats());
    s.rejected += this.#rejectedHere;
    s.pending = this.#jobs.size;
    return s;
  }

  #shutdown(drain) {
    this.#flush();
    if (!drain && this.#state !== 'terminating') this.#state = 'terminating';
    else if (drain && this.#state === 'open') this.#state = 'closing';
    if (this.#done === null) {
      let resolve;
      const promise = new Promise((r) => { resolve = r; });
      this.#done = { promise, resolve };
    }
    if (!this.#exited) this.#native.shutdown(drain);
    this.#updateRef();
    return this.#done.promise;
  }

  // One job: `task` as the only argument, or the array `args` (call()).
  #submit(name, task, args, job) {
    if (this.#state !== 'open') {
      this.#rejectedHere++;
      this.#fail(job, new PoolError(codes.POOL_CLOSED, 'the pool is closed: no new jobs are accepted'));
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
      this.#rejectedHere++;
      this.#fail(job, unserializableError(e.message));
      return;
    }
    // The same limit as for what workers send (the length in UTF-16 units bounds the UTF-8
    // size from below; count bytes only when it could matter).
    if (argsText.length * 3 > this.#maxMessage &&
        Buffer.byteLength(argsText) > this.#maxMessage) {
      this.#rejectedHere++;
      this.#fail(job, new PoolError(codes.MESSAGE_TOO_LARGE,
        `the arguments are ${Buffer.byteLength(argsText)} bytes as JSON, more than maxMessage ` +
        `(${this.#maxMessage})`, { maxMessage: this.#maxMessage }));
      return;
    }
    const id = this.#nextId;
    this.#nextId = (id + 1) >>> 0;
    job.id = id;
    if (this.#batch.length === 0) {
      this.#batchFirst = id;
      if (!this.#flushQueued) {
        this.#flushQueued = true;
        queueMicrotask(() => this.#flush());
      }
    }
    // Per-job names and options travel in side arrays, made only for a batch that needs them.
    if (name !== null && this.#batchFns === null) {
      this.#batchFns = [];
      for (let i = 0; i < this.#batch.length; i++) this.#batchFns.push('null');
    }
    if (this.#batchFns !== null) this.#batchFns.push(name === null ? 'null' : nameJson(name));
    if (job.retries !== undefined || job.timeout !== undefined) {
      if (this.#batchOpts === null) {
        this.#batchOpts = [];
        for (let i = 0; i < this.#batch.length; i++) this.#batchOpts.push(this.#retries, this.#timeout);
      }
    }
    if (this.#batchOpts !== null) {
      this.#batchOpts.push(job.retries ?? this.#retries, job.timeout ?? this.#timeout);
    }
    this.#batch.push(argsText);
    this.#jobs.set(id, job);
    if (job.signal !== null) this.#watch(job);
    if (!this.#refed) this.#setRef(true);
  }

  // One 'abort' listener per signal, however many jobs share it; removed with its last job.
  #watch(job) {
    let entry = this.#signals.get(job.signal);
    if (entry === undefined) {
      const signal = job.signal;
      entry = { jobs: new Set(), listener: () => this.#aborted(signal) };
      this.#signals.set(signal, entry);
      signal.addEventListener('abort', entry.listener, { once: true });
    }
    entry.jobs.add(job);
  }

  #unwatch(job) {
    const entry = this.#signals.get(job.signal);
    if (entry === undefined) return;
    entry.jobs.delete(job);
    if (entry.jobs.size === 0) {
      job.signal.removeEventListener('abort', entry.listener);
      this.#signals.delete(job.signal);
    }
  }

  // A queued job is withdrawn; a running one is withdrawn and its worker killed and replaced.
  #aborted(signal) {
    const entry = this.#signals.get(signal);
    if (entry === undefined) return;
    this.#signals.delete(signal);
    this.#flush();
    const errors = [];
    for (const job of entry.jobs) {
      job.signal = null;
      if (this.#jobs.get(job.id) !== job) continue;
      this.#jobs.take(job.id);
      this.#native.cancel(job.id);
      try {
        this.#settle(job, abortError(signal), undefined);
      } catch (e) {
        errors.push(e);
      }
    }
    this.#updateRef();
    for (const e of errors) process.nextTick(rethrow, e);
  }

  // Hands every job submitted in this tick to the engine in one call.
  #flush() {
    this.#flushQueued = false;
    const batch = this.#batch;
    if (batch.length === 0) return;
    this.#batch = [];
    const first = this.#batchFirst;
    let retries;
    let timeouts;
    const opts = this.#batchOpts;
    if (opts !== null) {
      this.#batchOpts = null;
      retries = new Uint32Array(batch.length);
      timeouts = new Float64Array(batch.length);
      for (let i = 0; i < batch.length; i++) {
        retries[i] = opts[2 * i];
        timeouts[i] = opts[2 * i + 1];
      }
    }
    const fns = this.#batchFns;
    this.#batchFns = null;
    const rejected = this.#native.submitCalls(first, batch.join('\n'),
      fns === null ? null : fns.join('\n'), batch.length, retries, timeouts);
    for (let i = 0; i < rejected.length; i += 3) {
      const id = (first + rejected[i]) >>> 0;
      const job = this.#jobs.take(id);
      let err;
      if (rejected[i + 1] === REJECT.BACKLOG) {
        err = new PoolError(codes.BACKLOG_FULL,
          `the backlog is full (${rejected[i + 2]} jobs waiting): job refused`,
          { maxBacklog: rejected[i + 2] });
      } else if (rejected[i + 1] === REJECT.DURATION) {
        const ms = Math.round(rejected[i + 2] * 1000);
        err = new PoolError(codes.EXPECTED_WAIT,
          `the job would take about ${ms} ms to complete, more than maxExpectedWait: job refused`,
          { expectedWait: ms });
      } else {
        err = new PoolError(codes.POOL_CLOSED, 'the pool is closed: no new jobs are accepted');
      }
      this.#settle(job, err, undefined);
    }
    this.#updateRef();
  }

  // Called on the JS thread when the engine has records.
  #drain() {
    const errors = [];
    const deadline = performance.now() + DRAIN_SLICE_MS;
    let recs = this.#stash;
    let i = this.#stashAt;
    this.#stash = null;
    outer: for (;;) {
      if (recs === null) {
        const batch = this.#native.take();
        if (batch === null) break;
        recs = JSON.parse(batch);
        i = 0;
      }
      for (; i < recs.length; i += 3) {
        try {
          this.#record(recs[i], recs[i + 1], recs[i + 2]);
        } catch (e) {
          // A throwing callback or listener must not strand the rest of the batch.
          errors.push(e);
        }
        // A saturated pool can hand over thousands of results at once: settle them in
        // slices, so timers and I/O of the host get their turn in between.
        if (i % 192 === 189 && i + 3 < recs.length && performance.now() > deadline) {
          this.#stash = recs;
          this.#stashAt = i + 3;
          if (!this.#resumeQueued) {
            this.#resumeQueued = true;
            setImmediate(() => {
              this.#resumeQueued = false;
              this.#drain();
            });
          }
          break outer;
        }
      }
      recs = null;
    }
    this.#updateRef();
    for (const e of errors) process.nextTick(rethrow, e);
  }

  #record(kind, id, value) {
    switch (kind) {
      case KIND.RESULT: {
        const job = this.#jobs.take(id);
        if (job) this.#settle(job, null, value);
        break;
      }
      case KIND.VOID: {
        const job = this.#jobs.take(id);
        if (job) this.#settle(job, null, undefined);
        break;
      }
      case KIND.JOB_ERROR: {
        const job = this.#jobs.take(id);
        if (job) this.#settle(job, rebuildError(value), undefined);
        break;
      }
      case KIND.FAILED: {
        const job = this.#jobs.take(id);
        if (job) this.#settle(job, this.#failure(value), undefined);
        break;
      }
      case KIND.PROGRESS: {
        const job = this.#jobs.get(id);
        if (job && job.onProgress) job.onProgress(value);
        break;
      }
      case KIND.EVENT:
        this.emit('event', value.name, value.data, id);
        break;
      case KIND.SPAWNED:
        this.emit('workerSpawn', { pid: id });
        break;
      case KIND.EXITED:
        this.#protocolErrors.delete(id);
        this.emit('workerExit', {
          pid: id, code: value.code, signal: value.signal, expected: value.expected,
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
        this.#exited = true;
        if (this.#done) this.#done.resolve();
        break;
      default:
        // STRAY (a reply to a job no longer in flight), SPAWN_FAILED (its jobs fail on their
        // own), debug records: nothing to do.
        break;
    }
  }

  #failure(v) {
    const terminated = this.#state === 'terminating';
    switch (v.reason) {
      case 'closed':
        return terminated
          ? new PoolError(codes.POOL_TERMINATED, 'the pool was terminated before this job ran')
          : new PoolError(codes.POOL_CLOSED, 'the pool closed before this job ran');
      case 'exit': {
        const how = v.signal ? `was killed by ${v.signal}` : `exited with code ${v.code}`;
        const props = { pid: v.pid, exitCode: v.code, signal: v.signal };
        if (terminated) {
          return new PoolError(codes.POOL_TERMINATED,
            `the pool was terminated while this job ran (worker ${v.pid} ${how})`, props);
        }
        const pe = this.#protocolErrors.get(v.pid);
        const why = pe ? ` after breaking the protocol (${pe})` : '';
        return new PoolError(codes.WORKER_EXITED,
          `worker ${v.pid} ${how}${why} while running this job`, props);
      }
      case 'startup': {
        const props = { pid: v.pid, exitCode: v.code, signal: v.signal };
        if (v.error !== null && v.error !== undefined) {
          props.cause = rebuildError(v.error);
          return new PoolError(codes.WORKER_INIT_FAILED,
            `worker ${v.pid} failed to start: ${props.cause.message}`, props);
        }
        return new PoolError(codes.WORKER_INIT_FAILED,
          `worker ${v.pid} exited with code ${v.code} before it was ready`, props);
      }
      case 'spawn':
        return new PoolError(codes.SPAWN_FAILED, v.message);
      case 'timeout':
        return new PoolError(codes.JOB_TIMEOUT,
          `the job ran longer than its timeout; worker ${v.pid} was killed and is replaced`,
          { pid: v.pid });
      default:
        return new PoolError(codes.WORKER_EXITED, `job failed: ${JSON.stringify(v)}`);
    }
  }

  #fail(job, err) {
    // Submission errors are asynchronous, like every other outcome.
    process.nextTick(() => this.#settle(job, err, undefined));
  }

  #settle(job, err, value) {
    if (job.signal !== null) this.#unwatch(job);
    if (job.cb !== null) {
      if (err === null) job.cb(null, value);
      else job.cb(err);
    } else if (err === null) {
      job.resolve(value);
    } else {
      job.reject(err);
    }
  }

  // Node stays alive while a job is unsettled or a shutdown is under way.
  #updateRef() {
    const want = this.#jobs.size > 0 || this.#batch.length > 0 ||
      (this.#done !== null && !this.#exited);
    if (want !== this.#refed) this.#setRef(want);
  }

  #setRef(on) {
    this.#refed = on;
    this.#native.setRef(on);
  }
}

function positiveIntOrZero(options, key, max) {
  const v = options[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) {
    throw optionError(`${key} must be an integer from 0 to ${max}, got ${String(v)}`, RangeError);
  }
  return v;
}

function positiveNumber(options, key) {
  const v = options[key];
  if (typeof v !== 'number' || !(v > 0)) {
    throw optionError(`${key} must be a number of milliseconds > 0`, RangeError);
  }
  return v;
}

function argumentError(message) {
  const err = new TypeError(`comrade Pool: ${message}`);
  err.code = codes.INVALID_ARGUMENT;
  return err;
}

function unserializableError(detail) {
  const err = new TypeError(`comrade Pool: the arguments cannot be serialized (${detail})`);
  err.code = codes.UNSERIALIZABLE;
  return err;
}

function rethrow(e) {
  throw e;
}

// ncpu(): physical cores and execution units (logical CPUs), straight from the engine.
module.exports = { Pool, PoolError, codes, ncpu };
