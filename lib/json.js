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

// A long string in the text given to the native submit (src/rawtext.rs): `\x01<length>:` and
// the string itself, which the binding turns into its JSON text while it reads the batch (the
// scan for characters to escape costs a fraction there of the regular expression's here). JSON
// text never holds a raw control character, so the mark cannot be mistaken. A string with a
// lone surrogate (UTF-8 cannot carry it; isWellFormed is free for a one-byte string) goes as
// JSON.
function rawLong(s) {
  return s.isWellFormed() ? RAW_MARK + s.length + ':' + s : JSON.stringify(s);
}
const RAW_MARK = '\x01';

// `value` as JSON text (undefined for undefined, like JSON.stringify). Arrays are handled
// element by element when one of them is a long string. With `raw` (text for the native
// submit only), long strings come as rawLong writes them.
function stringify(value, raw = false) {
  const quote = raw ? rawLong : quoteLong;
  if (typeof value === 'string') {
    return value.length >= LONG ? quote(value) : JSON.stringify(value);
  }
  if (hasLong(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out += ',';
      const v = value[i];
      if (typeof v === 'string' && v.length >= LONG) {
        out += quote(v);
      } else {
        const t = JSON.stringify(v);
        // As inside an array: undefined, functions and symbols become null.
        out += t === undefined ? 'null' : t;
      }
    }
    return out + ']';
  }
  return JSON.stringify(value);
}

// Whether `value` is an array with a long string element.
function hasLong(value) {
  if (!Array.isArray(value)) return false;
  for (let i = 0; i < value.length; i++) {
    const v = value[i];
    if (typeof v === 'string' && v.length >= LONG) return true;
  }
  return false;
}

// `text` (from stringify with `raw`) with each raw string replaced by its JSON text: the text
// the binding makes of it.
function unraw(text) {
  let out = '';
  let pos = 0;
  for (let at = text.indexOf(RAW_MARK); at >= 0; at = text.indexOf(RAW_MARK, pos)) {
    const colon = text.indexOf(':', at);
    const start = colon + 1;
    out += text.slice(pos, at);
    pos = start + Number(text.slice(at + 1, colon));
    out += JSON.stringify(text.slice(start, pos));
  }
  return out + text.slice(pos);
}

module.exports = { stringify, unraw, hasLong, LONG, NEEDS_ESCAPE, RAW_MARK };
