'use strict';
// Batches (issue 10, item 6): pool.map(items, options) and pool.mapSettled(items, options), the
// work groups of proletariat (`onResult` is its `workIndividual`).
//
// Items are pulled from any iterable or async iterable through a window: at most `window` items
// are accepted and unsettled at once (queued, or on a worker), and the next one is pulled when
// one settles. So a 10-million-item generator never holds more than `window` jobs, and the
// results of `map` are the only thing that grows (`collect: false` keeps none).
//
// Each item is an ordinary job of the pool (an ItemJob: its resolve/reject are shared
// functions, no closure per item), with the batch's per-job options, and the batch's own
// AbortSignal: on the first error (map), on the caller's signal, or when onResult/onProgress
// throws, that signal aborts, which withdraws every queued item and cancels every running one,
// as any AbortSignal does (each settles once, with an AbortError nobody sees), and the batch
// rejects at once. The iterator is closed (its return()).
//
// A batch with a `finishBy` (issue 10, item 10) tells the engine its deadline and how many of
// its items are not settled yet, and its items carry the batch's id: the scheduler grows the
// pool past maxWorkers (up to burstWorkers) while the batch's run times say it would finish
// late, and, with `speculate`, starts stragglers again near the deadline. The count is the
// total less the settled items when the size is known (an array, typed array, Set or Map, or
// once the iterator is exhausted); otherwise only the items pulled and not settled (at most
// `window`): the items a generator has not produced yet cannot be counted.

const { AsyncResource } = require('node:async_hooks');
const { isDate } = require('node:util').types;
const { Job } = require('./session');
const { OPTION_FIELDS } = require('./coalesce');
const { argumentError, abortError } = require('./errors');

// The default window, in slots (maxWorkers × concurrency): enough for every worker to hold its
// next jobs while results travel back, small enough to bound memory.
const WINDOW_SLOTS = 4;
const MAX_WINDOW = 2 ** 24;

class ItemJob extends Job {
  constructor(batch, index) {
    super(itemResolve, itemReject, null, undefined);
    this.batch = batch;
    this.index = index;
  }
}

// Called as job.resolve(value) / job.reject(err) by the session: `this` is the ItemJob.
function itemResolve(value) {
  this.batch.settled(this.index, null, value);
}
function itemReject(err) {
  this.batch.settled(this.index, err, undefined);
}

class Batch {
  constructor(host, what, settledMode, read, resolve, reject) {
    this.host = host;
    this.what = what;
    this.settledMode = settledMode;
    this.resolve = resolve;
    this.reject = reject;
    this.template = read.template;
    this.name = read.name;
    this.key = read.key;
    this.keyFn = read.keyFn;
    this.window = read.window;
    this.collect = read.collect;
    this.onResult = read.onResult;
    this.onProgress = read.onProgress;
    this.signal = read.signal;
    this.signalListener = null;
    this.scope = read.onResult !== undefined || read.onProgress !== undefined
      ? new AsyncResource('comrade.Batch') : null;
    this.controller = new AbortController();
    this.results = read.collect ? [] : null;
    this.iterator = null;
    this.isAsync = false;
    this.pulling = false;
    this.exhausted = false;
    this.finished = false;
    this.next = 0; // items pulled
    this.inFlight = 0;
    this.done = 0;
    this.failed = 0;
    this.total = null;
    this.reported = null; // the total of the last onProgress report
    this.settling = false; // in settled(), which reports after pulling
    this.finishBy = read.finishBy; // epoch ms, or null
    this.speculate = read.speculate;
    // The engine's id of this batch's deadline (0: none; the pool cannot grow and nothing is
    // speculated, or no finishBy).
    this.burstId = read.finishBy !== null && (host.bursting || read.speculate) ? host.burstId() : 0;
    this.burstQueued = false;
  }

  start(items) {
    let iterator;
    try {
      if (items !== null && items !== undefined && typeof items[Symbol.asyncIterator] === 'function') {
        iterator = items[Symbol.asyncIterator]();
        this.isAsync = true;
      } else if (items !== null && items !== undefined && typeof items[Symbol.iterator] === 'function') {
        iterator = items[Symbol.iterator]();
        // What is known up front: an array's (or typed array's) length, a Set's or Map's size.
        if (Array.isArray(items) || ArrayBuffer.isView(items)) this.total = items.length;
        else if (items instanceof Set || items instanceof Map) this.total = items.size;
      } else {
        this.fail(argumentError(`${this.what}(items, options): items must be an iterable or an async iterable`));
        return;
      }
    } catch (e) {
      this.fail(e);
      return;
    }
    if (iterator === null || typeof iterator !== 'object' || typeof iterator.next !== 'function') {
      this.fail(argumentError(`${this.what}(items, options): items' iterator has no next()`));
      return;
    }
    this.iterator = iterator;
    if (this.signal !== null) {
      const signal = this.signal;
      this.signalListener = () => this.stop(abortError(signal));
      signal.addEventListener('abort', this.signalListener, { once: true });
    }
    this.pump();
    if (this.burstId !== 0 && !this.finished) this.tellDeadline();
  }

  // The engine learns the deadline and the items not settled (see the top of this file).
  tellDeadline() {
    this.burstQueued = false;
    if (this.finished) return;
    const remaining = this.total !== null ? this.total - this.done : this.inFlight;
    this.host.setBurst(this.burstId, this.finishBy, remaining, this.speculate);
  }

  // Pulls items while the window has room.
  pump() {
    if (this.isAsync) {
      if (!this.pulling && !this.exhausted && !this.finished && this.inFlight < this.window) {
        this.pulling = true;
        let step;
        try {
          step = Promise.resolve(this.iterator.next());
        } catch (e) {
          this.pulling = false;
          this.stop(e);
          return;
        }
        step.then((r) => this.pulled(r), (e) => {
          this.pulling = false;
          this.stop(e);
        });
      }
      this.maybeFinish();
      return;
    }
    while (!this.exhausted && !this.finished && this.inFlight < this.window) {
      let r;
      try {
        r = this.iterator.next();
      } catch (e) {
        this.stop(e);
        return;
      }
      if (!this.take(r)) break;
    }
    this.maybeFinish();
  }

  // An async iterator's step arrived.
  pulled(r) {
    this.pulling = false;
    if (this.finished) return;
    if (this.take(r)) this.pump();
    this.maybeFinish();
  }

  // One step of the iterator: submits its item. False when the batch cannot go on.
  take(r) {
    if (r === null || typeof r !== 'object') {
      this.stop(new TypeError(`${this.what}(): the iterator's result ${String(r)} is not an object`));
      return false;
    }
    if (r.done) {
      this.exhausted = true;
      this.total = this.next;
      return false;
    }
    const item = r.value;
    const index = this.next++;
    const job = new ItemJob(this, index);
    const template = this.template;
    for (let i = 0; i < OPTION_FIELDS.length; i++) job[OPTION_FIELDS[i]] = template[OPTION_FIELDS[i]];
    job.signal = this.controller.signal;
    if (this.burstId !== 0) job.burst = this.burstId;
    this.inFlight++;
    let key = this.key;
    if (this.keyFn !== null) {
      try {
        key = this.keyFn(item, index);
      } catch (e) {
        this.stop(e);
        return false;
      }
      if (key !== undefined && (typeof key !== 'string' || key.length === 0)) {
        this.stop(argumentError(`${this.what}(): options.key(item, index) must return a non-empty string (or undefined), got ${typeof key === 'string' ? '""' : typeof key}`));
        return false;
      }
      if (key === undefined) key = null;
    }
    this.host.submit(this.name, item, job, key);
    return true;
  }

  // Item `index` settled (exactly once, by the session or the coalescer).
  settled(index, err, value) {
    this.inFlight--;
    if (this.finished) return;
    this.done++;
    if (err !== null) this.failed++;
    if (this.burstId !== 0 && !this.burstQueued) {
      // Once per tick, however many items settled in it.
      this.burstQueued = true;
      queueMicrotask(() => this.tellDeadline());
    }
    if (this.results !== null) {
      if (this.settledMode) {
        this.results[index] = err === null
          ? { status: 'fulfilled', value }
          : { status: 'rejected', reason: err };
      } else if (err === null) {
        this.results[index] = value;
      }
    }
    try {
      if (this.onResult !== undefined) {
        this.scope.runInAsyncScope(this.onResult, undefined, err, value, index);
      }
      if (err === null || this.settledMode) {
        // Pulled before the report, so that a sync iterable's last report knows the total.
        this.settling = true;
        this.pump();
        this.settling = false;
        if (this.onProgress !== undefined) this.report();
        return;
      }
    } catch (e) {
      this.settling = false;
      this.callbackThrew(e);
      return;
    }
    this.stop(err);
  }

  report() {
    this.reported = this.total;
    this.scope.runInAsyncScope(this.onProgress, undefined,
      { done: this.done, failed: this.failed, total: this.total });
  }

  maybeFinish() {
    if (this.finished || !this.exhausted || this.inFlight > 0) return;
    // An async iterable says it is exhausted only after its last item may have been reported:
    // the last report always has the total.
    if (this.onProgress !== undefined && !this.settling && this.done > 0 && this.reported === null) {
      try {
        this.report();
      } catch (e) {
        this.stop(e);
        return;
      }
    }
    this.finished = true;
    this.release();
    this.resolve(this.results !== null
      ? this.results
      : { done: this.done, failed: this.failed, total: this.total });
  }

  // The batch ends with `err`: the items not settled are withdrawn (queued) or cancelled
  // (running), the iterator is closed, and the batch rejects.
  stop(err) {
    if (this.finished) return;
    this.finished = true;
    this.release();
    this.controller.abort();
    const iterator = this.iterator;
    if (iterator !== null && !this.exhausted && typeof iterator.return === 'function') {
      try {
        const r = iterator.return();
        if (this.isAsync) Promise.resolve(r).catch(ignore);
      } catch {
        // The batch already fails with `err`.
      }
    }
    this.reject(err);
  }

  // onResult or onProgress threw: the batch fails with it, or, when it has just resolved (the
  // last report), the error is thrown on its own tick, as an uncaught exception.
  callbackThrew(e) {
    if (this.finished) process.nextTick(rethrow, e);
    else this.stop(e);
  }

  fail(err) {
    this.finished = true;
    this.release();
    this.reject(err);
  }

  release() {
    if (this.burstId !== 0) {
      this.host.endBurst(this.burstId);
      this.burstId = 0;
    }
    if (this.signalListener !== null) {
      this.signal.removeEventListener('abort', this.signalListener);
      this.signalListener = null;
    }
  }
}

function ignore() {}

function rethrow(e) {
  throw e;
}

// Reads a batch's own options (the per-job ones are read by `readJob`, the pool's reader).
// Returns what Batch takes, or an Error.
function readBatchOptions(options, what, slots, readJob) {
  if (options === undefined) options = {};
  if (options === null || typeof options !== 'object') {
    return argumentError(`${what}(items, options): options must be an object`);
  }
  const {
    window, collect, onResult, onProgress, key, finishBy, speculate,
  } = options;
  if (window !== undefined && (!Number.isInteger(window) || window < 1 || window > MAX_WINDOW)) {
    return argumentError(`${what}(): options.window must be an integer from 1 to ${MAX_WINDOW}`);
  }
  if (collect !== undefined && typeof collect !== 'boolean') {
    return argumentError(`${what}(): options.collect must be a boolean`);
  }
  if (onResult !== undefined && typeof onResult !== 'function') {
    return argumentError(`${what}(): options.onResult must be a function`);
  }
  if (onProgress !== undefined && typeof onProgress !== 'function') {
    return argumentError(`${what}(): options.onProgress must be a function`);
  }
  let deadline = null;
  if (finishBy !== undefined) {
    deadline = isDate(finishBy) ? finishBy.getTime() : finishBy;
    if (typeof deadline !== 'number' || !Number.isFinite(deadline)) {
      return argumentError(`${what}(): options.finishBy must be a time: milliseconds since the epoch, or a valid Date`);
    }
    const now = Date.now();
    if (deadline <= now) {
      return argumentError(`${what}(): options.finishBy (${new Date(deadline).toISOString()}) is not in the future (now ${new Date(now).toISOString()})`);
    }
  }
  if (speculate !== undefined && typeof speculate !== 'boolean') {
    return argumentError(`${what}(): options.speculate must be a boolean`);
  }
  if (speculate === true && deadline === null) {
    return argumentError(`${what}(): options.speculate needs options.finishBy (stragglers are started again near it)`);
  }
  // The per-job options (name, signal, timeout, retries, priority, a string key, ...).
  const keyFn = typeof key === 'function' ? key : null;
  const job = readJob(keyFn === null ? options : { ...options, key: undefined });
  if (job instanceof Error) return job;
  const signal = job.template.signal;
  job.template.signal = null;
  return {
    template: job.template,
    name: job.name,
    key: job.key,
    keyFn,
    window: window ?? Math.min(MAX_WINDOW, WINDOW_SLOTS * slots),
    collect: collect ?? true,
    onResult,
    onProgress,
    signal,
    finishBy: deadline,
    speculate: speculate ?? false,
  };
}

/**
 * Runs a batch: `host` is { slots, readJob(options) -> { template, name, key } | Error,
 * submit(name, item, job, key) }. Returns the batch's Promise; never throws.
 */
function runBatch(host, items, options, what, settledMode) {
  return new Promise((resolve, reject) => {
    let read;
    try {
      read = readBatchOptions(options, what, host.slots, host.readJob);
    } catch (e) {
      read = argumentError(`${what}(items, options): options cannot be read`, e);
    }
    if (read instanceof Error) {
      reject(read);
      return;
    }
    if (read.signal !== null && read.signal.aborted) {
      reject(abortError(read.signal));
      return;
    }
    new Batch(host, what, settledMode, read, resolve, reject).start(items);
  });
}

module.exports = { runBatch, WINDOW_SLOTS };
