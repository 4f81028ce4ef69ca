'use strict';
// Errors of the JS layer: Pool's codes and PoolError, a worker's error rebuilt, the builders of
// argument, option and abort errors, and the decoding of the engine's failure reasons (one
// decoder; Pool renders a failure as a PoolError, ComputeCluster as compute-cluster's string).

const { REJECT } = require('./native');

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
  // A job's result (or error) is too large to become a JavaScript string.
  RESULT_TOO_LARGE: 'ERR_RESULT_TOO_LARGE',
  // A bug inside comrade's native code (a Rust panic), caught at the binding: never a crash.
  INTERNAL: 'ERR_INTERNAL',
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
// worker's stack and every other property. `e` is parsed JSON from a worker that may be
// hostile, so this never throws: the message becomes text without calling anything of `e`,
// and own properties are defined (never assigned), except `__proto__` (it would replace the
// error's prototype), `constructor`, `toString` and `valueOf` (they would make `String(err)`
// throw, or lie about the error's class).
const SKIPPED_KEYS = new Set([
  'name', 'message', 'stack', '__proto__', 'constructor', 'toString', 'valueOf',
]);

function rebuildError(e, depth = 0) {
  if (e === null || typeof e !== 'object') {
    return new PoolError(codes.WORKER_EXITED,
      `worker sent a malformed error: ${safeText(e)}`);
  }
  const name = typeof e.name === 'string' ? e.name : 'Error';
  const Ctor = Object.hasOwn(BUILTIN_ERRORS, name) ? BUILTIN_ERRORS[name] : Error;
  const err = new Ctor(typeof e.message === 'string' ? e.message : safeText(e.message));
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
    if (SKIPPED_KEYS.has(key)) continue;
    const v = e[key];
    Object.defineProperty(err, key, {
      value: key === 'cause' && depth < 4 && v !== null && typeof v === 'object' &&
        typeof v.message === 'string'
        ? rebuildError(v, depth + 1)
        : v,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return err;
}

// A value from a worker's JSON as text, without calling any of its methods.
function safeText(v) {
  if (typeof v === 'string') return v;
  if (v === null || typeof v !== 'object') return String(v);
  try {
    return JSON.stringify(v);
  } catch {
    return Object.prototype.toString.call(v);
  }
}

// A wrong Pool option (thrown by the constructor).
function optionError(message, Ctor = TypeError) {
  const err = new Ctor(`comrade Pool: ${message}`);
  err.code = codes.INVALID_OPTION;
  return err;
}

// A wrong argument to a Pool method (`cause`: what reading it threw, if anything).
function argumentError(message, cause) {
  const err = new TypeError(`comrade Pool: ${message}`, cause === undefined ? undefined : { cause });
  err.code = codes.INVALID_ARGUMENT;
  return err;
}

function unserializableError(detail) {
  const err = new TypeError(`comrade Pool: the arguments cannot be serialized (${detail})`);
  err.code = codes.UNSERIALIZABLE;
  return err;
}

// An AbortError as Node's own APIs raise it.
function abortError(signal) {
  const err = new Error('the job was aborted', { cause: signal.reason });
  err.name = 'AbortError';
  err.code = codes.ABORTED;
  return err;
}

// The native call that was to hand a job to the engine threw `cause`: the job never ran.
function submitError(cause) {
  const why = cause instanceof Error ? cause.message : safeText(cause);
  return new PoolError(codes.INTERNAL, `the job could not be handed to the engine: ${why}`,
    { cause });
}

function closedError() {
  return new PoolError(codes.POOL_CLOSED, 'the pool is closed: no new jobs are accepted');
}

// A job the engine refused at submission: `reason` and `value` of a rejection triple.
function rejectionError(reason, value) {
  if (reason === REJECT.BACKLOG) {
    return new PoolError(codes.BACKLOG_FULL,
      `the backlog is full (${value} jobs waiting): job refused`, { maxBacklog: value });
  }
  if (reason === REJECT.DURATION) {
    const ms = Math.round(value * 1000);
    return new PoolError(codes.EXPECTED_WAIT,
      `the job would take about ${ms} ms to complete, more than maxExpectedWait: job refused`,
      { expectedWait: ms });
  }
  return closedError();
}

// The engine's FAILED record value, decoded: `{ reason, pid, code, signal, error, message,
// ended, value }`. `reason` is one of 'closed' (the pool shut down before the job ran), 'exit'
// (its worker died while it ran), 'startup' (the worker failed before it was ready), 'spawn'
// (no worker could be started), 'timeout' (it ran past its timeout; its worker was killed),
// 'too_large' (its result, `bytes` long as JSON, is longer than `limit`, the most a JavaScript
// string holds), or 'unknown' for anything else (then only `value`, the record itself, means
// something).
const REASONS = new Set(['closed', 'exit', 'startup', 'spawn', 'timeout', 'too_large']);
function decodeFailure(v) {
  return {
    reason: REASONS.has(v.reason) ? v.reason : 'unknown',
    pid: v.pid,
    code: v.code,
    signal: v.signal,
    error: v.error,
    message: v.message,
    bytes: v.bytes,
    limit: v.limit,
    // How the worker ended, as a phrase.
    ended: v.signal ? `was killed by ${v.signal}` : `exited with code ${v.code}`,
    value: v,
  };
}

// Renders a FAILED record with `table` (a renderer per reason, plus `unknown`), passing `ctx`.
function renderFailure(v, table, ctx) {
  const f = decodeFailure(v);
  const render = Object.hasOwn(table, f.reason) ? table[f.reason] : table.unknown;
  return render(f, ctx);
}

// Pool's renderers: PoolErrors. ctx: { terminated, protocolErrors: Map pid -> message }.
const POOL_FAILURES = {
  closed: (f, ctx) => (ctx.terminated
    ? new PoolError(codes.POOL_TERMINATED, 'the pool was terminated before this job ran')
    : new PoolError(codes.POOL_CLOSED, 'the pool closed before this job ran')),
  exit(f, ctx) {
    const props = { pid: f.pid, exitCode: f.code, signal: f.signal };
    if (ctx.terminated) {
      return new PoolError(codes.POOL_TERMINATED,
        `the pool was terminated while this job ran (worker ${f.pid} ${f.ended})`, props);
    }
    const pe = ctx.protocolErrors.get(f.pid);
    const why = pe ? ` after breaking the protocol (${pe})` : '';
    return new PoolError(codes.WORKER_EXITED,
      `worker ${f.pid} ${f.ended}${why} while running this job`, props);
  },
  startup(f) {
    const props = { pid: f.pid, exitCode: f.code, signal: f.signal };
    if (f.error !== null && f.error !== undefined) {
      props.cause = rebuildError(f.error);
      return new PoolError(codes.WORKER_INIT_FAILED,
        `worker ${f.pid} failed to start: ${props.cause.message}`, props);
    }
    return new PoolError(codes.WORKER_INIT_FAILED,
      `worker ${f.pid} exited with code ${f.code} before it was ready`, props);
  },
  spawn: (f) => new PoolError(codes.SPAWN_FAILED, f.message),
  timeout: (f) => new PoolError(codes.JOB_TIMEOUT,
    `the job ran longer than its timeout; worker ${f.pid} was killed and is replaced`,
    { pid: f.pid }),
  too_large: (f) => new PoolError(codes.RESULT_TOO_LARGE,
    `the job's result is ${f.bytes} bytes of JSON, more than a JavaScript string can hold ` +
    `(${f.limit}): the job failed, its worker goes on`, { bytes: f.bytes, limit: f.limit }),
  unknown: (f) => new PoolError(codes.WORKER_EXITED, `job failed: ${JSON.stringify(f.value)}`),
};

// compute-cluster's strings. A compute-cluster pool has no start-up handshake and no job
// timeout, so those reasons (never seen there) read as unknown ones.
const COMPUTE_CLUSTER_FAILURES = {
  closed: () => 'cannot run work: compute cluster exited',
  exit: (f) => `compute process (${f.pid}) dies with code: ${f.code}`,
  spawn: (f) => `cannot run work: ${f.message}`,
  too_large: (f) => `cannot run work: the result is ${f.bytes} bytes of JSON, more than a ` +
    `JavaScript string can hold (${f.limit})`,
  unknown: (f) => `cannot run work: ${JSON.stringify(f.value)}`,
};

module.exports = {
  codes,
  PoolError,
  rebuildError,
  optionError,
  argumentError,
  unserializableError,
  abortError,
  closedError,
  submitError,
  rejectionError,
  decodeFailure,
  renderFailure,
  POOL_FAILURES,
  COMPUTE_CLUSTER_FAILURES,
};
