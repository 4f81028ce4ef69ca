'use strict';
// Bootstrap of a Pool worker that runs a Node module: speaks docs/PROTOCOL.md on the channel
// the pool passed as fd 3. Usage (by the pool): node pool-worker.js /abs/path/to/module.js
//
// Replies produced while handling one read of the channel go out in one write; replies of async
// functions that settle together go out together (one microtask later).

const fs = require('node:fs');
const net = require('node:net');
const { AsyncLocalStorage } = require('node:async_hooks');
const { pathToFileURL } = require('node:url');
const { STATE, setInitData } = require('./worker-api');
const { JobTable } = require('./job-table');
const json = require('./json');
const binary = require('./binary');
const v8 = require('node:v8');

const modulePath = process.argv[2];
const fd = Number(process.env.COMRADE_CHANNEL_FD);
if (!modulePath || !Number.isInteger(fd)) {
  process.stderr.write('comrade: pool-worker.js is started by a comrade Pool, not by hand\n');
  process.exit(2);
}
// The pool's maxMessage: the longest line (in UTF-8 bytes, without its newline) this worker
// may send. A longer one would be a protocol error that kills the worker with every job it
// holds; a result over it fails its own job instead (ERR_MESSAGE_TOO_LARGE), here.
const maxMessage = (() => {
  const n = Number(process.env.COMRADE_MAX_MESSAGE);
  return Number.isSafeInteger(n) && n > 0 ? n : 64 * 1024 * 1024;
})();
// serialization: 'advanced': arguments and results are v8.serialize'd, each one attachment.
const advanced = process.env.COMRADE_SERIALIZATION === 'advanced';
// Not inherited by processes this worker starts.
delete process.env.COMRADE_CHANNEL_FD;
delete process.env.COMRADE_MAX_MESSAGE;
delete process.env.COMRADE_PROTOCOL;
delete process.env.COMRADE_SERIALIZATION;
// The pool's malloc defaults for this process (lib/pool.js), not for the ones it starts.
if (process.env.MALLOC_MMAP_THRESHOLD_ === String(16 << 20)) delete process.env.MALLOC_MMAP_THRESHOLD_;
if (process.env.MALLOC_TRIM_THRESHOLD_ === String(32 << 20)) delete process.env.MALLOC_TRIM_THRESHOLD_;

// Reads go into one reused buffer, each read's bytes copied out to a chunk of their own size
// (as Node's own reads end up), except while a message with attachments is incomplete: then
// straight into that message's own buffer (`target`), so a large binary is neither joined
// from chunks nor read 64 KiB at a time. (A fresh 64 KiB buffer per read instead cost small
// jobs their speed: a 64 KiB allocation each, and the GCs it brings.)
const READ_SIZE = 64 * 1024;
const readBuf = Buffer.allocUnsafeSlow(READ_SIZE);
let target = null;
let targetFilled = 0;
const channel = new net.Socket({
  fd,
  readable: true,
  writable: true,
  onread: {
    buffer: () => (target !== null ? target.subarray(targetFilled) : readBuf),
    callback: (n, buf) => onRead(buf === readBuf ? Buffer.from(readBuf.subarray(0, n)) : buf.subarray(0, n)),
  },
});
const als = new AsyncLocalStorage();

// Replies wait here, as UTF-8, until the end of the read (or microtask) that made them: one
// reused buffer, written with one write() straight from it (fs.writeSync on the non-blocking
// descriptor) when nothing waits in the socket's own queue. A string handed to the socket
// instead costs a flattened copy of the joined lines, a fresh buffer three times their length
// (when over 16 KiB), a write request and its callback.
const OUT_SIZE = 64 * 1024;
let outBuf = Buffer.allocUnsafeSlow(OUT_SIZE);
let outLen = 0;
let flushQueued = false;

// Appends `line` and its newline to the pending replies.
function append(line) {
  appendText(line);
  outBuf[outLen++] = 10;
}

// Appends `text` as UTF-8, with room left for one more byte (a newline).
function appendText(text) {
  // At most 3 bytes of UTF-8 per UTF-16 unit; a long text is measured instead (so a large
  // result does not ask for three times its size).
  const room = (text.length > 16384 ? Buffer.byteLength(text) : text.length * 3) + 1;
  if (outLen + room > outBuf.length) {
    const bigger = Buffer.allocUnsafeSlow(Math.max(outBuf.length * 2, outLen + room));
    outBuf.copy(bigger, 0, 0, outLen);
    outBuf = bigger;
  }
  outLen += outBuf.utf8Write(text, outLen);
}

function flush() {
  flushQueued = false;
  if (outLen === 0) return;
  const n = outLen;
  outLen = 0;
  const off = writeSome(outBuf, n);
  if (off < n) {
    // The socket is full (or busy): the rest waits in its queue, which now owns this buffer.
    channel.write(outBuf.subarray(off, n), afterWrite);
    outBuf = Buffer.allocUnsafeSlow(OUT_SIZE);
  } else if (outBuf.length > 16 * OUT_SIZE) {
    // One large result must not pin its buffer for the life of the worker.
    outBuf = Buffer.allocUnsafeSlow(OUT_SIZE);
  }
}

// Writes what it can of buf[0, n) at once, unless the socket's queue holds bytes (they go first);
// returns how much was written. The rest is the caller's to queue.
function writeSome(buf, n) {
  let off = 0;
  if (channelBusy()) return 0;
  try {
    while (off < n) off += fs.writeSync(fd, buf, off, n - off);
  } catch (e) {
    // EAGAIN: the socket is full; the rest goes through the queue. Anything else: the channel
    // is gone, and its 'end' or 'error' ends this process.
    if (e.code !== 'EAGAIN' && e.code !== 'EWOULDBLOCK') return n;
  }
  return off;
}

// ----- progress: written at once, the latest value per job while the channel is busy -----
//
// progress() writes its line synchronously (fs.writeSync on the channel's descriptor), so a job
// that never yields (a CPU loop) still reports live. The descriptor is non-blocking: a write
// may take part of the line (EAGAIN for the rest), and the rest then goes through the socket's
// own queue, behind nothing (a synchronous write happens only when that queue is empty, so
// nothing written asynchronously is overtaken). While the queue holds bytes, each job's latest
// progress line waits in `latestProgress` (replacing the one before: a flood of progress()
// keeps one line per job, not a million); it is written when the queue empties, and before
// the job's own answer (see `settling`), so a job's progress never arrives after its answer.
const latestProgress = new Map(); // job id -> its latest progress line, while the channel is busy

function writeNow(text) {
  const buf = Buffer.from(text);
  const off = writeSome(buf, buf.length);
  if (off < buf.length) channel.write(off === 0 ? buf : buf.subarray(off), afterWrite);
}

function afterWrite() {
  if (latestProgress.size > 0 && !channelBusy()) flushProgress();
}

// Whether bytes written asynchronously are still waiting: in libuv's queue for the socket, or
// in the stream's buffer behind a write not completed yet. (A write that libuv completed at
// once still counts in `writableLength` until its callback runs, a tick later: a job that
// starts right after `ready` must not wait for that.)
function channelBusy() {
  const handle = channel._handle;
  if (!handle) return true;
  if (handle.writeQueueSize > 0) return true;
  const state = channel._writableState;
  if (state && Array.isArray(state.buffered)) return state.buffered.length - (state.bufferedIndex || 0) > 0;
  return channel.writableLength > 0;
}

function flushProgress() {
  let text = '';
  for (const line of latestProgress.values()) text += line + '\n';
  latestProgress.clear();
  writeNow(text);
}

function sendProgress(id, value) {
  const job = running.get(id);
  // Answered, or cancelled: the pool would drop it.
  if (job === undefined || job.cancelled) return;
  let text;
  try {
    text = json.stringify(value);
  } catch {
    return; // as before: a progress value that cannot be JSON is not sent
  }
  const line = text === undefined ? `{"t":"progress","id":${id}}` : `{"t":"progress","id":${id},"v":${text}}`;
  const bytes = oversize(line);
  if (bytes !== 0) throw tooLarge('the progress value', bytes);
  if (latestProgress.size > 0 && !channelBusy()) flushProgress();
  if (latestProgress.size > 0 || channelBusy()) {
    latestProgress.set(id, line);
    return;
  }
  writeNow(line + '\n');
}

// Job `id` is being answered: it is no longer running, and its progress still waiting goes out
// first.
function settling(id) {
  running.take(id);
  const line = latestProgress.get(id);
  if (line !== undefined) {
    latestProgress.delete(id);
    append(line);
  }
}

function queue(line) {
  append(line);
  if (!flushQueued) {
    flushQueued = true;
    queueMicrotask(flush);
  }
}

// A result that holds binaries (lib/binary.js): its line (attachments first, as
// {"b":[lengths],...}), then their bytes and a newline, written in order after what is queued.
function sendBinary(id, value) {
  settling(id);
  const bins = [];
  let text;
  try {
    if (advanced) {
      bins.push(v8.serialize(value));
      text = '{"$b":0}';
    } else {
      text = json.stringify(binary.encode(value, bins));
    }
  } catch (e) {
    sendError(id, unserializable(e));
    return;
  }
  const total = binary.totalBytes(bins);
  if (total > maxMessage) {
    const err = tooLarge('the function\'s result', total);
    err.message = advanced
      ? `the function's result is ${total} bytes serialized, more than maxMessage (${maxMessage})`
      : `the function's result holds ${total} bytes of binaries, more than maxMessage (${maxMessage})`;
    sendError(id, err);
    return;
  }
  const lens = bins.map((b) => b.length).join(',');
  const line = `{"b":[${lens}],"t":"ok","id":${id},"v":${text}}`;
  const bytes = oversize(line);
  if (bytes !== 0) {
    sendError(id, tooLarge('the function\'s result', bytes));
    return;
  }
  // What is queued goes first, then the attachments straight from their buffers (not copied
  // into the reply buffer); their closing newline leaves with the next replies.
  append(line);
  flush();
  for (const b of bins) {
    if (b.length === 0) continue;
    const off = writeSome(b, b.length);
    if (off < b.length) channel.write(off === 0 ? b : b.subarray(off), afterWrite);
  }
  outBuf[outLen++] = 10;
  if (!flushQueued) {
    flushQueued = true;
    queueMicrotask(flush);
  }
}

function sendResult(id, value, safe = null) {
  if (advanced) {
    sendBinary(id, value);
    return;
  }
  if (typeof value === 'object' && value !== null) {
    let has;
    try {
      has = binary.hasBinary(value);
    } catch (e) {
      settling(id);
      sendError(id, unserializable(e));
      return;
    }
    if (has) {
      sendBinary(id, value);
      return;
    }
  }
  sendOk(id, value, safe);
}

// The `ok` reply of job `id`. A long string in the result (at the top, or an element of a
// top-level array: the shape of an echo, or of [payload, digest]) is written into the reply
// buffer piece by piece, not joined into one line first (which V8 would flatten into one more
// copy), and without the escape check when it is one of the job's own arguments from a call
// line with no backslash (`safe`: such a string has nothing JSON escapes).
function sendOk(id, value, safe) {
  settling(id);
  const start = outLen;
  try {
    if (typeof value === 'string' ? value.length >= json.LONG : json.hasLong(value)) {
      appendText(`{"t":"ok","id":${id},"v":`);
      if (typeof value === 'string') {
        appendString(value, safe);
      } else {
        appendText('[');
        for (let i = 0; i < value.length; i++) {
          if (i > 0) appendText(',');
          const v = value[i];
          if (typeof v === 'string' && v.length >= json.LONG) {
            appendString(v, safe);
          } else {
            const t = JSON.stringify(v);
            // As inside an array: undefined, functions and symbols become null.
            appendText(t === undefined ? 'null' : t);
          }
        }
        appendText(']');
      }
      appendText('}');
    } else {
      const text = value === undefined ? undefined : JSON.stringify(value);
      appendText(text === undefined ? `{"t":"ok","id":${id}}` : `{"t":"ok","id":${id},"v":${text}}`);
    }
  } catch (e) {
    outLen = start;
    sendError(id, unserializable(e));
    return;
  }
  const bytes = outLen - start;
  if (bytes > maxMessage) {
    outLen = start;
    sendError(id, tooLarge('the function\'s result', bytes));
    return;
  }
  outBuf[outLen++] = 10;
  if (!flushQueued) {
    flushQueued = true;
    queueMicrotask(flush);
  }
}

// Appends string `s` as JSON. `safe`: the job's arguments when they need no escaping, else null.
function appendString(s, safe) {
  let plain = false;
  if (safe !== null) {
    // `===` on the same string object is a pointer comparison; equal text is as safe.
    for (let i = 0; i < safe.length && !plain; i++) plain = safe[i] === s;
  }
  if (!plain && json.NEEDS_ESCAPE.test(s)) {
    appendText(JSON.stringify(s));
    return;
  }
  appendText('"');
  appendText(s);
  appendText('"');
}

// The UTF-8 length of `line` when it is longer than maxMessage, else 0. Only a line of more
// than maxMessage / 3 UTF-16 units is measured (a unit is at most 3 bytes of UTF-8).
// `framing`: bytes the line will have around `line` (an upper bound).
function oversize(line, framing = 0) {
  if (line.length * 3 + framing <= maxMessage) return 0;
  const bytes = Buffer.byteLength(line) + framing;
  return bytes > maxMessage ? bytes : 0;
}

function tooLarge(what, bytes, detail = '') {
  const err = new RangeError(`${what} is ${bytes} bytes of JSON as a message to the pool, more ` +
    `than maxMessage (${maxMessage})${detail}`);
  err.name = 'PoolError'; // the pool rebuilds it as a PoolError (lib/errors.js)
  err.code = 'ERR_MESSAGE_TOO_LARGE';
  err.bytes = bytes;
  err.maxMessage = maxMessage;
  return err;
}

function unserializable(e) {
  const why = read(e, 'message');
  return poolError('ERR_UNSERIALIZABLE_RESULT', 'the function\'s result cannot be sent to the ' +
    `pool: ${typeof why === 'string' ? why : 'converting it to JSON threw'}`);
}

// An error of comrade's own, raised here: the pool rebuilds it as a PoolError (lib/errors.js).
// Without a stack, which would only show comrade's insides.
function poolError(code, message) {
  const err = new Error(message);
  err.name = 'PoolError';
  err.code = code;
  delete err.stack;
  return err;
}

function sendError(id, thrown) {
  settling(id);
  queue(`{"t":"err","id":${id},"e":${errorJsonWithin(thrown)}}`);
}

// errorJson(thrown), or when that is longer than maxMessage, an ERR_MESSAGE_TOO_LARGE error
// saying so (with the start of the original message).
function errorJsonWithin(thrown, what = 'the function\'s error') {
  const text = errorJson(thrown);
  // {"t":"err","id":4294967295,"e":...} or {"t":"fatal","e":...}: at most 32 bytes around it.
  const bytes = oversize(text, 32);
  if (bytes === 0) return text;
  const message = read(thrown, 'message');
  const start = typeof message === 'string' ? `: ${message.slice(0, 200)}` : '';
  return errorJson(tooLarge(what, bytes, start));
}

// obj[key], or UNREADABLE when a getter (or a Proxy's trap) throws: what a job throws may be
// hostile, and describing it must never crash the worker.
const UNREADABLE = Symbol('unreadable');
function read(obj, key) {
  if (obj === null || (typeof obj !== 'object' && typeof obj !== 'function')) return undefined;
  try {
    return obj[key];
  } catch {
    return UNREADABLE;
  }
}

// An error as the protocol's error object: name, message, stack, code and own properties.
// Never throws: parts that cannot be read or serialized are left out.
function errorJson(thrown) {
  const obj = errorObject(thrown, 0);
  try {
    return JSON.stringify(obj);
  } catch {
    // A property that cannot be serialized (a cycle, a BigInt): keep the essentials.
    return JSON.stringify({
      name: obj.name, message: obj.message, stack: obj.stack, code: safeCode(obj.code),
    });
  }
}

function safeCode(code) {
  return typeof code === 'string' || typeof code === 'number' ? code : undefined;
}

function errorObject(thrown, depth) {
  const message = read(thrown, 'message');
  if (thrown !== null && typeof thrown === 'object' &&
      (typeof message === 'string' || message === UNREADABLE)) {
    const name = read(thrown, 'name');
    const obj = {
      name: typeof name === 'string' ? name : 'Error',
      message: message === UNREADABLE ? '(the error\'s message could not be read)' : message,
    };
    const stack = read(thrown, 'stack');
    if (typeof stack === 'string') obj.stack = stack;
    let keys;
    try {
      keys = Object.keys(thrown);
    } catch {
      keys = [];
    }
    for (const key of keys) {
      if (key === 'name' || key === 'message' || key === 'stack') continue;
      const v = read(thrown, key);
      if (v === UNREADABLE || typeof v === 'function' || typeof v === 'symbol' ||
          typeof v === 'bigint') continue;
      obj[key] = v;
    }
    // Node's system errors define code as an own property; some libraries use a getter.
    if (obj.code === undefined) {
      const code = read(thrown, 'code');
      if (code !== undefined && code !== UNREADABLE) obj.code = safeCode(code);
    }
    const cause = read(thrown, 'cause');
    if (cause !== undefined && cause !== UNREADABLE && depth < 4) {
      obj.cause = errorObject(cause, depth + 1);
    }
    return obj;
  }
  // Not an Error: wrap it, keeping the value when it can travel.
  let text;
  try {
    text = String(thrown);
  } catch {
    try {
      text = Object.prototype.toString.call(thrown);
    } catch {
      text = 'a value that cannot be converted to text';
    }
  }
  const obj = { name: 'Error', message: text, code: 'ERR_NON_ERROR_THROWN' };
  try {
    if (JSON.stringify(thrown) !== undefined) obj.value = thrown;
  } catch {
    // Not serializable: the message is what is left.
  }
  return obj;
}

let functions = null; // Map name -> function, once the module is loaded
let defaultFn = null;
let initFn = null;
let teardownFn = null;
// Jobs running here: id -> { id, controller (an AbortController, made when the job reads
// `signal` or is cancelled), cancelled }. The job's AsyncLocalStorage store is this object.
// A JobTable (a ring indexed by id, as the pool keeps its own jobs): a Map's set and delete per
// job cost a Node worker about a sixth of its CPU per job on tiny jobs.
const running = new JobTable();
let initDone = false;
const early = []; // messages that arrived before the module was ready

globalThis[STATE] = {
  als,
  sendProgress,
  initData: undefined,
  initDataReady: false,
  sendEvent(name, data) {
    let text;
    try {
      text = JSON.stringify(data);
    } catch (e) {
      throw new TypeError(`comrade/worker: event data cannot be serialized: ${e.message}`);
    }
    const line = `{"t":"event","name":${JSON.stringify(name)}` +
      (text === undefined ? '}' : `,"data":${text}}`);
    const bytes = oversize(line);
    if (bytes !== 0) throw tooLarge('the event', bytes);
    queue(line);
  },
  sendRetire() {
    queue('{"t":"retire"}');
  },
  // onMessage()'s handlers, as { handler } entries (a function registered twice runs twice).
  messageHandlers: [],
};

function fatal(err) {
  flush();
  channel.write(`{"t":"fatal","e":${errorJsonWithin(err)}}\n`, () => process.exit(1));
  // If the pool is gone and the write never completes, do not hang.
  setTimeout(() => process.exit(1), 2000).unref();
}

function collect(mod) {
  const fns = new Map();
  let def = null;
  let init = null;
  let teardown = null;
  if (typeof mod === 'function') def = mod;
  if (mod !== null && (typeof mod === 'object' || typeof mod === 'function')) {
    for (const key of Object.keys(mod)) {
      const v = mod[key];
      if (typeof v !== 'function') continue;
      if (key === 'init') init = v;
      else if (key === 'teardown') teardown = v;
      else if (key === 'default') def = def || v;
      else fns.set(key, v);
    }
    // An ES module's default export that is an object of functions (export default { ... }).
    if (mod.default && typeof mod.default === 'object') {
      for (const key of Object.keys(mod.default)) {
        const v = mod.default[key];
        if (typeof v !== 'function') continue;
        if (key === 'init') init = init || v;
        else if (key === 'teardown') teardown = teardown || v;
        else if (!fns.has(key)) fns.set(key, v);
      }
    }
  }
  if (def === null && fns.size === 0) {
    const err = new TypeError(`${modulePath} exports no function (export a function, or an ` +
      'object of named functions)');
    err.code = 'ERR_NO_FUNCTIONS';
    throw err;
  }
  return { fns, def, init, teardown };
}

async function load() {
  try {
    return require(modulePath);
  } catch (e) {
    if (e && (e.code === 'ERR_REQUIRE_ESM' || e.code === 'ERR_REQUIRE_ASYNC_MODULE')) {
      return import(pathToFileURL(modulePath).href);
    }
    throw e;
  }
}

const loaded = load().then((mod) => {
  const c = collect(mod);
  functions = c.fns;
  defaultFn = c.def;
  initFn = c.init;
  teardownFn = c.teardown;
});
// The failure is handled when `init` arrives (fatal); do not crash before.
loaded.catch(() => {});

async function start(data) {
  try {
    await loaded;
    // Only once the module has loaded (an ES module's evaluation may end after `init` arrives):
    // at its top level initData is never there, whatever the timing.
    setInitData(data);
    if (initFn) await initFn(data);
  } catch (e) {
    fatal(e);
    return;
  }
  initDone = true;
  // Written at once: the pool starts the run timeouts of this worker's jobs when it reads
  // `ready`, so it must not wait behind a long first job.
  queue('{"t":"ready"}');
  flush();
  for (const msg of early.splice(0)) {
    if (msg.t === 'call') call(msg);
    else message(msg);
  }
  flush();
}

// A broadcast: every onMessage handler runs with its data, then the ack goes (with the first
// error when a handler threw or rejected; the worker counts as reached either way).
function message(msg) {
  const id = msg.id;
  const data = msg.data === undefined ? null : msg.data;
  const handlers = globalThis[STATE].messageHandlers.slice();
  if (handlers.length === 0) {
    queue(`{"t":"ack","id":${id}}`);
    return;
  }
  const pending = [];
  let failed = false;
  let error;
  for (const { handler } of handlers) {
    try {
      pending.push(handler(data));
    } catch (e) {
      if (!failed) error = e;
      failed = true;
    }
  }
  const ack = (e, bad) => {
    if (bad) queue(`{"t":"ack","id":${id},"e":${errorJsonWithin(e, 'the message handler\'s error')}}`);
    else queue(`{"t":"ack","id":${id}}`);
  };
  Promise.all(pending).then(
    () => ack(error, failed),
    (e) => ack(failed ? error : e, true));
}

function unknownFunction(name) {
  const names = [...functions.keys()];
  let exported;
  if (names.length === 0) exported = 'it exports only a default function';
  else exported = `it exports: ${names.join(', ')}${defaultFn ? ', and a default function' : ''}`;
  return poolError('ERR_UNKNOWN_FUNCTION', name === null
    ? `${modulePath} has no default function (${exported})`
    : `no function named ${JSON.stringify(name)} in ${modulePath} (${exported})`);
}

function call(msg) {
  const id = msg.id;
  const name = msg.fn === undefined ? null : msg.fn;
  const fn = name === null ? defaultFn : functions.get(name);
  if (!fn) {
    sendError(id, unknownFunction(name));
    return;
  }
  // Arguments parsed from a line without a backslash: no string in them needs escaping.
  const safe = lineSafe && Array.isArray(msg.args) ? msg.args : null;
  // traceparent: the caller's W3C trace context, when the call carries one (traceContext()).
  const job = { id, controller: null, cancelled: false, traceparent: msg.traceparent };
  running.set(id, job);
  let result;
  try {
    result = als.run(job, callWith, fn, msg.args);
  } catch (e) {
    sendError(id, e);
    return;
  }
  if (result !== null && typeof result === 'object') {
    const then = read(result, 'then');
    if (typeof then === 'function' || then === UNREADABLE) {
      // Adopted as `await` would: a `then` (or its getter) that throws rejects, and a thenable
      // that resolves to another thenable is followed to its value.
      new Promise((resolve) => resolve(result)).then((v) => sendResult(id, v, safe), (e) => sendError(id, e));
      return;
    }
  }
  sendResult(id, result, safe);
}

function callWith(fn, args) {
  return Array.isArray(args) ? fn(...args) : fn(args);
}

function malformed(why) {
  process.stderr.write(`comrade worker: malformed message from the pool (${why})\n`);
  process.exit(3);
}

function parse(line) {
  try {
    return JSON.parse(line);
  } catch (e) {
    return malformed(e.message);
  }
}

// Whether the line being dispatched has no backslash (set only around handleText's dispatch).
let lineSafe = false;

function handle(line) {
  dispatch(parse(line));
}

function dispatch(msg) {
  if (msg.t === 'call') {
    if (initDone) call(msg);
    else early.push(msg);
  } else if (msg.t === 'cancel') {
    cancel(msg.id);
  } else if (msg.t === 'message') {
    if (initDone) message(msg);
    else early.push(msg);
  } else if (msg.t === 'stop') {
    stop();
  } else if (msg.t === 'init') {
    start(msg.data === undefined ? null : msg.data);
  }
}

function cancelReason() {
  return new DOMException('the job was cancelled by the pool (its caller aborted it, or it ' +
    'ran past its timeout)', 'AbortError');
}

// The pool cancelled job `id`: its signal aborts. A job not started yet (waiting for init) is
// answered at once; a job already answered is not here any more.
function cancel(id) {
  const i = early.findIndex((m) => m.t === 'call' && m.id === id);
  if (i !== -1) {
    early.splice(i, 1);
    sendError(id, cancelReason());
    return;
  }
  const job = running.get(id);
  if (job === undefined || job.cancelled) return;
  job.cancelled = true;
  if (job.controller === null) job.controller = new AbortController();
  try {
    job.controller.abort(cancelReason());
  } catch (e) {
    // A listener threw: it is the job's error, reported as an uncaught one would be.
    process.nextTick(() => { throw e; });
  }
}

// The pool stops this worker on purpose (close, idle, recycled, retired): the module's
// teardown() runs (awaited), then the worker exits. The pool SIGKILLs it if that takes longer
// than killGraceMs.
let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  try {
    await loaded;
    if (teardownFn) await teardownFn();
  } catch (e) {
    process.stderr.write(`comrade worker: teardown failed: ${(e && e.stack) || e}\n`);
  }
  flush();
  channel.end(() => process.exit(0));
}

// The start of a message not complete yet, in chunks: a long line (a large job's arguments)
// is joined once, when its newline arrives (or, for a message with attachments, once all its
// bytes have: `want`), not copied again with every chunk.
let pending = [];
let pendingBytes = 0;
let want = 0;
function onRead(chunk) {
  if (target !== null) {
    targetFilled += chunk.length;
    if (targetFilled < target.length) return;
    const data = target;
    target = null;
    targetFilled = 0;
    want = 0;
    const start = handleBytes(data, 0);
    if (start < data.length) {
      pending.push(data.subarray(start));
      pendingBytes = data.length - start;
    }
    flush();
    return;
  }
  let data = chunk;
  // The last newline, found from the end (a read usually ends with one): whether the read
  // completes a line, and how far its lines go.
  let last = chunk.lastIndexOf(10);
  const binaryFirst = want > 0;
  if (pending.length > 0) {
    pending.push(chunk);
    pendingBytes += chunk.length;
    if (binaryFirst ? pendingBytes < want : last === -1) return;
    if (last !== -1) last += pendingBytes - chunk.length;
    data = Buffer.concat(pending, pendingBytes);
    pending = [];
    pendingBytes = 0;
  } else if (last === -1) {
    pending.push(chunk);
    pendingBytes = chunk.length;
    return;
  }
  want = 0;
  // A message with attachments complete at last starts the data; else the lines as one text.
  const start = binaryFirst ? handleBytes(data, 0) : handleText(data, last);
  if (start < data.length) {
    if (want >= READ_SIZE) {
      // The rest of this message goes straight into its own buffer.
      target = Buffer.allocUnsafe(want);
      targetFilled = data.copy(target, 0, start);
    } else {
      pending.push(data.subarray(start));
      pendingBytes = data.length - start;
    }
  }
  flush();
}

// Handles the complete lines of `data`, up to its last newline (at `last`); returns where the
// rest starts. They are decoded as one text, as version 2 did, and split there; a line that
// starts a message with attachments (its first 6 bytes, docs/PROTOCOL.md: a line is never
// searched for them further in) hands that line and the rest to handleBytes. Only then is
// anything decoded that is not text: at most the rest of this read, never used.
function handleText(data, last) {
  const text = data.toString('utf8', 0, last);
  let start = 0;
  let lines = 0;
  // The next backslash at or after `start` (-1: none): a line before it has none.
  let slash = text.indexOf('\\');
  for (;;) {
    if (text.charCodeAt(start + 2) === 0x62 && text.startsWith(binary.BIN_PREFIX, start)) {
      // Where that line starts in the bytes: after the newlines of the lines handled (a text's
      // offsets are not the bytes' once a character takes more than one byte).
      let at = 0;
      for (let i = 0; i < lines; i++) at = data.indexOf(10, at) + 1;
      return handleBytes(data, at);
    }
    const nl = text.indexOf('\n', start);
    const end = nl === -1 ? text.length : nl;
    if (slash !== -1 && slash < start) slash = text.indexOf('\\', start);
    lineSafe = slash === -1 || slash > end;
    handle(text.slice(start, end));
    lineSafe = false;
    if (nl === -1) break;
    start = nl + 1;
    lines++;
  }
  return last + 1;
}

// As handleText, from `start` (a line's start), line by line, reading the attachments that
// follow a line that declares them (docs/PROTOCOL.md). A message not complete yet sets `want`
// to its length.
function handleBytes(data, start) {
  let nl;
  while ((nl = data.indexOf(10, start)) !== -1) {
    if (data[start + 1] !== 0x22 || data[start + 2] !== 0x62 || data[start + 3] !== 0x22 ||
        data.toString('latin1', start, start + 6) !== binary.BIN_PREFIX) {
      handle(data.toString('utf8', start, nl));
      start = nl + 1;
      continue;
    }
    const msg = parse(data.toString('utf8', start, nl));
    const lens = msg.b;
    if (!Array.isArray(lens) || !lens.every((n) => Number.isSafeInteger(n) && n >= 0)) {
      malformed('"b" is not a list of lengths');
    }
    const total = lens.reduce((a, n) => a + n, 0);
    if (total > 2 ** 31) malformed(`attachments of ${total} bytes`);
    const end = nl + 1 + total + 1;
    if (end > data.length) {
      want = end - start;
      return start;
    }
    if (data[end - 1] !== 10) malformed('attachments not followed by a newline');
    const bins = new Array(lens.length);
    let at = nl + 1;
    for (let i = 0; i < lens.length; i++) {
      bins[i] = data.subarray(at, at + lens[i]);
      at += lens[i];
    }
    if (msg.t === 'call') {
      msg.args = binary.revive(msg.args, bins);
      if (advanced) {
        try {
          msg.args = v8.deserialize(msg.args[0]);
        } catch (e) {
          malformed(`arguments that v8.deserialize refuses: ${e.message}`);
        }
      }
    }
    dispatch(msg);
    start = end;
  }
  return start;
}
// The pool is gone, or dropped this worker: nothing more can be answered.
// (After `stop`, the teardown finishes first.)
channel.on('end', () => {
  if (!stopping) process.exit(0);
});
channel.on('error', () => {
  if (!stopping) process.exit(0);
});
