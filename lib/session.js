'use strict';
// The session between a facade (Pool, ComputeCluster) and the engine: the native handle, the
// unsettled jobs, job ids, the batch of jobs submitted in one tick (handed over on a
// microtask, in one native call), the rejections of a batch, the drain of the engine's records
// (in slices, a throwing callback isolated), AbortSignals, and ref/unref of the native handle.
//
// A facade hands in what is its own, as hooks:
//   record(kind, id, value)   a record that is not a job's outcome (worker events, ALL_EXITED)
//   failure(value)            a FAILED record's value -> the job's error (an Error or a string)
//   rejection(reason, value)  a rejection triple (REJECT.*, value) -> the job's error
//   submitFailure(error)      the native call that was to hand the job over threw `error`
//                             -> the job's error
// A job settles through its own continuation: a Promise's resolve/reject or a Node-style
// callback `cb(err)` / `cb(null, value)`.
//
// Async context. Code the pool runs later on someone's behalf runs in that someone's async
// context (AsyncLocalStorage stores, async_hooks parents), with one idiom: what holds the code
// is an AsyncResource created in that context, and the code runs in
// `resource.runInAsyncScope(...)`.
//   - A job's callback and onProgress run in the context of the call that made the job
//     (run(), call(), enqueue()): such a job is a ScopedJob, itself the AsyncResource (no
//     object more per job). A Promise job needs none: its reactions run in the context of
//     their then() like any Promise's.
//   - The facade's hooks, and so its events ('event', 'workerSpawn', ... of Pool; 'info',
//     'error', 'debug' of ComputeCluster), run in the context the pool was constructed in,
//     as with Node's EventEmitterAsyncResource: the records they come from have no caller.

const { AsyncResource } = require('node:async_hooks');
const diagnosticsChannel = require('node:diagnostics_channel');
const { performance } = require('node:perf_hooks');
const { NativePool, KIND } = require('./native');
const { JobTable } = require('./job-table');
const v8 = require('node:v8');
const { rebuildError, abortError, PoolError, codes } = require('./errors');
const { revive } = require('./binary');
const { OK, ABORTED, REJECTED } = require('./metrics');

// Tracing: start and end when a job is submitted (in its caller's context), then error (if it
// failed), asyncStart and asyncEnd around its settlement, all with one context object per job:
// { pool, function, jobId, pid, waitMs, runMs, traceparent, result | error }. A `start`
// subscriber may set `traceparent` (a W3C traceparent) to have it sent with the call. Whether
// anyone subscribes is checked once per batch (at its first job), so a pool nobody traces pays
// one boolean test per job; the engine sends each job's worker and times (SENT and RAN
// records) only while a batch was traced.
const jobChannel = diagnosticsChannel.tracingChannel('comrade:job');
const TRACEPARENT = /^00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$/;

// Longest stretch of record handling before the host's event loop gets a turn, in ms. A
// saturated pool hands over thousands of results at once (about 1 µs each to settle); without
// slices a timer or I/O callback of the host would wait for all of them. The budget: the
// host's event-loop delay p99 under a saturated Pool stays under 5 ms. Measured with
// bench/responsiveness.js (release build, 2 busy shared cores, Pool with 256 tiny jobs in
// flight; medians of 7 interleaved runs): 0.5 ms: p99 2.33 ms (worst run 2.78), 425k jobs/s;
// 1 ms: p99 2.51 ms (worst 3.08), 434k jobs/s; 2 ms: p99 2.49 ms (worst 4.74), 469k jobs/s,
// delay max up to 45 ms. Throughput differences were within the noise. 1 ms: half the yields
// of 0.5 (each costs a setImmediate turn and a stash) with the worst p99 still well inside the
// budget, where 2 ms came close to it.
const DRAIN_SLICE_MS = 1;
// The clock is read once per this many records (and never after the last of a batch).
const CHECK_EVERY = 64;
// Most UTF-16 units of job text (arguments and function names, with their newlines) handed to
// the engine in one native call: a tick's batch longer than this goes in several calls, so the
// joined text stays far below V8's longest string (2**29 - 24 units), and the engine's copy of
// it bounded. A single longer job goes alone. Ordinary batches never come near it.
const FLUSH_UNITS = 2 ** 26;

// A job whose outcome settles a Promise.
class Job {
  constructor(resolve, reject, cb, onProgress) {
    this.resolve = resolve;
    this.reject = reject;
    this.cb = cb;
    this.onProgress = onProgress;
    this.id = -1;
    this.signal = null;
    // Per-job overrides of the pool's retries / timeout / priority / queueTimeout /
    // totalTimeout (undefined: the pool's).
    this.retries = undefined;
    this.timeout = undefined;
    this.priority = undefined;
    this.queueTimeout = undefined;
    this.totalTimeout = undefined;
    this.group = undefined; // its requestor group (a non-empty string), if any
    this.pin = undefined; // its preferred worker's pid (a custom selectWorker's choice)
    this.burst = undefined; // its map() batch with a finishBy (an id), if any
    this.name = null; // its function's name, or null for the default one (set by add())
    this.trace = null; // its tracing context, while it is traced
  }
}

// A job with code of its caller to run later (a callback, onProgress): its own AsyncResource,
// made in the caller's context. The same fields as Job.
class ScopedJob extends AsyncResource {
  constructor(resolve, reject, cb, onProgress) {
    super('comrade.Job');
    this.resolve = resolve;
    this.reject = reject;
    this.cb = cb;
    this.onProgress = onProgress;
    this.id = -1;
    this.signal = null;
    this.retries = undefined;
    this.timeout = undefined;
    this.priority = undefined;
    this.queueTimeout = undefined;
    this.totalTimeout = undefined;
    this.group = undefined;
    this.pin = undefined;
    this.burst = undefined;
    this.name = null;
    this.trace = null; // its tracing context, while it is traced
  }
}

class Session {
  #native;
  #hooks;
  #scope; // the async context of the construction, for the hooks
  #calls; // submitCalls (Pool: names, per-job options) or submit (ComputeCluster)
  #retries; // the pool's defaults, for the per-job side array
  #timeout;
  #priority;
  #queueTimeout;
  #totalTimeout;
  #jobs = new JobTable();
  #nextId = 0;
  #batch = [];
  #batchFirst = 0;
  #batchFns = null; // per-job function names (JSON) of the current batch, when any job has one
  #batchOpts = null; // per-job [retries, timeout] of the current batch, when any job has its own
  #batchPrio = null; // per-job priorities of the current batch, when any job has its own
  #batchWaits = null; // per-job [queueTimeout, totalTimeout], when any job has its own
  #batchGroups = null; // per-job groups ('' for none), when any job has one
  #batchPins = null; // per-job preferred workers' pids (0 for none), when any job has one
  #batchBursts = null; // per-job batch ids (0 for none), when any job has one (finishBy)
  #batchBins = null; // per-job binary attachments (arrays, null for none), when any job has one
  #bins = null; // the attachments of the batch of records being handled (fetched on first use)
  #binAt = 0; // the next of them to hand out
  #advanced = false; // results are v8.serialize'd (serialization: 'advanced'), one attachment each
  #batchUnits = 0; // the batch's text so far, in UTF-16 units (FLUSH_UNITS)
  #flushQueued = false;
  #flushTask;
  #signals = new Map(); // AbortSignal -> { jobs: Set<Job>, listener }: one listener per signal
  #stash = null; // records taken from the engine and not handled yet (a drain used its slice)
  #stashAt = 0;
  #resumeQueued = false;
  #resumeTask;
  #closing = false;
  #held = 0; // pending things besides jobs that keep Node alive (broadcasts: hold())
  #exited = false;
  #refed = false;
  #abortedCount = 0; // jobs settled with an AbortError
  #queueHook = null; // called when the queue may have changed (lib/backpressure.js), if set
  #observer; // a metrics Observer (lib/metrics.js), or null
  #traceName; // the pool's name in tracing events, or null: never traced
  #tracing = false; // the current batch is traced (someone subscribes to comrade:job)
  #batchTp = null; // per-job traceparents of the current batch, when any job has one
  #sided = false; // some side array besides the names' is made for the current batch

  /**
   * `nativeOptions` for NativePool; `hooks` as above (and, optionally, `failed(value, job)`,
   * called after a FAILED record settled its job); `calls`: submit with submitCalls (names and
   * per-job options) rather than submit; `retries`, `timeout`, `priority`, `queueTimeout`,
   * `totalTimeout`: the pool's defaults (0: none); `observer`: a metrics Observer told of named
   * jobs' outcomes and of failures; `traceName`: the pool's name in `comrade:job` tracing
   * events (null: no tracing).
   */
  constructor(nativeOptions, hooks, {
    calls = false, retries = 0, timeout = 0, priority = 0, queueTimeout = 0, totalTimeout = 0,
    observer = null, traceName = null, advanced = false,
  } = {}) {
    this.#advanced = advanced;
    this.#hooks = hooks;
    this.#observer = observer;
    this.#traceName = traceName;
    this.#scope = new AsyncResource('comrade.Pool');
    this.#calls = calls;
    this.#retries = retries;
    this.#timeout = timeout;
    this.#priority = priority;
    this.#queueTimeout = queueTimeout;
    this.#totalTimeout = totalTimeout;
    this.#flushTask = () => this.flush();
    this.#resumeTask = () => {
      this.#resumeQueued = false;
      this.#drain();
    };
    this.#native = new NativePool(nativeOptions, () => this.#drain());
  }

  /** Jobs accepted and not settled yet. */
  get size() {
    return this.#jobs.size;
  }

  get exited() {
    return this.#exited;
  }

  /**
   * Jobs waiting for a worker: in the engine's queue (waiting for a worker to start, too), and
   * submitted in this tick but not yet handed to the engine.
   */
  get waiting() {
    return this.#native.queued() + this.#batch.length;
  }

  /** Jobs submitted in this tick, not yet handed to the engine. */
  get unflushed() {
    return this.#batch.length;
  }

  /** `hook()` runs after each hand-over of jobs, batch of records and withdrawal. */
  onQueueChange(hook) {
    this.#queueHook = hook;
  }

  /** Jobs their AbortSignal withdrew (queued or running) since the start. */
  get aborted() {
    return this.#abortedCount;
  }

  get native() {
    return this.#native;
  }

  /** Runs fn(...args) in the async context the session was made in. */
  inScope(fn, thisArg, ...args) {
    return this.#scope.runInAsyncScope(fn, thisArg, ...args);
  }

  /**
   * Adds a job to this tick's batch: `argsText` is its arguments as JSON (for submitCalls,
   * without the enclosing brackets; long strings may be raw, see lib/json.js), `name` its
   * function's name or null, `bins` its binary attachments (Buffers, referenced from
   * `argsText` as {"$b":i}) or null.
   */
  add(job, argsText, name, bins = null) {
    const batch = this.#batch;
    // Whether anyone traces, once per batch. The start event goes out before the job takes
    // its place, so that a subscriber submitting jobs of its own cannot come in between.
    if (batch.length === 0 && this.#traceName !== null && jobChannel.hasSubscribers !== this.#tracing) {
      this.#setTracing();
    }
    const tp = this.#tracing ? this.#traceStart(job, name) : null;
    const id = this.#nextId;
    this.#nextId = (id + 1) >>> 0;
    job.id = id;
    job.name = name;
    if (batch.length === 0) {
      this.#batchFirst = id;
      if (!this.#flushQueued) {
        this.#flushQueued = true;
        queueMicrotask(this.#flushTask);
      }
    }
    // Per-job names and options travel in side arrays, made only for a batch that needs them.
    if (name !== null && this.#batchFns === null) {
      this.#batchFns = [];
      for (let i = 0; i < batch.length; i++) this.#batchFns.push('null');
    }
    if (this.#batchFns !== null) {
      const nameText = name === null ? 'null' : nameJson(name);
      this.#batchFns.push(nameText);
      this.#batchUnits += nameText.length + 1;
    }
    // The other side arrays: one test for a job with none of its own in a batch without any
    // (the common case), rather than one per array.
    if (this.#sided || job.retries !== undefined || job.timeout !== undefined ||
        job.priority !== undefined || job.queueTimeout !== undefined ||
        job.totalTimeout !== undefined || job.group !== undefined || job.pin !== undefined ||
        job.burst !== undefined || bins !== null || tp !== null) {
      this.#addSides(job, bins, tp, batch.length);
    }
    batch.push(argsText);
    this.#batchUnits += argsText.length + 1;
    this.#jobs.set(id, job);
    if (job.signal !== null) this.#watch(job);
    if (!this.#refed) this.#setRef(true);
    if (job.trace !== null) {
      job.trace.jobId = id;
      jobChannel.end.publish(job.trace);
    }
  }

  // A job's entries in the batch's side arrays (made for the batch when this job is the first
  // to need one, with the pool's defaults for the `n` jobs before it).
  #addSides(job, bins, tp, n) {
    this.#sided = true;
    if (job.retries !== undefined || job.timeout !== undefined) {
      if (this.#batchOpts === null) {
        this.#batchOpts = [];
        for (let i = 0; i < n; i++) this.#batchOpts.push(this.#retries, this.#timeout);
      }
    }
    if (this.#batchOpts !== null) {
      this.#batchOpts.push(job.retries ?? this.#retries, job.timeout ?? this.#timeout);
    }
    if (job.priority !== undefined && this.#batchPrio === null) {
      this.#batchPrio = [];
      for (let i = 0; i < n; i++) this.#batchPrio.push(this.#priority);
    }
    if (this.#batchPrio !== null) this.#batchPrio.push(job.priority ?? this.#priority);
    if ((job.queueTimeout !== undefined || job.totalTimeout !== undefined) && this.#batchWaits === null) {
      this.#batchWaits = [];
      for (let i = 0; i < n; i++) this.#batchWaits.push(this.#queueTimeout, this.#totalTimeout);
    }
    if (this.#batchWaits !== null) {
      this.#batchWaits.push(job.queueTimeout ?? this.#queueTimeout, job.totalTimeout ?? this.#totalTimeout);
    }
    if (job.group !== undefined && this.#batchGroups === null) this.#batchGroups = new Array(n).fill('');
    if (this.#batchGroups !== null) this.#batchGroups.push(job.group ?? '');
    if (job.pin !== undefined && this.#batchPins === null) this.#batchPins = new Array(n).fill(0);
    if (this.#batchPins !== null) this.#batchPins.push(job.pin ?? 0);
    if (job.burst !== undefined && this.#batchBursts === null) this.#batchBursts = new Array(n).fill(0);
    if (this.#batchBursts !== null) this.#batchBursts.push(job.burst ?? 0);
    if (bins !== null && this.#batchBins === null) this.#batchBins = new Array(n).fill(null);
    if (this.#batchBins !== null) this.#batchBins.push(bins);
    if (tp !== null && this.#batchTp === null) this.#batchTp = new Array(n).fill('');
    if (this.#batchTp !== null) {
      this.#batchTp.push(tp ?? '');
      if (tp !== null) this.#batchUnits += tp.length + 1;
    }
  }

  #setTracing() {
    this.#tracing = !this.#tracing;
    this.#native.setTrace(this.#tracing);
  }

  // Publishes the job's start (its id is not assigned yet: null until end); returns the
  // traceparent a subscriber set, or null.
  #traceStart(job, name) {
    const ctx = {
      pool: this.#traceName, function: name, jobId: null, pid: null, waitMs: null, runMs: null,
      traceparent: null,
    };
    job.trace = ctx;
    jobChannel.start.publish(ctx);
    const tp = ctx.traceparent;
    return typeof tp === 'string' && TRACEPARENT.test(tp) ? tp : null;
  }

  /**
   * Hands every job submitted in this tick to the engine: in one native call, or in several
   * when their text is longer than FLUSH_UNITS. Never throws: a part the engine could not be
   * given fails its jobs (hooks.submitFailure).
   */
  flush() {
    this.#flushQueued = false;
    const batch = this.#batch;
    if (batch.length === 0) return;
    this.#batch = [];
    const first = this.#batchFirst;
    const fns = this.#batchFns;
    this.#batchFns = null;
    const units = this.#batchUnits;
    this.#batchUnits = 0;
    let side = null;
    if (this.#sided) {
      this.#sided = false;
      // The per-job side arrays, each null when no job of the batch has its own.
      side = [this.#batchOpts, this.#batchPrio, this.#batchWaits, this.#batchGroups,
        this.#batchPins, this.#batchBursts, this.#batchBins, this.#batchTp];
      this.#batchOpts = null;
      this.#batchPrio = null;
      this.#batchWaits = null;
      this.#batchGroups = null;
      this.#batchPins = null;
      this.#batchBursts = null;
      this.#batchBins = null;
      this.#batchTp = null;
    }
    if (units <= FLUSH_UNITS) {
      this.#submitPart(batch, fns, side, first, 0, batch.length);
    } else {
      const tps = side === null ? null : side[7];
      let start = 0;
      let size = 0;
      for (let i = 0; i < batch.length; i++) {
        const n = batch[i].length + 1 + (fns === null ? 0 : fns[i].length + 1) +
          (tps === null ? 0 : tps[i].length + 1);
        if (i > start && size + n > FLUSH_UNITS) {
          this.#submitPart(batch, fns, side, first, start, i);
          start = i;
          size = 0;
        }
        size += n;
      }
      this.#submitPart(batch, fns, side, first, start, batch.length);
    }
    this.#updateRef();
    if (this.#queueHook !== null) this.#queueChanged();
  }

  // The hook runs in the session's context; what it throws is thrown later, on its own.
  #queueChanged() {
    try {
      this.#scope.runInAsyncScope(this.#queueHook);
    } catch (e) {
      rethrowLater([e]);
    }
  }

  // Submits jobs start..end of a batch (ids first + index) in one native call, and settles the
  // ones the engine refused; if the call throws, every job of the part fails.
  // `side`: [opts, prio, waits, groups, pins, bursts, bins, tps], the batch's per-job side
  // arrays (or nulls), or null when the batch has none (then a call with names alone).
  #submitPart(batch, fns, side, first, start, end) {
    const whole = start === 0 && end === batch.length;
    const count = end - start;
    const firstId = (first + start) >>> 0;
    let rejected;
    try {
      const args = (whole ? batch : batch.slice(start, end)).join('\n');
      if (this.#calls && side === null) {
        const names = fns === null ? null : (whole ? fns : fns.slice(start, end)).join('\n');
        rejected = this.#native.submitNamed(firstId, args, names, count);
      } else if (this.#calls) {
        const [opts, prio, waits, groups, pins, bursts, bins, tps] = side;
        let retries;
        let timeouts;
        if (opts !== null) {
          retries = new Uint32Array(count);
          timeouts = new Float64Array(count);
          for (let i = 0; i < count; i++) {
            retries[i] = opts[2 * (start + i)];
            timeouts[i] = opts[2 * (start + i) + 1];
          }
        }
        const priorities = prio === null ? undefined : new Float64Array(whole ? prio : prio.slice(start, end));
        const w = waits === null ? undefined : new Float64Array(whole ? waits : waits.slice(2 * start, 2 * end));
        const g = groups === null ? undefined : (whole ? groups : groups.slice(start, end));
        const p = pins === null ? undefined : new Int32Array(whole ? pins : pins.slice(start, end));
        const b = bursts === null ? undefined : new Uint32Array(whole ? bursts : bursts.slice(start, end));
        const names = fns === null ? null : (whole ? fns : fns.slice(start, end)).join('\n');
        let binCounts;
        let binData;
        if (bins !== null) {
          // Each job's count, and all of them back to back.
          binCounts = new Uint32Array(count);
          binData = [];
          for (let i = 0; i < count; i++) {
            const own = bins[start + i];
            if (own === null) continue;
            binCounts[i] = own.length;
            for (let j = 0; j < own.length; j++) binData.push(own[j]);
          }
        }
        const traceparents = tps === null ? undefined : (whole ? tps : tps.slice(start, end)).join('\n');
        rejected = this.#native.submitCalls(firstId, args, names, count, retries, timeouts, priorities, w, g, p,
          b, binCounts, binData, traceparents);
      } else {
        rejected = this.#native.submit(firstId, args, count);
      }
    } catch (e) {
      this.#failPart(firstId, count, e);
      return;
    }
    // The refused jobs, as flat triples [index in the part, REJECT reason, value, ...].
    if (rejected.length > 0) {
      const errors = [];
      const hooks = this.#hooks;
      for (let i = 0; i < rejected.length; i += 3) {
        const job = this.#jobs.take((firstId + rejected[i]) >>> 0);
        if (this.#observer !== null) this.#observer.outcome(job.name, REJECTED);
        try {
          this.settle(job, this.#scope.runInAsyncScope(hooks.rejection, hooks,
            rejected[i + 1], rejected[i + 2]), undefined);
        } catch (e) {
          errors.push(e);
        }
      }
      rethrowLater(errors);
    }
  }

  // The native call for `count` jobs from `firstId` threw `error`: none of them is left pending.
  #failPart(firstId, count, error) {
    const errors = [];
    const hooks = this.#hooks;
    for (let i = 0; i < count; i++) {
      const id = (firstId + i) >>> 0;
      const job = this.#jobs.take(id);
      if (job === undefined) continue;
      try {
        // Should the engine have taken it after all, it must not run for nobody.
        this.#native.cancel(id);
      } catch {
        // Nothing more can be done about it.
      }
      try {
        this.settle(job, this.#scope.runInAsyncScope(hooks.submitFailure, hooks, error), undefined);
      } catch (e) {
        errors.push(e);
      }
    }
    rethrowLater(errors);
  }

  /** Settles a job (taken out of the table, or never in it). */
  settle(job, err, value) {
    const ctx = job.trace;
    if (ctx !== null) {
      job.trace = null;
      if (err === null) {
        ctx.result = value;
      } else {
        ctx.error = err;
        jobChannel.error.publish(ctx);
      }
      try {
        jobChannel.asyncStart.runStores(ctx, this.settle, this, job, err, value);
      } finally {
        jobChannel.asyncEnd.publish(ctx);
      }
      return;
    }
    if (job.signal !== null) this.#unwatch(job);
    if (job.cb !== null) {
      if (err === null) job.runInAsyncScope(job.cb, undefined, null, value);
      else job.runInAsyncScope(job.cb, undefined, err);
      job.emitDestroy();
    } else {
      if (err === null) job.resolve(value);
      else job.reject(err);
      if (job.onProgress !== undefined) job.emitDestroy();
    }
  }

  /**
   * Stops the pool: `drain` lets accepted jobs finish first. The native handle stays ref'd
   * until every worker is reaped.
   */
  shutdown(drain) {
    this.flush();
    this.#closing = true;
    if (!this.#exited) this.#native.shutdown(drain);
    this.#updateRef();
  }

  // Something besides a job waits for a record (a broadcast): Node stays alive until the
  // matching unhold().
  hold() {
    this.#held++;
    this.#updateRef();
  }

  unhold() {
    this.#held--;
    this.#updateRef();
  }

  pids() {
    return this.#native.pids();
  }

  stats() {
    return this.#native.stats();
  }

  setDebug(on) {
    this.#native.setDebug(on);
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
    this.flush();
    const jobs = [];
    for (const job of entry.jobs) {
      job.signal = null;
      if (this.#jobs.get(job.id) === job) jobs.push(job);
    }
    // Withdrawn last first, then settled in order. Jobs of one signal (a map() batch) are
    // queued in the order they came, behind the running ones: a running job cancelled first
    // could free its slot (its worker answers the cancel at once) for a job about to be
    // withdrawn, which would then start.
    for (let i = jobs.length - 1; i >= 0; i--) {
      this.#jobs.take(jobs[i].id);
      this.#native.cancel(jobs[i].id);
    }
    const errors = [];
    for (const job of jobs) {
      this.#abortedCount++;
      if (this.#observer !== null) this.#observer.outcome(job.name, ABORTED);
      try {
        this.settle(job, abortError(signal), undefined);
      } catch (e) {
        errors.push(e);
      }
    }
    this.#updateRef();
    if (this.#queueHook !== null) this.#queueChanged();
    rethrowLater(errors);
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
        this.#bins = null;
        this.#binAt = 0;
      }
      for (; i < recs.length; i += 3) {
        try {
          this.#record(recs[i], recs[i + 1], recs[i + 2]);
        } catch (e) {
          // A throwing callback or listener must not strand the rest of the batch.
          errors.push(e);
        }
        // A saturated pool can hand over thousands of results at once: handle them in
        // slices, so timers and I/O of the host get their turn in between.
        if (i % (3 * CHECK_EVERY) === 3 * CHECK_EVERY - 3 && i + 3 < recs.length &&
            performance.now() > deadline) {
          this.#stash = recs;
          this.#stashAt = i + 3;
          if (!this.#resumeQueued) {
            this.#resumeQueued = true;
            setImmediate(this.#resumeTask);
          }
          break outer;
        }
      }
      recs = null;
    }
    this.#updateRef();
    if (this.#queueHook !== null) this.#queueChanged();
    rethrowLater(errors);
  }

  #record(kind, id, value) {
    switch (kind) {
      case KIND.RESULT: {
        const job = this.#jobs.take(id);
        if (job !== undefined) {
          if (job.name !== null && this.#observer !== null) this.#observer.outcome(job.name, OK);
          this.settle(job, null, value);
        }
        break;
      }
      case KIND.RESULT_BIN: {
        // [n, v]: v refers to the next n attachments of the batch.
        if (this.#bins === null) this.#bins = this.#native.takeBins();
        const at = this.#binAt;
        const n = value[0];
        this.#binAt = at + n;
        const job = this.#jobs.take(id);
        if (job === undefined) break;
        const bins = new Array(n);
        for (let j = 0; j < n; j++) bins[j] = this.#bins[at + j] ?? Buffer.alloc(0);
        let result = revive(value[1], bins);
        if (this.#advanced) {
          try {
            result = v8.deserialize(result);
          } catch (e) {
            this.#failed(job, new PoolError(codes.UNSERIALIZABLE_RESULT,
              `the worker's result cannot be deserialized (${e.message})`));
            break;
          }
        }
        if (job.name !== null && this.#observer !== null) this.#observer.outcome(job.name, OK);
        this.settle(job, null, result);
        break;
      }
      case KIND.VOID: {
        const job = this.#jobs.take(id);
        if (job !== undefined) {
          if (job.name !== null && this.#observer !== null) this.#observer.outcome(job.name, OK);
          this.settle(job, null, undefined);
        }
        break;
      }
      case KIND.JOB_ERROR: {
        const job = this.#jobs.take(id);
        if (job !== undefined) this.#failed(job, rebuildError(value));
        break;
      }
      case KIND.FAILED: {
        const job = this.#jobs.take(id);
        if (job !== undefined) {
          this.#failed(job, this.#hooks.failure(value));
          if (this.#hooks.failed !== undefined) {
            this.#scope.runInAsyncScope(this.#hooks.failed, this.#hooks, value, job);
          }
        }
        break;
      }
      case KIND.SENT: {
        const job = this.#jobs.get(id);
        if (job !== undefined && job.trace !== null) {
          job.trace.pid = value[0];
          job.trace.waitMs = value[1] * 1000;
        }
        break;
      }
      case KIND.RAN: {
        const job = this.#jobs.get(id);
        if (job !== undefined && job.trace !== null) job.trace.runMs = value * 1000;
        break;
      }
      case KIND.PROGRESS: {
        const job = this.#jobs.get(id);
        if (job !== undefined && job.onProgress !== undefined) {
          job.runInAsyncScope(job.onProgress, undefined, value);
        }
        break;
      }
      default:
        if (kind === KIND.ALL_EXITED) {
          this.#exited = true;
          // Nothing wakes a pool that is done: the native side lets go of the drain callback,
          // which would otherwise keep this session (and its facade) alive for ever. Not from
          // inside the callback that is delivering this record.
          setImmediate(releaseNative, this.#native);
        }
        this.#scope.runInAsyncScope(this.#hooks.record, this.#hooks, kind, id, value);
        break;
    }
  }

  #failed(job, err) {
    if (this.#observer !== null) this.#observer.failed(job.name, err);
    this.settle(job, err, undefined);
  }

  // Node stays alive while a job is unsettled or a shutdown is under way.
  #updateRef() {
    const want = this.#jobs.size > 0 || this.#batch.length > 0 || this.#held > 0 ||
      (this.#closing && !this.#exited);
    if (want !== this.#refed) this.#setRef(want);
  }

  #setRef(on) {
    this.#refed = on;
    this.#native.setRef(on);
  }
}

// The JSON text of a function name; the few names a program uses are kept, process-wide. The
// cache is bounded in bytes, not only in names: it keeps at most NAME_CACHE_SIZE names of at
// most NAME_CACHE_LONGEST UTF-16 units each (under 1.1 MiB of strings in all, names and texts,
// however long the names a program makes up); a longer name is converted on each call.
const NAME_CACHE_SIZE = 1024;
const NAME_CACHE_LONGEST = 128;
const nameTexts = new Map();
function nameJson(name) {
  let text = nameTexts.get(name);
  if (text === undefined) {
    text = JSON.stringify(name);
    if (name.length <= NAME_CACHE_LONGEST && nameTexts.size < NAME_CACHE_SIZE) {
      nameTexts.set(name, text);
    }
  }
  return text;
}

function releaseNative(native) {
  native.release();
}

// Errors of callbacks and listeners, thrown again on their own ticks (as uncaught exceptions),
// once the batch they came up in is handled.
function rethrowLater(errors) {
  for (let i = 0; i < errors.length; i++) process.nextTick(rethrow, errors[i]);
}

function rethrow(e) {
  throw e;
}

module.exports = { Session, Job, ScopedJob, DRAIN_SLICE_MS };
