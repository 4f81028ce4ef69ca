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
const binary = require('./binary');
const v8 = require('node:v8');
const {
  codes, PoolError, rebuildError, argumentError, unserializableError, abortError, closedError,
  rejectionError, renderFailure, decodeFailure, POOL_FAILURES, submitError, unknownOptionError,
  optionError,
} = require('./errors');
const broadcasts = require('./broadcast');
const {
  resolveOptions, internalLimits, MAX_DURATION_MS, durationMessage, spanOption,
} = require('./options');
const { Session, Job, ScopedJob } = require('./session');
const { Coalescer } = require('./coalesce');
const { runBatch } = require('./batch');
const { Backpressure } = require('./backpressure');
const { RemotePool, isRemote } = require('./remote/producer');
const metrics = require('./metrics');
const { statusHandler, History } = require('./status-page');

const POOL_WORKER = path.join(__dirname, 'pool-worker.js');
// glibc's malloc in a Node worker: blocks under 16 MiB (a binary argument's or result's
// buffer) are reused from the heap, which keeps up to 32 MiB free, instead of coming from
// fresh pages and going back at every free (a page fault per 4 KiB, twice per call). The
// user's `env` overrides them; other allocators ignore them. The worker bootstrap does not
// pass these defaults on to processes it starts.
const NODE_WORKER_MALLOC = { MALLOC_MMAP_THRESHOLD_: String(16 << 20), MALLOC_TRIM_THRESHOLD_: String(32 << 20) };
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
  #burstWorkers;
  #minWorkers;
  #concurrency;
  #rejectedHere = 0;
  #timedOut = 0; // jobs failed with ERR_JOB_TIMEOUT
  #queueTimedOut = 0; // ... with ERR_QUEUE_TIMEOUT
  #totalTimedOut = 0; // ... with ERR_TOTAL_TIMEOUT
  #abortedHere = 0; // jobs whose signal was aborted before run()/exec() was called
  #maxMessage;
  #advanced = false; // serialization: 'advanced'
  #coalescer = null; // made with the first job that has a `key`
  #totalTimeoutMs; // the pool's totalTimeout (0: none), for callers sharing a job
  #batchHost = null; // what lib/batch.js needs of this pool, made with the first batch
  #backpressure;
  #priority;
  #select = null; // a custom selectWorker(job, workers), or null
  #name; // the `pool` label of metrics()
  #observer = new metrics.Observer();
  #history = null; // the status page's once-a-second samples, from its first statusHandler()
  #broadcasts = new Map(); // broadcast id -> { resolve, reject }, until its BROADCAST record
  #nextBroadcast = 0;

  constructor(options) {
    // { redis, queue }: a producer of a queue on Redis (lib/remote/producer.js), still a Pool.
    if (isRemote(options)) return new RemotePool(options);
    super();
    const o = resolveOptions(options);
    this.#name = o.name;
    this.#maxWorkers = o.maxWorkers;
    this.#burstWorkers = o.burstWorkers;
    this.#concurrency = o.concurrency;
    this.#minWorkers = o.minWorkers;
    this.#maxMessage = o.maxMessage;
    this.#totalTimeoutMs = o.totalTimeout ?? 0;
    this.#priority = o.priority;
    if (typeof o.strategy === 'function') this.#select = o.strategy;
    const { program, args } = o.module !== undefined
      ? { program: process.execPath, args: [...o.execArgv, POOL_WORKER, o.module] }
      : o.command;
    install();
    // A Node worker must not take fd 3 for Node's own IPC, nor believe it is a cluster worker:
    // these are removed from the inherited environment, and left out of the user's `env` too
    // (the engine sets `env` after removing, so they would come back).
    // COMRADE_MAX_MESSAGE: a worker's longest message, so that it fails a job whose result is
    // too large instead of breaking the protocol (docs/PROTOCOL.md).
    // COMRADE_PROTOCOL: the protocol version the pool speaks (3: binary attachments).
    const env = {
      ...o.env, COMRADE_CHANNEL_FD: '3', COMRADE_MAX_MESSAGE: String(o.maxMessage), COMRADE_PROTOCOL: '3',
    };
    // serialization 'advanced': arguments and results are v8.serialize'd, each as one binary
    // attachment (the worker bootstrap learns it from its environment).
    this.#advanced = o.serialization === 'advanced';
    if (this.#advanced) env.COMRADE_SERIALIZATION = 'advanced';
    if (o.module !== undefined) {
      for (const [name, value] of Object.entries(NODE_WORKER_MALLOC)) {
        if (!(o.env && Object.hasOwn(o.env, name)) && process.env[name] === undefined) env[name] = value;
      }
    }
    for (const name of WORKER_ENV_REMOVE) delete env[name];
    this.#session = new Session({
      program,
      args,
      env,
      envRemove: WORKER_ENV_REMOVE,
      cwd: o.cwd,
      maxWorkers: o.maxWorkers,
      burstWorkers: o.burstWorkers,
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
      queueTimeoutMs: o.queueTimeout ?? undefined,
      totalTimeoutMs: o.totalTimeout ?? undefined,
      prioritySlots: o.prioritySlots ?? undefined,
      fairness: o.fairness,
      groupAffinity: o.groupAffinity,
      // A function's fallback is the default strategy.
      strategy: typeof o.strategy === 'function' ? undefined : o.strategy,
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
      // After a job its own deadline failed has settled: its event.
      failed: (value, job) => this.#deadlineFailed(value, job),
      rejection: rejectionError,
      submitFailure: submitError,
    }, {
      calls: true, retries: o.retries, timeout: o.timeout ?? 0, priority: o.priority,
      queueTimeout: o.queueTimeout ?? 0, totalTimeout: o.totalTimeout ?? 0, advanced: this.#advanced,
      observer: this.#observer, traceName: o.name,
    });
    this.#backpressure = new Backpressure(this.#session, o.drainThreshold, () => this.emit('drain'));
    // The waiting jobs are watched only once someone listens for 'drain' (or reads needsDrain).
    const onListener = (event) => {
      if (event !== 'drain') return;
      this.#backpressure.watch();
      this.removeListener('newListener', onListener);
    };
    this.on('newListener', onListener);
  }

  /**
   * Runs the default function (or `options.name`) with `task` as its one argument.
   * Options: name, onProgress, signal (AbortSignal), timeout (ms), retries, priority,
   * queueTimeout (ms), totalTimeout (ms), group.
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
    if (job === null) {
      if (name === ABORTED) this.#abortedOnCall(null);
    } else if (optKey === null) {
      this.#submit(name, task, undefined, job);
    } else {
      this.#coalesce(name, task, undefined, job, optKey);
    }
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
   * Options: onProgress, signal (AbortSignal), timeout (ms), retries, priority, queueTimeout
   * (ms), totalTimeout (ms), group.
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
    if (job === null) {
      if (why === ABORTED) this.#abortedOnCall(name);
    } else if (optKey === null) {
      this.#submit(name, undefined, args, job);
    } else {
      this.#coalesce(name, undefined, args, job, optKey);
    }
    return promise;
  }

  /**
   * Runs the default function (or `options.name`) on each item of `items` (an iterable or async
   * iterable, pulled through a bounded window); resolves with the results in input order, or
   * rejects with the first error after withdrawing the rest (lib/batch.js).
   */
  map(items, options) {
    return runBatch(this.#host(), items, options, 'map', false);
  }

  /** As map(), but resolves with every item's { status, value | reason }. */
  mapSettled(items, options) {
    return runBatch(this.#host(), items, options, 'mapSettled', true);
  }

  /** Runs the default function with `task`; `cb(err, result)` runs once, in this call's async context. */
  enqueue(task, cb) {
    if (typeof cb !== 'function') throw argumentError('enqueue(task, cb): cb must be a function');
    this.#submit(null, task, undefined, new ScopedJob(null, null, cb, undefined));
    return this;
  }

  /**
   * Sends `message` (any JSON value) to every live worker's onMessage handlers (comrade/worker),
   * between its jobs. Resolves with the number of workers that acknowledged it, once every worker
   * live now has (a worker that dies, or is retired or stopped, before its ack is not waited for
   * and not counted; a worker started later does not get it). Rejects with ERR_BROADCAST_FAILED
   * when a handler threw, ERR_POOL_CLOSED after close()/terminate(), ERR_UNSERIALIZABLE or
   * ERR_MESSAGE_TOO_LARGE for a message that cannot go.
   */
  broadcast(message) {
    if (this.#state !== 'open') return Promise.reject(broadcasts.closedError());
    let text;
    try {
      text = broadcasts.messageText(message, this.#maxMessage);
    } catch (e) {
      return Promise.reject(e);
    }
    this.#nextBroadcast = (this.#nextBroadcast % 0xffffffff) + 1;
    const id = this.#nextBroadcast;
    let entry;
    const promise = new Promise((resolve, reject) => { entry = { resolve, reject }; });
    this.#broadcasts.set(id, entry);
    this.#session.hold();
    // Jobs submitted before it, in this tick, are written before it.
    this.#session.flush();
    try {
      this.#session.native.broadcast(id, text);
    } catch (e) {
      this.#broadcasts.delete(id);
      this.#session.unhold();
      entry.reject(e);
    }
    return promise;
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

  /** Jobs accepted and not settled yet (callers of a shared job each count). */
  get pending() {
    return this.#session.size + (this.#coalescer === null ? 0 : this.#coalescer.extra);
  }

  /**
   * Whether the jobs waiting for a worker number at least `drainThreshold`: stop submitting
   * until 'drain'.
   */
  get needsDrain() {
    return this.#backpressure.needsDrain();
  }

  get drainThreshold() {
    return this.#backpressure.threshold;
  }

  get maxWorkers() {
    return this.#maxWorkers;
  }

  /** The most workers while a map() with a finishBy runs behind (maxWorkers: no growth). */
  get burstWorkers() {
    return this.#burstWorkers;
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
    // Jobs of this tick, not yet handed to the engine, wait too.
    s.queued += this.#session.unflushed;
    s.pending = this.#session.size;
    s.aborted = this.#session.aborted + this.#abortedHere;
    s.timedOut = this.#timedOut;
    s.coalesced = 0;
    const c = this.#coalescer;
    if (c !== null) {
      s.pending += c.extra;
      s.coalesced = c.joined;
      s.aborted += c.aborted - c.cancelled;
      s.timedOut += c.timedOut;
    }
    s.queueTimedOut = this.#queueTimedOut;
    s.totalTimedOut = this.#totalTimedOut + (c === null ? 0 : c.totalTimedOut);
    return s;
  }

  // 'queueTimeout' / 'totalTimeout' for a job its own deadline failed (`value`: the engine's
  // failure record), in the pool's async context.
  #deadlineFailed(value, job) {
    if (value.reason === 'queue_timeout') {
      this.#queueTimedOut++;
      this.emit('queueTimeout', { name: job.name, waitedMs: value.waited_ms });
    } else if (value.reason === 'total_timeout') {
      this.#totalTimedOut++;
      this.emit('totalTimeout', { name: job.name, pid: value.pid ?? null });
    }
  }

  #metricsSnapshot() {
    const engine = JSON.parse(this.#session.native.metrics());
    // The engine's totals with this side's, as stats() reports them.
    const stats = this.#withHostTotals({
      completed: engine.completed, errored: engine.errored, failed: engine.failed,
      rejected: engine.rejected, queued: engine.queued,
    });
    const c = this.#coalescer;
    stats.callerTimeouts = c === null ? 0 : c.timedOut + c.totalTimedOut;
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

  #host() {
    if (this.#batchHost === null) {
      const native = this.#session.native;
      let nextBurst = 0;
      this.#batchHost = {
        slots: this.#maxWorkers * this.#concurrency,
        bursting: this.#burstWorkers > this.#maxWorkers,
        // A batch with a finishBy: its id (never 0) for the engine's deadline bookkeeping.
        burstId: () => {
          nextBurst = (nextBurst % 0xfffffffe) + 1;
          return nextBurst;
        },
        setBurst: (id, finishBy, remaining, speculate) => native.setBurst(id, finishBy, remaining, speculate),
        endBurst: (id) => native.endBurst(id),
        readJob: readBatchJob,
        submit: (name, item, job, key) => {
          if (key === null) this.#submit(name, item, undefined, job);
          else this.#coalesce(name, item, undefined, job, key);
        },
      };
    }
    return this.#batchHost;
  }

  // A job with a `key`: lib/coalesce.js runs it, or joins it to the shared job of its key.
  #coalesce(name, task, args, job, key) {
    if (this.#coalescer === null) {
      this.#coalescer = new Coalescer(
        (n, t, a, carrier) => this.#submit(n, t, a, carrier),
        (j, err, value) => this.#session.settle(j, err, value),
        this.#totalTimeoutMs,
        (name) => this.emit('totalTimeout', { name, pid: null }));
    }
    const joined = this.#coalescer.joined;
    this.#coalescer.add(name, task, args, job, key);
    if (this.#coalescer.joined !== joined) this.#observer.outcome(name, metrics.COALESCED);
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
    let bins = null; // binary attachments (lib/binary.js), when the arguments hold any
    if (this.#advanced) {
      try {
        bins = [v8.serialize(args === undefined ? [task] : args)];
      } catch (e) {
        this.#rejected(job, name, unserializableError(e.message));
        return;
      }
      argsText = '{"$b":0}';
    } else {
      try {
        // JSON would silently drop a function; a top-level one is surely a mistake.
        if (args === undefined) {
          const t = typeof task;
          if (t === 'function' || t === 'symbol') throw new TypeError(`argument 0 is a ${t}`);
          if (t === 'object' && binary.hasBinary(task)) {
            bins = [];
            argsText = json.stringify(binary.encode(task, bins), true);
          } else {
            // undefined (or a toJSON that returns it) is null, as inside an array.
            argsText = json.stringify(task, true) ?? 'null';
          }
        } else {
          for (let i = 0; i < args.length; i++) {
            const t = typeof args[i];
            if (t === 'function' || t === 'symbol') throw new TypeError(`argument ${i} is a ${t}`);
          }
          if (binary.hasBinary(args)) {
            bins = [];
            argsText = json.stringify(binary.encode(args, bins), true).slice(1, -1);
          } else {
            argsText = json.stringify(args, true).slice(1, -1);
          }
        }
      } catch (e) {
        this.#rejected(job, name, unserializableError(e.message));
        return;
      }
    }
    // Raw long strings (lib/json.js) grow when escaped, at most 6 bytes a unit: when that could
    // reach the limit, the JSON text itself is measured (and sent).
    if (argsText.length * 6 > this.#maxMessage && argsText.includes(json.RAW_MARK)) {
      argsText = json.unraw(argsText);
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
    if (bins !== null && binary.totalBytes(bins) > this.#maxMessage) {
      this.#rejected(job, name, new PoolError(codes.MESSAGE_TOO_LARGE,
        `the ${this.#advanced ? 'serialized' : 'binary'} arguments are ${binary.totalBytes(bins)} bytes, ` +
        `more than maxMessage (${this.#maxMessage})`, { maxMessage: this.#maxMessage }));
      return;
    }
    if (this.#select !== null) this.#selectWorker(name, task, args, job);
    this.#session.add(job, argsText, name, bins);
  }

  // A custom strategy's choice for `job`, made now, from the workers' loads now: the worker it
  // goes to when dispatched, if that worker has a free slot then (otherwise the default
  // strategy's). A function that throws or names no live worker: the default, and 'warning'.
  #selectWorker(name, task, args, job) {
    const workers = this.#session.native.workerLoads();
    // The binding leaves a missing group out: null, as the types say.
    for (let i = 0; i < workers.length; i++) workers[i].group ??= null;
    let pid;
    try {
      pid = this.#select({
        name, args: args === undefined ? [task] : args, group: job.group ?? null,
        priority: job.priority ?? this.#priority,
      }, workers);
    } catch (e) {
      this.#warn(`selectWorker threw: ${e instanceof Error ? e.message : String(e)}; ` +
        'the default strategy chooses', e);
      return;
    }
    if (pid === undefined) return;
    for (let i = 0; i < workers.length; i++) {
      if (workers[i].pid === pid) {
        job.pin = pid;
        return;
      }
    }
    this.#warn(`selectWorker returned ${String(pid)}, not the pid of a worker it was shown; ` +
      'the default strategy chooses');
  }

  // 'warning' ({ message, cause }), emitted later in the pool's async context: a listener that
  // throws must not make run()/exec() throw.
  #warn(message, cause) {
    process.nextTick(() => this.#session.inScope(this.emit, this, 'warning', { message, cause }));
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
      case KIND.BROADCAST: {
        // [reached, [[pid, error], ...]]: every worker it waited for acked or is gone.
        const entry = this.#broadcasts.get(id);
        if (entry === undefined) break;
        this.#broadcasts.delete(id);
        this.#session.unhold();
        if (value[1].length === 0) {
          entry.resolve(value[0]);
        } else {
          const failures = value[1].map(([pid, e]) => ({ pid, error: rebuildError(e) }));
          entry.reject(broadcasts.failedError(value[0], failures));
        }
        break;
      }
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
const JOB_OPTIONS = [
  'onProgress', 'signal', 'timeout', 'retries', 'priority', 'queueTimeout', 'totalTimeout', 'group',
  'key',
];
const ABORTED = Symbol('aborted');
const RUN = {
  what: 'run', usage: 'run(task, options)', names: ['name', ...JOB_OPTIONS],
};
const EXEC = {
  what: 'exec', usage: 'exec(name, args, options)', names: JOB_OPTIONS,
};
// map()/mapSettled(): onProgress is the batch's ({ done, failed, total }), not a job's.
const MAP = {
  what: 'map',
  usage: 'map(items, options)',
  names: ['name', 'window', 'collect', 'onResult', 'finishBy', 'speculate', ...JOB_OPTIONS],
};
RUN.known = new Set(RUN.names);
EXEC.known = new Set(EXEC.names);
MAP.known = new Set(MAP.names);

// A batch's per-job options, read once into a template job: { template, name, key }, or an
// Error (an unknown option, a wrong value).
function readBatchJob(options) {
  for (const key in options) {
    if (MAP.known.has(key) || !Object.hasOwn(options, key)) continue;
    return unknownOptionError(`${MAP.what}() option`, key, MAP.names);
  }
  const template = new Job(null, null, null, undefined);
  optKey = null;
  const name = readOptions(template, options, undefined, MAP.what);
  const key = optKey;
  optKey = null;
  if (name instanceof Error) return name;
  return { template, name, key };
}

// A job with its per-job `options` read (for `m`, RUN or EXEC), or null when an option is
// wrong (its Promise is then rejected: a getter that throws, an unknown option, a wrong value
// never make the method throw). Out-parameters, so that the hot path allocates nothing beyond
// the job and its Promise: `optPromise`, the job's Promise; `optName`, run()'s options.name
// (or null), or ABORTED when the signal was aborted already; `optKey`, options.key (or null).
let optPromise = null;
let optName = null;
let optKey = null;
function optionsJob(options, m) {
  optKey = null;
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
  const {
    signal, timeout, retries, priority, queueTimeout, totalTimeout, group, key,
  } = options;
  const name = what === 'exec' ? undefined : options.name;
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
  if (queueTimeout !== undefined) {
    const ms = spanOption(what, 'queueTimeout', queueTimeout);
    if (ms instanceof Error) return ms;
    job.queueTimeout = ms;
  }
  if (totalTimeout !== undefined) {
    const ms = spanOption(what, 'totalTimeout', totalTimeout);
    if (ms instanceof Error) return ms;
    job.totalTimeout = ms;
  }
  if (group !== undefined) {
    if (typeof group !== 'string' || group === '') {
      return argumentError(`${what}(): options.group must be a non-empty string`);
    }
    job.group = group;
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
  if (key !== undefined) {
    if (typeof key !== 'string' || key.length === 0) {
      return argumentError(`${what}(): options.key must be a non-empty string`);
    }
  }
  if (signal !== undefined && signal !== null) {
    if (typeof signal !== 'object' || typeof signal.aborted !== 'boolean' ||
        typeof signal.addEventListener !== 'function') {
      return argumentError(`${what}(): options.signal must be an AbortSignal`);
    }
    if (signal.aborted) return abortError(signal);
    job.signal = signal;
  }
  if (key !== undefined) optKey = key;
  return name ?? null;
}

Pool.METRICS_CONTENT_TYPE = metrics.CONTENT_TYPE;

function settleLater(session, job, err) {
  session.settle(job, err, undefined);
}

// A producer is a Pool too (`instanceof Pool`); it overrides every public method and getter.
Object.setPrototypeOf(RemotePool.prototype, Pool.prototype);

// ncpu(): physical cores and execution units (logical CPUs), straight from the engine.
module.exports = { Pool, PoolError, codes, ncpu };
