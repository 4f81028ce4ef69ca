'use strict';
// Coalescing by `key` (issue 10, item 5; proletariat's HOLDSIMILARWORK / `_key`). While a job
// with the same function name and key is queued or running, a new one does not run: it joins
// that job (the shared job) and settles with its outcome, its own copy of the value (a fresh
// decode of the JSON), or an Error of the same shape (same class, message, stack and own
// properties, copied).
//
// Why here, in JS, and not in the Rust scheduler: what is shared is a settlement, fanned out to
// callers that each have their own Promise, AbortSignal and copy of the value, and those live
// in JS (lib/session.js Job objects). The engine sees one ordinary job, the carrier, whose
// resolve/reject fan out; it needs no notion of keys, and a job without a key never comes here,
// so run() without options pays nothing for this.
//
// Rules:
// - The shared job runs with the options of the caller that started it (timeout, retries,
//   priority, ...): its retries apply once, to the shared job, and its timeout is the shared
//   job's run timeout. A caller that joins later leaves these as they are.
// - A caller detaches alone: when its signal aborts (AbortError), when its `totalTimeout` (its
//   own, or the pool's) passes from its call (ERR_TOTAL_TIMEOUT), or, for a caller that joined,
//   when its own `timeout` passes from the moment it joined (ERR_JOB_TIMEOUT). The shared job
//   is cancelled (withdrawn, or cancelled on its worker as with an AbortSignal) only when
//   every caller has gone. So the shared job itself has no total deadline: each caller has
//   its own.
// - The group leaves the map before any caller is settled: a call made while the outcome fans
//   out (from a callback, or any later tick) starts a new job. Every caller settles once.

const { codes, PoolError, abortError } = require('./errors');
const { Job, ScopedJob } = require('./session');

// The per-job options a Job carries (retries, timeout, priority, ...): its fields other than
// these. The carrier takes the first caller's.
const NOT_OPTIONS = new Set(['resolve', 'reject', 'cb', 'onProgress', 'id', 'signal']);
const OPTION_FIELDS = Object.keys(new Job(null, null, null, undefined))
  .filter((field) => !NOT_OPTIONS.has(field));

class Coalescer {
  #groups = new Map(); // group key -> Group
  #submit; // (name, task, args, job): the pool's submission of a carrier
  #settle; // (job, err, value): the session's settlement of a caller

  /** Callers that joined a shared job since the start (stats().coalesced). */
  joined = 0;
  /** Callers waiting for a shared job, beyond one per shared job (pool.pending). */
  extra = 0;
  /** Callers that left a shared job on their own: by their signal, by their timeout. */
  aborted = 0;
  timedOut = 0;
  /** Callers that left by their totalTimeout (stats().totalTimedOut). */
  totalTimedOut = 0;
  /** Carriers cancelled because every caller had gone (not callers' outcomes). */
  cancelled = 0;

  #totalTimeout; // the pool's totalTimeout in ms (0: none)
  #onTotalTimeout; // (name): a caller of function `name` left by its totalTimeout

  constructor(submit, settle, totalTimeout = 0, onTotalTimeout = () => {}) {
    this.#submit = submit;
    this.#settle = settle;
    this.#totalTimeout = totalTimeout;
    this.#onTotalTimeout = onTotalTimeout;
  }

  /** Shared jobs running or queued. */
  get size() {
    return this.#groups.size;
  }

  /** Runs `job` (a caller) as the job of `name` and `key`, or joins the one under way. */
  add(name, task, args, job, key) {
    const groupKey = (name === null ? 'null' : JSON.stringify(name)) + key;
    const group = this.#groups.get(groupKey);
    if (group !== undefined) {
      this.joined++;
      this.extra++;
      this.#attach(group, job, true);
      return;
    }
    const created = new Group(this, groupKey, name);
    const carrier = new Carrier(created);
    for (const field of OPTION_FIELDS) carrier[field] = job[field];
    carrier.signal = created.controller.signal;
    carrier.totalTimeout = 0; // none: each caller has its own (see #attach)
    this.#groups.set(groupKey, created);
    this.#attach(created, job, false);
    this.#submit(name, task, args, carrier);
  }

  #attach(group, job, joining) {
    const signal = job.signal;
    // The caller's signal is watched here, not by the session: the caller itself is never
    // handed to the engine.
    job.signal = null;
    let entry = null;
    const total = job.totalTimeout ?? this.#totalTimeout;
    if (signal !== null || total > 0 || (joining && job.timeout !== undefined && job.timeout > 0)) {
      entry = { signal, listener: null, timer: null, totalTimer: null };
      if (signal !== null) {
        entry.listener = () => this.#detach(group, job, abortError(signal), false);
        signal.addEventListener('abort', entry.listener, { once: true });
      }
      if (joining && job.timeout !== undefined && job.timeout > 0) {
        const ms = job.timeout;
        entry.timer = setTimeout(() => this.#detach(group, job, new PoolError(codes.JOB_TIMEOUT,
          `the job waited longer than its timeout (${ms} ms) for the shared job of its key; ` +
          'the shared job goes on for its other callers'), true), ms);
      }
      if (total > 0) {
        entry.totalTimer = setTimeout(() => {
          if (!group.callers.has(job)) return;
          this.totalTimedOut++;
          this.#onTotalTimeout(group.name);
          this.#detach(group, job, new PoolError(codes.TOTAL_TIMEOUT,
            `the job was not settled within its totalTimeout (${total} ms) while it shared the ` +
            'job of its key; the shared job goes on for its other callers', { pid: null }), null);
        }, total);
      }
    }
    group.callers.set(job, entry);
  }

  // One caller leaves (aborted or timed out); the shared job is cancelled with the last one.
  #detach(group, job, err, timedOut) {
    if (!group.callers.has(job)) return;
    const entry = group.callers.get(job);
    group.callers.delete(job);
    release(entry);
    // timedOut: true for its own timeout, false for its signal, null for its totalTimeout
    // (counted by the caller of #detach).
    if (timedOut === true) this.timedOut++;
    else if (timedOut === false) this.aborted++;
    if (group.callers.size === 0) {
      // Out of the map first: a caller arriving from here on starts a new job.
      if (this.#groups.get(group.key) === group) this.#groups.delete(group.key);
      this.cancelled++;
      group.controller.abort();
    } else {
      this.extra--;
    }
    this.#settle(job, err, undefined);
  }

  // The carrier settled: every caller gets the outcome, the first the original, the others
  // their own copies.
  settled(group, err, value) {
    if (this.#groups.get(group.key) === group) this.#groups.delete(group.key);
    const callers = group.callers;
    group.callers = new Map();
    if (callers.size === 0) return;
    this.extra -= callers.size - 1;
    let text = null;
    let first = true;
    let error = null;
    for (const [job, entry] of callers) {
      release(entry);
      try {
        if (err !== null) {
          this.#settle(job, first ? err : cloneError(err), undefined);
        } else {
          if (!first && text === null && value !== undefined) text = JSON.stringify(value);
          this.#settle(job, null, first || value === undefined ? value : JSON.parse(text));
        }
      } catch (e) {
        // A throwing callback must not keep the other callers from their outcome.
        if (error === null) error = e;
      }
      first = false;
    }
    if (error !== null) throw error;
  }

  // Progress of a shared job goes to every caller with an onProgress, each in its context.
  progress(group, value) {
    for (const job of group.callers.keys()) {
      if (job.onProgress !== undefined) job.runInAsyncScope(job.onProgress, undefined, value);
    }
  }
}

class Group {
  constructor(coalescer, key, name) {
    this.coalescer = coalescer;
    this.key = key;
    this.name = name; // the function's name (null: the default function)
    this.callers = new Map(); // caller Job -> { signal, listener, timer, totalTimer } or null
    this.controller = new AbortController();
  }
}

// The job the engine runs for a group. A ScopedJob, made in the first caller's context, so
// that progress reaches the callers (each in its own context, see progress()).
class Carrier extends ScopedJob {
  constructor(group) {
    super(carrierResolve, carrierReject, null, carrierProgress);
    this.shared = group;
  }
}

// Called as carrier.resolve(value) / .reject(err) / .onProgress(value): `this` is the carrier.
function carrierResolve(value) {
  this.shared.coalescer.settled(this.shared, null, value);
}
function carrierReject(err) {
  this.shared.coalescer.settled(this.shared, err, undefined);
}
function carrierProgress(value) {
  this.shared.coalescer.progress(this.shared, value);
}

function release(entry) {
  if (entry === null) return;
  if (entry.listener !== null) entry.signal.removeEventListener('abort', entry.listener);
  if (entry.timer !== null) clearTimeout(entry.timer);
  if (entry.totalTimer !== null) clearTimeout(entry.totalTimer);
}

// An Error of the same shape as `err`: the same prototype (so the same class and name), the
// same message and stack, and a copy of every own property (Errors among them copied the same
// way, other objects structured-cloned). A DOMException (an AbortError) is built anew, its
// internal slots being out of reach of a copy.
function cloneError(err, depth = 0) {
  if (err === null || typeof err !== 'object' || depth > 8) return err;
  let copy;
  if (err instanceof DOMException) {
    copy = new DOMException(err.message, err.name);
  } else {
    try {
      copy = structuredClone(err);
    } catch {
      copy = new Error(String(err.message));
    }
    Object.setPrototypeOf(copy, Object.getPrototypeOf(err));
  }
  for (const key of Reflect.ownKeys(err)) {
    const d = Object.getOwnPropertyDescriptor(err, key);
    if (Object.hasOwn(d, 'value')) d.value = copyValue(d.value, depth);
    try {
      Object.defineProperty(copy, key, d);
    } catch {
      // A property the copy cannot take (never for comrade's own errors) is left out.
    }
  }
  return copy;
}

function copyValue(v, depth) {
  if (v === null || typeof v !== 'object') return v;
  if (v instanceof Error || v instanceof DOMException) return cloneError(v, depth + 1);
  try {
    return structuredClone(v);
  } catch {
    return v;
  }
}

module.exports = { Coalescer, cloneError, OPTION_FIELDS };
