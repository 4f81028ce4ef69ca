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
  // The job waited for a worker longer than its queueTimeout: it never ran.
  QUEUE_TIMEOUT: 'ERR_QUEUE_TIMEOUT',
  // The job was not settled within its totalTimeout: withdrawn, queued or running.
  TOTAL_TIMEOUT: 'ERR_TOTAL_TIMEOUT',
  // The code of an AbortError (a DOMException, not a PoolError), as Node's own AbortErrors.
  ABORTED: 'ABORT_ERR',
  // Raised in the worker: it has no function of that name (or no default function).
  UNKNOWN_FUNCTION: 'ERR_UNKNOWN_FUNCTION',
  // Raised in a Node worker: the function's result cannot be sent as JSON.
  UNSERIALIZABLE_RESULT: 'ERR_UNSERIALIZABLE_RESULT',
  // A job's result (or error) is too large to become a JavaScript string.
  RESULT_TOO_LARGE: 'ERR_RESULT_TOO_LARGE',
  // A bug inside comrade's native code (a Rust panic), caught at the binding: never a crash.
  INTERNAL: 'ERR_INTERNAL',
  // pool.broadcast(): the onMessage handler of at least one worker threw or rejected (the
  // error's `reached` counts every worker that acknowledged; `failures` says who failed, how).
  BROADCAST_FAILED: 'ERR_BROADCAST_FAILED',
  // A queue on Redis (`redis` option, `comrade worker`): Redis could not be reached, refused
  // the credentials, or lost the queue's state. The message never holds the credentials.
  REDIS: 'ERR_REDIS',
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

//
// comrade's own errors raised in a worker become PoolErrors: the codes docs/PROTOCOL.md's
// conventions give every worker (PROTOCOL_CODES), from any worker, and the codes of
// WORKER_POOL_CODES from an error a worker names 'PoolError' (the Node worker does). An error
// sent without a stack keeps none: the stack of this function, in the host, would say nothing
// about it.
const PROTOCOL_CODES = new Set([codes.UNKNOWN_FUNCTION, codes.MESSAGE_TOO_LARGE]);
const WORKER_POOL_CODES = new Set([...PROTOCOL_CODES, codes.UNSERIALIZABLE_RESULT]);

function rebuildError(e, depth = 0) {
  if (e === null || typeof e !== 'object') {
    return new PoolError(codes.WORKER_EXITED,
      `worker sent a malformed error: ${safeText(e)}`);
  }
  const name = typeof e.name === 'string' ? e.name : 'Error';
  const message = typeof e.message === 'string' ? e.message : safeText(e.message);
  let err;
  if (PROTOCOL_CODES.has(e.code) || (name === 'PoolError' && WORKER_POOL_CODES.has(e.code))) {
    err = new PoolError(e.code, message);
  } else {
    const Ctor = Object.hasOwn(BUILTIN_ERRORS, name) ? BUILTIN_ERRORS[name] : Error;
    err = new Ctor(message);
    if (Ctor.name !== name) {
      Object.defineProperty(err, 'name', {
        value: name, enumerable: false, writable: true, configurable: true,
      });
    }
  }
  if (typeof e.stack === 'string') {
    Object.defineProperty(err, 'stack', {
      value: e.stack, enumerable: false, writable: true, configurable: true,
    });
  } else {
    delete err.stack;
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

// A wrong Pool option (thrown by the constructor), or a wrong per-job option.
function optionError(message) {
  return new PoolError(codes.INVALID_OPTION, `comrade Pool: ${message}`);
}

// A wrong argument to a Pool method (`cause`: what reading it threw, if anything).
function argumentError(message, cause) {
  return new PoolError(codes.INVALID_ARGUMENT, `comrade Pool: ${message}`,
    cause === undefined ? undefined : { cause });
}

function unserializableError(detail) {
  return new PoolError(codes.UNSERIALIZABLE,
    `comrade Pool: the arguments cannot be serialized (${detail})`);
}

// An AbortError as the web platform builds it: a DOMException named 'AbortError' (its legacy
// numeric code, 20, shadowed by an own `code` of 'ABORT_ERR', the code of Node's own
// AbortErrors), with the signal's reason as its `cause`.
function abortError(signal) {
  const err = new DOMException('the job was aborted', { name: 'AbortError', cause: signal.reason });
  Object.defineProperty(err, 'code', {
    value: codes.ABORTED, enumerable: false, writable: true, configurable: true,
  });
  return err;
}

// The known option closest to `key` (a typo: 'maxWorker' -> 'maxWorkers'), or null when none
// is close: at most a third of the longer name differs (at least 2 edits allowed), case aside.
function closestName(key, names) {
  let best = null;
  let bestDistance = Infinity;
  const k = key.toLowerCase();
  for (const name of names) {
    const d = editDistance(k, name.toLowerCase());
    if (d < bestDistance) {
      best = name;
      bestDistance = d;
    }
  }
  const allowed = Math.max(2, Math.ceil(Math.max(key.length, best ? best.length : 0) / 3));
  return bestDistance <= allowed ? best : null;
}

// Levenshtein distance (names are short).
function editDistance(a, b) {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length];
}

// `what` (e.g. 'option', 'run() option') named `key` is not one of `names`: ERR_INVALID_OPTION,
// naming the closest known one, or listing them all when none is close.
function unknownOptionError(what, key, names) {
  const near = closestName(key, names);
  return optionError(`unknown ${what} ${JSON.stringify(key)} ` + (near !== null
    ? `(did you mean ${near}?)`
    : `(known: ${names.join(', ')})`));
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
// 'queue_timeout' (it waited `waitedMs` for a worker, past its queue timeout), 'total_timeout'
// (its total timeout passed while it waited, `pid` null, or ran on worker `pid`),
// 'too_large' (its result, `bytes` long as JSON, is longer than `limit`, the most a JavaScript
// string holds), or 'unknown' for anything else (then only `value`, the record itself, means
// something).
const REASONS = new Set([
  'closed', 'exit', 'startup', 'spawn', 'timeout', 'too_large', 'queue_timeout', 'total_timeout',
]);
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
    waitedMs: v.waited_ms,
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
  queue_timeout: (f) => new PoolError(codes.QUEUE_TIMEOUT,
    `the job waited ${f.waitedMs} ms for a worker, longer than its queueTimeout: it never ran`,
    { waitedMs: f.waitedMs }),
  total_timeout: (f) => new PoolError(codes.TOTAL_TIMEOUT, f.pid === null || f.pid === undefined
    ? 'the job\'s totalTimeout passed while it waited for a worker: it never ran'
    : `the job's totalTimeout passed while it ran on worker ${f.pid}: it was cancelled there ` +
      '(a worker that does not stop it within cancelGraceMs is killed and replaced)',
  { pid: f.pid ?? null }),
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
  unknownOptionError,
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
