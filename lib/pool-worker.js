'use strict';
// Bootstrap of a Pool worker that runs a Node module: speaks docs/PROTOCOL.md on the channel
// the pool passed as fd 3. Usage (by the pool): node pool-worker.js /abs/path/to/module.js
//
// Replies produced while handling one read of the channel go out in one write; replies of async
// functions that settle together go out together (one microtask later).

const net = require('node:net');
const { AsyncLocalStorage } = require('node:async_hooks');
const { pathToFileURL } = require('node:url');
const { STATE, setInitData } = require('./worker-api');
const json = require('./json');

const modulePath = process.argv[2];
const fd = Number(process.env.COMRADE_CHANNEL_FD);
if (!modulePath || !Number.isInteger(fd)) {
  process.stderr.write('comrade: pool-worker.js is started by a comrade Pool, not by hand\n');
  process.exit(2);
}
// Not inherited by processes this worker starts.
delete process.env.COMRADE_CHANNEL_FD;

const channel = new net.Socket({ fd, readable: true, writable: true });
const als = new AsyncLocalStorage();

let out = '';
let flushQueued = false;

function flush() {
  flushQueued = false;
  if (out.length === 0) return;
  const text = out;
  out = '';
  channel.write(text);
}

function queue(line) {
  out += line + '\n';
  if (!flushQueued) {
    flushQueued = true;
    queueMicrotask(flush);
  }
}

function send(t, id, value) {
  let text;
  try {
    text = value === undefined ? undefined : json.stringify(value);
  } catch (e) {
    if (t === 'ok') {
      sendError(id, unserializable(e));
    }
    return;
  }
  if (text === undefined) queue(`{"t":"${t}","id":${id}}`);
  else queue(`{"t":"${t}","id":${id},"v":${text}}`);
}

function unserializable(e) {
  const why = read(e, 'message');
  const err = new TypeError('the function\'s result cannot be sent to the pool: ' +
    (typeof why === 'string' ? why : 'converting it to JSON threw'));
  err.code = 'ERR_UNSERIALIZABLE_RESULT';
  return err;
}

function sendError(id, thrown) {
  queue(`{"t":"err","id":${id},"e":${errorJson(thrown)}}`);
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
let initDone = false;
const early = []; // messages that arrived before the module was ready

globalThis[STATE] = {
  als,
  initData: undefined,
  initDataReady: false,
  send,
  sendEvent(name, data) {
    let text;
    try {
      text = JSON.stringify(data);
    } catch (e) {
      throw new TypeError(`comrade/worker: event data cannot be serialized: ${e.message}`);
    }
    queue(`{"t":"event","name":${JSON.stringify(name)}` +
      (text === undefined ? '}' : `,"data":${text}}`));
  },
  sendRetire() {
    queue('{"t":"retire"}');
  },
};

function fatal(err) {
  flush();
  channel.write(`{"t":"fatal","e":${errorJson(err)}}\n`, () => process.exit(1));
  // If the pool is gone and the write never completes, do not hang.
  setTimeout(() => process.exit(1), 2000).unref();
}

function collect(mod) {
  const fns = new Map();
  let def = null;
  let init = null;
  if (typeof mod === 'function') def = mod;
  if (mod !== null && (typeof mod === 'object' || typeof mod === 'function')) {
    for (const key of Object.keys(mod)) {
      const v = mod[key];
      if (typeof v !== 'function') continue;
      if (key === 'init') init = v;
      else if (key === 'default') def = def || v;
      else fns.set(key, v);
    }
    // An ES module's default export that is an object of functions (export default { ... }).
    if (mod.default && typeof mod.default === 'object') {
      for (const key of Object.keys(mod.default)) {
        const v = mod.default[key];
        if (typeof v !== 'function') continue;
        if (key === 'init') init = init || v;
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
  return { fns, def, init };
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
  for (const msg of early.splice(0)) call(msg);
  flush();
}

function unknownFunction(name) {
  const err = new Error(name === null
    ? `${modulePath} has no default function (it exports: ${[...functions.keys()].join(', ')})`
    : `no function named ${JSON.stringify(name)} in ${modulePath}`);
  err.code = 'ERR_UNKNOWN_FUNCTION';
  return err;
}

function call(msg) {
  const id = msg.id;
  const name = msg.fn === undefined ? null : msg.fn;
  const fn = name === null ? defaultFn : functions.get(name);
  if (!fn) {
    sendError(id, unknownFunction(name));
    return;
  }
  let result;
  try {
    result = als.run(id, callWith, fn, msg.args);
  } catch (e) {
    sendError(id, e);
    return;
  }
  if (result !== null && typeof result === 'object') {
    const then = read(result, 'then');
    if (typeof then === 'function' || then === UNREADABLE) {
      // Adopted as `await` would: a `then` (or its getter) that throws rejects, and a thenable
      // that resolves to another thenable is followed to its value.
      new Promise((resolve) => resolve(result)).then((v) => send('ok', id, v), (e) => sendError(id, e));
      return;
    }
  }
  send('ok', id, result);
}

function callWith(fn, args) {
  return Array.isArray(args) ? fn(...args) : fn(args);
}

function handle(line) {
  let msg;
  try {
    msg = JSON.parse(line);
  } catch (e) {
    process.stderr.write(`comrade worker: malformed message from the pool (${e.message})\n`);
    process.exit(3);
  }
  if (msg.t === 'call') {
    if (initDone) call(msg);
    else early.push(msg);
  } else if (msg.t === 'init') {
    start(msg.data === undefined ? null : msg.data);
  }
}

// The start of a line not complete yet, in chunks: a long line (a large job's arguments) is
// joined once, when its newline arrives, not copied again with every chunk.
let pending = [];
channel.setEncoding('utf8');
channel.on('data', (chunk) => {
  let nl = chunk.indexOf('\n');
  if (nl === -1) {
    pending.push(chunk);
    return;
  }
  let data = chunk;
  if (pending.length > 0) {
    pending.push(chunk);
    data = pending.join('');
    nl += data.length - chunk.length;
    pending = [];
  }
  let start = 0;
  do {
    handle(data.slice(start, nl));
    start = nl + 1;
  } while ((nl = data.indexOf('\n', start)) !== -1);
  if (start < data.length) pending.push(data.slice(start));
  data = '';
  flush();
});
// The pool is gone, or dropped this worker: nothing more can be answered.
channel.on('end', () => process.exit(0));
channel.on('error', () => process.exit(0));
