'use strict';
// Pool's options: one row per option, validated in one place.
//
// A row is `{ name, type, range, default }`, plus `unlimited` (what Infinity stands for, when
// Infinity means "no limit": always null, as is the default of a limit that is off) and `floor` (round down). `range` is [min, max]; a min or max may name an
// option resolved before (minWorkers is at most maxWorkers); `exclusive` makes min itself out
// of range. A default may be a function (computed when the option is absent). The type says
// what is checked and how a wrong value is reported (the messages are part of the API). Rows
// are validated in order; a type also sees the options resolved before its row.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { fileURLToPath } = require('node:url');
const { DEFAULTS, workerExecArgv } = require('./native');
const { optionError, unknownOptionError, argumentError } = require('./errors');

const MAX_U32 = 0xffffffff;
const MAX_SAFE = Number.MAX_SAFE_INTEGER;
// Every span (an `ms` row, a job's timeout) is at most this many ms when finite: 2^32 - 1,
// about 49.7 days. A longer one is refused, never clamped; Infinity keeps its meaning where a
// row takes it. (1e22 ms used to reach the engine and abort the process.)
const MAX_DURATION_MS = DEFAULTS.maxDurationMs;

function cpus() {
  return os.availableParallelism ? os.availableParallelism() : os.cpus().length;
}

const OPTIONS = Object.freeze([
  { name: 'maxWorkers', type: 'int', range: [1, 1024], default: () => Math.ceil(cpus() * 1.25) },
  { name: 'concurrency', type: 'int', range: [1, 65536], default: 1 },
  // Most workers while a map() with a finishBy runs behind; maxWorkers (the default): no growth.
  { name: 'burstWorkers', type: 'int', range: ['maxWorkers', 1024], default: (resolved) => resolved.maxWorkers },
  { name: 'minWorkers', type: 'count', range: [0, 'maxWorkers'], default: 0 },
  // AnyEvent::Fork::Pool's defaults: grow by one worker per 0.1 s, stop a worker idle 10 s.
  { name: 'spawnDelay', type: 'ms', range: [0, Infinity], default: 100 },
  // idleTimeout 0 also means never (AnyEvent's convention); pool.js passes it on as none.
  { name: 'idleTimeout', type: 'ms', range: [0, Infinity], default: 10000, unlimited: null },
  { name: 'maxJobsPerWorker', type: 'int', range: [1, MAX_SAFE], default: null, unlimited: null },
  { name: 'maxRss', type: 'int', range: [1, MAX_SAFE], default: null },
  { name: 'retries', type: 'count', range: [0, 1000], default: 0 },
  { name: 'timeout', type: 'ms', range: [0, Infinity], exclusive: true, default: null, unlimited: null },
  // The longest a job waits for a worker (proletariat's EATO), and the longest from the call
  // to its settlement (ECSTO), when run()/exec() give none; null: no limit.
  { name: 'queueTimeout', type: 'ms', range: [0, Infinity], exclusive: true, default: null, unlimited: null },
  { name: 'totalTimeout', type: 'ms', range: [0, Infinity], exclusive: true, default: null, unlimited: null },
  // A job's priority when run()/exec() give none: higher runs sooner, equal ones in order.
  { name: 'priority', type: 'finite', default: 0 },
  // Guaranteed slots per priority range ({ from: slots }), proletariat's semantics; null: none.
  { name: 'prioritySlots', type: 'prioritySlots', default: null },
  { name: 'sacredGuarantees', type: 'boolean', default: false },
  // How free slots are shared among the requestor groups (a job's `group`), and whether a
  // worker takes the group it last served first.
  { name: 'fairness', type: 'oneOf', values: ['fifo', 'round-robin'], default: 'fifo' },
  { name: 'groupAffinity', type: 'boolean', default: false },
  // Which worker with a free slot takes the next job, or a function selectWorker(job, workers).
  { name: 'strategy', type: 'strategy', default: 'least-busy' },
  { name: 'niceIncrement', type: 'count', range: [0, 19], default: 0 },
  { name: 'affinity', type: 'boolean', default: false },
  { name: 'maxMessage', type: 'int', range: [1, 0x7fffffff], default: DEFAULTS.maxMessage },
  { name: 'killGraceMs', type: 'ms', range: [0, MAX_U32], default: DEFAULTS.killGraceMs, floor: true },
  // Time a worker has to answer a job cancelled while running (an abort, a timeout) before it
  // is killed; 0 kills it at once.
  { name: 'cancelGraceMs', type: 'ms', range: [0, MAX_U32], default: 1000, floor: true },
  { name: 'maxBacklog', type: 'count', range: [0, Infinity], default: null, unlimited: null },
  // needsDrain is true while this many jobs wait for a worker; by default, the slots.
  { name: 'drainThreshold', type: 'int', range: [1, MAX_SAFE], default: (resolved) => resolved.maxWorkers * resolved.concurrency },
  { name: 'maxExpectedWait', type: 'ms', range: [0, Infinity], exclusive: true, default: null },
  // The pool's name: the `pool` label of metrics(), the title on the status page.
  { name: 'name', type: 'string', default: 'default' },
  // The JSON text of the worker's init() argument.
  { name: 'initData', type: 'json', default: 'null' },
  { name: 'cwd', type: 'directory', default: undefined },
  { name: 'env', type: 'env', default: undefined },
  // What to run: exactly one of `module` (a Node module, a path or file URL, run by
  // lib/pool-worker.js with `execArgv`, by default this process's safe flags) and `command`
  // ([executable, ...args]; a path with a slash is relative to `cwd`).
  { name: 'module', type: 'module', default: undefined },
  { name: 'execArgv', type: 'execArgv', default: (resolved) => (resolved.module === undefined ? undefined : workerExecArgv()) },
  { name: 'command', type: 'command', default: undefined },
  // How a module worker's arguments and results travel: 'json', or 'advanced' (v8.serialize,
  // the structured clone algorithm, as child_process.fork's option of that name).
  { name: 'serialization', type: 'serialization', default: 'json' },
].map(Object.freeze));

// Each type: (row, value, min, max, resolved) -> the resolved value, or throws the option's
// error. `resolved` holds the options of the rows before.
// A value in an error message: numbers and strings as they are written, anything else by its
// type (String() throws on an object without a prototype, and would run a user's toString).
function shown(v) {
  if (typeof v === 'number') return String(v);
  if (typeof v === 'string') return JSON.stringify(v);
  return v === null ? 'null' : typeof v;
}

const TYPES = {
  // An integer from min to max.
  int(row, v, min, max) {
    if (typeof v !== 'number' || !Number.isInteger(v)) {
      throw optionError(`${row.name} must be an integer, got ${typeof v === 'number' ? v : typeof v}`);
    }
    if (v < min || v > max) {
      throw optionError(`${row.name} must be between ${min} and ${max}, got ${v}`);
    }
    return v;
  },
  // An integer from 0 to max; a max of Infinity means Infinity itself is accepted too.
  count(row, v, min, max) {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      throw optionError(max === Infinity
        ? `${row.name} must be an integer >= ${min}, or Infinity`
        : `${row.name} must be an integer from ${min} to ${max}, got ${shown(v)}`);
    }
    return v;
  },
  // A number of milliseconds: finite ones at most MAX_DURATION_MS.
  ms(row, v, min, max) {
    if (typeof v !== 'number' || !(row.exclusive ? v > min : v >= min) || v > max) {
      throw optionError(`${row.name} must be a number of milliseconds ${row.exclusive ? '>' : '>='} ${min}`);
    }
    if (v !== Infinity && v > MAX_DURATION_MS) throw optionError(durationMessage(row.name, v));
    return v;
  },
  // A finite number.
  finite(row, v) {
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      throw optionError(`${row.name} must be a finite number, got ${typeof v === 'number' ? v : typeof v}`);
    }
    return v;
  },
  // { from: slots }: each key a priority >= 0, each value an integer >= 0, the slots of the
  // ranges above 0 at most maxWorkers × concurrency (the lowest range has the rest). As flat
  // pairs [from, slots, ...] for the engine.
  prioritySlots(row, v, min, max, resolved) {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) {
      throw optionError('prioritySlots must be an object { priority: slots }');
    }
    const pairs = [];
    let guaranteed = 0;
    for (const [key, n] of Object.entries(v)) {
      const from = key.trim() === '' ? NaN : Number(key);
      if (!Number.isFinite(from) || from < 0) {
        throw optionError(`prioritySlots: ${JSON.stringify(key)} is not a priority >= 0`);
      }
      if (!Number.isInteger(n) || n < 0 || n > MAX_U32) {
        throw optionError(`prioritySlots: the slots of priority ${key} must be an integer >= 0, got ${shown(n)}`);
      }
      if (from !== 0) guaranteed += n;
      pairs.push(from, n);
    }
    const slots = resolved.maxWorkers * resolved.concurrency;
    if (guaranteed > slots) {
      throw optionError(`prioritySlots guarantee ${guaranteed} slots, more than the pool's ${slots} (maxWorkers × concurrency)`);
    }
    return pairs;
  },
  // One of row.values.
  oneOf(row, v) {
    if (!row.values.includes(v)) {
      throw optionError(`${row.name} must be one of ${row.values.map((x) => JSON.stringify(x)).join(', ')}, ` +
        `got ${typeof v === 'string' ? JSON.stringify(v) : typeof v}`);
    }
    return v;
  },
  // 'least-busy', 'round-robin', 'random', or a function (kept as it is).
  strategy(row, v) {
    if (typeof v === 'function' || v === 'least-busy' || v === 'round-robin' || v === 'random') return v;
    throw optionError('strategy must be \'least-busy\', \'round-robin\', \'random\' or a function ' +
      `selectWorker(job, workers), got ${typeof v === 'string' ? JSON.stringify(v) : typeof v}`);
  },
  // 'json' or 'advanced'; 'advanced' only for a Node module worker (a command worker speaks
  // JSON, and cannot read V8's format).
  serialization(row, v, min, max, resolved) {
    if (v !== 'json' && v !== 'advanced') {
      throw optionError(`serialization must be 'json' or 'advanced', got ` +
        `${typeof v === 'string' ? JSON.stringify(v) : typeof v}`);
    }
    if (v === 'advanced' && resolved.command !== undefined) {
      throw optionError('serialization \'advanced\' is for Node module workers (`module`); a ' +
        '`command` worker speaks JSON');
    }
    return v;
  },
  boolean(row, v) {
    if (typeof v !== 'boolean') throw optionError(`${row.name} must be a boolean`);
    return v;
  },
  string(row, v) {
    if (typeof v !== 'string') throw optionError(`${row.name} must be a string`);
    return v;
  },
  // An existing directory (checked now: a worker started in a missing one would fail with the
  // OS's bare "No such file or directory", as if its program were missing).
  directory(row, v) {
    if (typeof v !== 'string') throw optionError(`${row.name} must be a string`);
    let isDir = false;
    try {
      isDir = fs.statSync(v).isDirectory();
    } catch {
      throw optionError(`${row.name} not found: ${path.resolve(v)}`);
    }
    if (!isDir) throw optionError(`${row.name} is not a directory: ${path.resolve(v)}`);
    return v;
  },
  // Any value JSON can carry, as its JSON text.
  json(row, v) {
    let text;
    try {
      text = JSON.stringify(v);
    } catch (e) {
      throw optionError(`${row.name} cannot be serialized: ${e.message}`);
    }
    if (text === undefined) throw optionError(`${row.name} cannot be serialized`);
    return text;
  },
  // Environment variables: an object; undefined values are left out, the rest become strings.
  env(row, v) {
    if (v === null || typeof v !== 'object') throw optionError(`${row.name} must be an object`);
    const out = {};
    for (const [k, val] of Object.entries(v)) {
      if (val !== undefined) out[k] = String(val);
    }
    return out;
  },
  // An existing file: its absolute path.
  module(row, v) {
    let file = v;
    if (v instanceof URL || (typeof v === 'string' && v.startsWith('file:'))) {
      try {
        file = fileURLToPath(v);
      } catch (e) {
        // A malformed URL ('file:///bad%'), or one that is not a file URL.
        throw optionError(`module is not a valid file URL: ${e.message}`);
      }
    }
    if (typeof file !== 'string' || file.length === 0) {
      throw optionError('module must be a path (string) or a file URL');
    }
    file = path.resolve(file);
    if (!fs.existsSync(file)) {
      throw optionError(`module not found: ${file}`);
    }
    return file;
  },
  // Node's flags for a module worker; ignored for a command.
  execArgv(row, v, min, max, resolved) {
    if (resolved.module === undefined) return undefined;
    if (!Array.isArray(v) || !v.every((a) => typeof a === 'string')) {
      throw optionError('execArgv must be an array of strings');
    }
    return v;
  },
  // [executable, ...args] (or just the executable): { program, args }.
  command(row, v, min, max, resolved) {
    const argv = typeof v === 'string' ? [v] : v;
    if (!Array.isArray(argv) || argv.length === 0 || !argv.every((a) => typeof a === 'string')) {
      throw optionError('command must be a non-empty array of strings: [executable, ...args]');
    }
    let program = argv[0];
    // A path with a slash is relative to the worker's cwd; a bare name is looked up in PATH.
    if (program.includes('/')) program = path.resolve(resolved.cwd || process.cwd(), program);
    return { program, args: argv.slice(1) };
  },
};

// What a finite span over MAX_DURATION_MS is told, for an option or a job's timeout.
// A per-job span in ms (> 0; Infinity: none, which the engine reads as 0), or its Error: what
// run()'s and a producer's queueTimeout and totalTimeout take.
function spanOption(what, name, v) {
  if (typeof v !== 'number' || !(v > 0)) {
    return argumentError(`${what}(): options.${name} must be a number of milliseconds > 0, or Infinity`);
  }
  if (v !== Infinity && v > MAX_DURATION_MS) {
    return argumentError(`${what}(): ${durationMessage(`options.${name}`, v)}`);
  }
  return v === Infinity ? 0 : v;
}

function durationMessage(name, v) {
  return `${name} must be at most ${MAX_DURATION_MS} ms (about 49.7 days), or Infinity; got ${v}`;
}

// One option's value from `options` (its default when absent). `resolved` holds the options
// resolved before it.
function resolveOption(row, options, resolved) {
  const v = options[row.name];
  if (v === undefined) return typeof row.default === 'function' ? row.default(resolved) : row.default;
  if (v === Infinity && Object.hasOwn(row, 'unlimited')) return row.unlimited;
  let min;
  let max;
  if (row.range !== undefined) {
    [min, max] = row.range;
    if (typeof min === 'string') min = resolved[min];
    if (typeof max === 'string') max = resolved[max];
  }
  const out = TYPES[row.type](row, v, min, max, resolved);
  return row.floor ? Math.floor(out) : out;
}

const NAMES = OPTIONS.map((row) => row.name);
const KNOWN = new Set(NAMES);

// Every row of the table, validated in order: { maxWorkers, concurrency, ... }. An option not
// in the table (a typo: `maxWorker`) is refused, naming the closest known one.
function resolveOptions(options) {
  if (options === null || typeof options !== 'object') {
    throw optionError('options must be an object: new Pool({ module }) or new Pool({ command })');
  }
  let keys;
  try {
    keys = Object.keys(options);
  } catch (e) {
    // A Proxy whose ownKeys trap throws.
    throw optionError(`options cannot be read (${e instanceof Error ? e.message : String(e)})`);
  }
  for (const key of keys) {
    if (!KNOWN.has(key)) throw unknownOptionError('option', key, NAMES);
  }
  if ((options.module !== undefined) === (options.command !== undefined)) {
    throw optionError('give exactly one of `module` (a Node module) or `command` (an executable)');
  }
  const out = {};
  for (const row of OPTIONS) out[row.name] = resolveOption(row, options, out);
  return out;
}

// Internal limits for tests, in the engine's native options: `options[LIMITS]`, an object with
// `maxRecordBytes` (the longest result the host takes; longer fails its job with
// ERR_RESULT_TOO_LARGE) and `maxWaitingBytes` (records waiting for the host above which the
// engine stops reading workers). Not a public option: a test sets them small, so that a result
// too large for a JavaScript string needs no 512 MiB. By default, V8's own longest string (less
// a record's framing) and the engine's default.
const LIMITS = Symbol.for('comrade.limits');
const RECORD_FRAMING = 16;
function internalLimits(options) {
  const l = options !== null && typeof options === 'object' ? options[LIMITS] : undefined;
  const maxRecordBytes = l && l.maxRecordBytes !== undefined
    ? l.maxRecordBytes
    : require('node:buffer').constants.MAX_STRING_LENGTH - RECORD_FRAMING;
  return { maxRecordBytes, maxWaitingBytes: l ? l.maxWaitingBytes : undefined };
}

module.exports = {
  OPTIONS, TYPES, MAX_DURATION_MS, LIMITS, durationMessage, spanOption, internalLimits, resolveOption, resolveOptions,
};
