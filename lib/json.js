'use strict';
// JSON text of a job's arguments or result, with a fast path for long strings.
//
// V8's JSON.stringify escapes strings one character at a time; on Node 20 that is about
// 5 ns per character (16 µs for the 3 KB payload of the luafan benchmark), the largest cost in
// the parent for such jobs. A string that needs no escaping, which a regular expression finds
// about twice as fast, is its JSON text once quoted. Everything else goes to JSON.stringify.

const LONG = 256;
// What JSON must escape: quote, backslash, control characters, and (well-formed
// JSON.stringify) lone surrogates; any surrogate sends the string the slow way.
// eslint-disable-next-line no-control-regex -- control characters are exactly what JSON escapes
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

function quoteLong(s) {
  return NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : '"' + s + '"';
}

// `value` as JSON text (undefined for undefined, like JSON.stringify). Arrays are handled
// element by element when one of them is a long string.
function stringify(value) {
  if (typeof value === 'string') {
    return value.length >= LONG ? quoteLong(value) : JSON.stringify(value);
  }
  if (Array.isArray(value)) {
    let long = false;
    for (let i = 0; i < value.length; i++) {
      const v = value[i];
      if (typeof v === 'string' && v.length >= LONG) {
        long = true;
        break;
      }
    }
    if (long) {
      let out = '[';
      for (let i = 0; i < value.length; i++) {
        if (i > 0) out += ',';
        const v = value[i];
        if (typeof v === 'string' && v.length >= LONG) {
          out += quoteLong(v);
        } else {
          const t = JSON.stringify(v);
          // As inside an array: undefined, functions and symbols become null.
          out += t === undefined ? 'null' : t;
        }
      }
      return out + ']';
    }
  }
  return JSON.stringify(value);
}

module.exports = { stringify, LONG, NEEDS_ESCAPE };
