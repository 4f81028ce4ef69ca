'use strict';
// Binary attachments (docs/PROTOCOL.md, "Binary attachments", protocol version 3), shared by
// the pool (lib/pool.js, lib/session.js) and the Node worker (lib/pool-worker.js).
//
// An ArrayBuffer, or any view of one (Buffer, Uint8Array and the other typed arrays,
// DataView), anywhere in a job's arguments or result, travels as its raw bytes: the JSON holds
// `{"$b":i}` in its place and the bytes follow the message's line. It arrives as a Buffer
// (the view's own type is not kept; serialization: 'advanced' keeps it). A message without one
// is exactly what it was before: the walk that looks for one is the only cost, and only for
// objects (a string or a number is not walked at all).

// How a message with attachments starts (its first member, the attachments' lengths).
const BIN_PREFIX = '{"b":[';

function isBinary(v) {
  return ArrayBuffer.isView(v) || v instanceof ArrayBuffer ||
    (typeof SharedArrayBuffer === 'function' && v instanceof SharedArrayBuffer);
}

// Whether `value` holds a binary where JSON.stringify would look (own enumerable properties of
// objects without toJSON, elements of arrays). It runs for every object result and argument, so
// the common case is kept cheap: primitives are not visited, and no list of the objects being
// walked is kept down to SHALLOW levels; a value nested deeper (or a cycle) is walked again with
// that list (`stack`), so that a cycle ends the walk (JSON.stringify then reports it).
const SHALLOW = 32;

function hasBinary(value) {
  if (typeof value !== 'object' || value === null) return false;
  const found = walk(value, 0);
  return found === undefined ? walkSafe(value, []) : found;
}

// `value`: an object. true, false, or undefined when it nests deeper than SHALLOW.
function walk(value, depth) {
  if (isBinary(value)) return true;
  if (typeof value.toJSON === 'function') return false;
  if (depth === SHALLOW) return undefined;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const v = value[i];
      if (typeof v === 'object' && v !== null) {
        const found = walk(v, depth + 1);
        if (found !== false) return found;
      }
    }
    return false;
  }
  const keys = Object.keys(value);
  for (let i = 0; i < keys.length; i++) {
    const v = value[keys[i]];
    if (typeof v === 'object' && v !== null) {
      const found = walk(v, depth + 1);
      if (found !== false) return found;
    }
  }
  return false;
}

function walkSafe(value, stack) {
  if (typeof value !== 'object' || value === null) return false;
  if (isBinary(value)) return true;
  if (typeof value.toJSON === 'function' || stack.includes(value)) return false;
  stack.push(value);
  let found = false;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length && !found; i++) found = walkSafe(value[i], stack);
  } else {
    const keys = Object.keys(value);
    for (let i = 0; i < keys.length && !found; i++) found = walkSafe(value[keys[i]], stack);
  }
  stack.pop();
  return found;
}

function isDetached(buffer) {
  if (typeof buffer.detached === 'boolean') return buffer.detached;
  // Node 20 has no `detached`: a view of a detached buffer cannot be made.
  try {
    new Uint8Array(buffer, 0, 0);
    return false;
  } catch {
    return true;
  }
}

// The bytes of a binary, as a Buffer over the same memory (no copy). Throws a TypeError for
// what cannot be sent: shared memory, a detached buffer.
function bytesOf(v) {
  const buffer = ArrayBuffer.isView(v) ? v.buffer : v;
  if (typeof SharedArrayBuffer === 'function' && buffer instanceof SharedArrayBuffer) {
    throw new TypeError('a SharedArrayBuffer cannot be sent to another process (its memory ' +
      'is shared, not copied); copy it into an ArrayBuffer or a Buffer');
  }
  if (isDetached(buffer)) {
    throw new TypeError('a detached ArrayBuffer cannot be sent (it was transferred away)');
  }
  if (Buffer.isBuffer(v)) return v;
  if (ArrayBuffer.isView(v)) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  return Buffer.from(v);
}

// A copy of `value` with each binary replaced by `{"$b":i}` and its bytes pushed to `bins`
// (what JSON.stringify would read, and no more: values with toJSON are kept as they are).
function encode(value, bins) {
  if (typeof value !== 'object' || value === null) return value;
  if (isBinary(value)) {
    bins.push(bytesOf(value));
    return { $b: bins.length - 1 };
  }
  if (typeof value.toJSON === 'function') return value;
  if (Array.isArray(value)) {
    const out = new Array(value.length);
    for (let i = 0; i < value.length; i++) out[i] = encode(value[i], bins);
    return out;
  }
  const out = {};
  const keys = Object.keys(value);
  for (let i = 0; i < keys.length; i++) define(out, keys[i], encode(value[keys[i]], bins));
  return out;
}

// out[key] = v, also for a key named __proto__ (an own property, as JSON.parse makes it).
function define(out, key, v) {
  if (key === '__proto__') {
    Object.defineProperty(out, key, { value: v, writable: true, enumerable: true, configurable: true });
  } else {
    out[key] = v;
  }
}

// `value` (parsed JSON) with each `{"$b":i}` replaced by bins[i], in place. A reference to an
// attachment that is not there is left as it is.
function revive(value, bins) {
  if (typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = revive(value[i], bins);
    return value;
  }
  const keys = Object.keys(value);
  if (keys.length === 1 && keys[0] === '$b') {
    const i = value.$b;
    return Number.isInteger(i) && i >= 0 && i < bins.length ? bins[i] : value;
  }
  for (let i = 0; i < keys.length; i++) {
    const v = value[keys[i]];
    const r = revive(v, bins);
    if (r !== v) define(value, keys[i], r);
  }
  return value;
}

function totalBytes(bins) {
  let n = 0;
  for (let i = 0; i < bins.length; i++) n += bins[i].length;
  return n;
}

module.exports = { BIN_PREFIX, isBinary, hasBinary, encode, revive, totalBytes };
