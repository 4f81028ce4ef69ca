'use strict';
// What the producer and the worker host share: Redis errors as PoolErrors with the URL's
// credentials removed, and a job's error carried as JSON between machines.

const { codes, PoolError, rebuildError, optionError } = require('../errors');

const KNOWN_CODES = new Set(Object.values(codes));

// `url` as text safe to show: the password (and a username with it) replaced by ***.
function redactUrl(url) {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return '(a Redis URL that cannot be parsed)';
  }
}

// The secrets of `url`: its password, and its username when it has a password too.
function secrets(url) {
  try {
    const u = new URL(url);
    return [u.password, decodeURIComponent(u.password)].filter((s) => s.length >= 1);
  } catch {
    return [];
  }
}

// A message with every secret of `url` (and the URL itself) removed.
function redact(message, url) {
  let text = String(message);
  if (typeof url === 'string' && url.length > 0) text = text.split(url).join(redactUrl(url));
  for (const s of secrets(url)) text = text.split(s).join('***');
  return text;
}

// The binding's rejection as a PoolError: ERR_REDIS (or ERR_INTERNAL for a panic), naming
// `what` failed and the redacted URL.
function redisError(e, url, what) {
  const raw = e instanceof Error ? e.message : String(e);
  const message = redact(raw, url);
  if (message.startsWith('comrade: internal error')) {
    return new PoolError(codes.INTERNAL, message);
  }
  return new PoolError(codes.REDIS, `Redis (${redactUrl(url)}): ${what}: ${message}`,
    { url: redactUrl(url) });
}

// A redis:// or rediss:// URL, as an option's value.
function checkUrl(name, v) {
  if (typeof v !== 'string' || v.length === 0) throw optionError(`${name} must be a redis:// URL string`);
  let u;
  try {
    u = new URL(v);
  } catch {
    throw optionError(`${name} is not a valid URL (redis://[user:password@]host:port[/db])`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') {
    throw optionError(`${name} must start with redis:// or rediss://, got ${u.protocol}//`);
  }
  return v;
}

// The `tls` option: { ca, cert, key }, each PEM text (a string or a Buffer), for a rediss://
// URL; null when absent. The key never appears in a message.
const TLS_KEYS = ['ca', 'cert', 'key'];
function checkTls(v, url) {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'object' || Array.isArray(v)) throw optionError('tls must be an object { ca, cert, key } of PEM text');
  const out = {};
  for (const k of Object.keys(v)) {
    if (!TLS_KEYS.includes(k)) throw optionError(`unknown tls option ${JSON.stringify(k)} (known: ${TLS_KEYS.join(', ')})`);
    const x = v[k];
    if (x === undefined) continue;
    if (typeof x === 'string') out[k] = x;
    else if (Buffer.isBuffer(x)) out[k] = x.toString('utf8');
    else throw optionError(`tls.${k} must be PEM text (a string or a Buffer)`);
  }
  if ((out.cert === undefined) !== (out.key === undefined)) {
    throw optionError('tls.cert and tls.key go together (a client certificate and its key)');
  }
  if (!url.startsWith('rediss:')) throw optionError('tls needs a rediss:// URL');
  return out;
}

// A queue name: 1 to 200 bytes, no braces (they are the keys' hash tag), no control characters.
function checkQueue(name, v) {
  // eslint-disable-next-line no-control-regex
  if (typeof v !== 'string' || v.length === 0 || Buffer.byteLength(v) > 200 || /[{}\x00-\x1f\x7f]/.test(v)) {
    throw optionError(`${name} must be a string of 1 to 200 bytes without braces or control characters`);
  }
  return v;
}

// An error thrown by a job, as JSON to send to its producer: name, message, stack, code, and
// every own enumerable property; `host` names the worker host.
function serializeError(e, host) {
  const out = { name: 'Error', message: '' };
  if (e !== null && typeof e === 'object') {
    try {
      out.name = typeof e.name === 'string' ? e.name : 'Error';
      out.message = typeof e.message === 'string' ? e.message : String(e.message);
      if (typeof e.stack === 'string') out.stack = e.stack;
      for (const k of Object.keys(e)) out[k] = e[k];
      if (e.code !== undefined) out.code = e.code;
    } catch {
      // A getter that throws: what was read so far.
    }
  } else {
    out.message = String(e);
  }
  out.host = host;
  try {
    return JSON.stringify(out);
  } catch {
    return JSON.stringify({ name: out.name, message: out.message, code: out.code, host });
  }
}

// The error a producer rejects with: a real Error of the right class; one the host named
// PoolError with one of comrade's codes is a PoolError again.
function deserializeError(text) {
  let e;
  try {
    e = JSON.parse(text);
  } catch {
    return new PoolError(codes.WORKER_EXITED, 'a worker host sent an error that is not JSON');
  }
  const err = rebuildError(e);
  if (!(err instanceof PoolError) && e !== null && typeof e === 'object' &&
      e.name === 'PoolError' && KNOWN_CODES.has(e.code)) {
    Object.setPrototypeOf(err, PoolError.prototype);
    delete err.name;
  }
  return err;
}

// The UTF-8 size of `text` when it could be more than `max` bytes, else 0: a string's length
// in UTF-16 units bounds its UTF-8 size from below and a third of it from above, so most texts
// need no count (counting is a pass over the text, per job).
function bytesOver(text, max) {
  if (text.length * 3 <= max) return 0;
  const bytes = Buffer.byteLength(text);
  return bytes > max ? bytes : 0;
}

module.exports = {
  bytesOver,
  redactUrl, redact, redisError, checkUrl, checkTls, checkQueue, serializeError, deserializeError,
};
