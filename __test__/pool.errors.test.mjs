// Errors thrown in a worker reach the caller as real Errors: same builtin class (or name),
// message, the worker's stack, code and other own properties, cause rebuilt. Non-Error throws,
// unknown functions and unserializable results have their own codes. The worker survives.
import assert from 'node:assert/strict';
import test from 'node:test';
import { PoolError, TEST, errorOf, fixture, openPool, rejectsWith } from './pool-helpers.mjs';

const errors = fixture('errors.js');

test('a thrown TypeError: class, name, message, code and the worker-side stack', TEST, async (t) => {
  const { pool } = openPool(t, { module: errors, maxWorkers: 1 });
  const err = await errorOf(pool.call('throwsTypeError', 'bad input ✗'));
  assert.ok(err instanceof TypeError);
  assert.ok(!(err instanceof PoolError));
  assert.equal(err.name, 'TypeError');
  assert.equal(err.message, 'bad input ✗');
  assert.equal(err.code, 'E_TYPE');
  assert.match(err.stack, /^TypeError: bad input ✗\n/);
  assert.match(err.stack, /at (Object\.)?throwsTypeError /, 'the stack names the worker function');
  assert.ok(err.stack.includes(errors), 'the stack names the worker module file');
  assert.ok(!err.stack.includes('pool.errors.test.mjs'), "the stack is the worker's, not the caller's");
  // The worker is still serving.
  assert.equal(await pool.call('ok'), 'ok');
});

test('each builtin error class is rebuilt as that class', TEST, async (t) => {
  const { pool } = openPool(t, { module: errors, maxWorkers: 1 });
  const classes = { Error, TypeError, RangeError, SyntaxError, ReferenceError, EvalError, URIError };
  for (const [kind, Ctor] of Object.entries(classes)) {
    const err = await errorOf(pool.call('throwsEach', kind));
    assert.ok(err instanceof Ctor, `${kind} instanceof`);
    assert.equal(Object.getPrototypeOf(err), Ctor.prototype, `${kind} exact class`);
    assert.equal(err.name, kind);
    assert.equal(err.message, `a ${kind}`);
  }
});

test('a custom error class keeps its name, code and extra own properties', TEST, async (t) => {
  const { pool } = openPool(t, { module: errors, maxWorkers: 1 });
  const err = await errorOf(pool.call('throwsCustom'));
  assert.ok(err instanceof Error);
  assert.ok(!(err instanceof TypeError));
  assert.equal(err.name, 'ValidationError');
  assert.equal(err.message, 'bad field');
  assert.equal(err.code, 'E_VALIDATION');
  assert.equal(err.field, 'email');
  assert.equal(err.status, 422);
  assert.deepEqual(err.details, { allowed: ['a', 'b'], nested: { deep: true } });
  assert.equal(err.nothing, null);
  for (const key of ['code', 'field', 'status', 'details', 'nothing']) {
    assert.ok(Object.hasOwn(err, key), `${key} is an own property`);
  }
  assert.match(err.stack, /^ValidationError: bad field\n/);
  assert.match(err.stack, /throwsCustom/);
  assert.match(String(err), /^ValidationError: bad field$/);
});

test('cause is rebuilt, recursively', TEST, async (t) => {
  const { pool } = openPool(t, { module: errors, maxWorkers: 1 });
  const err = await errorOf(pool.call('throwsWithCause'));
  assert.equal(err.message, 'top');
  assert.ok(err.cause instanceof Error);
  assert.equal(err.cause.message, 'middle');
  assert.ok(err.cause.cause instanceof RangeError);
  assert.equal(err.cause.cause.message, 'root cause');
  assert.equal(err.cause.cause.code, 'E_ROOT');
  assert.match(err.cause.cause.stack, /^RangeError: root cause\n/);
});

test('a non-Error cause travels too', TEST, async (t) => {
  const { pool } = openPool(t, { module: errors, maxWorkers: 1 });
  const err = await errorOf(pool.call('throwsWithNonErrorCause'));
  assert.equal(err.message, 'top');
  // Either the value itself, or an Error wrapping it (as for a non-Error throw).
  if (typeof err.cause === 'string') {
    assert.equal(err.cause, 'just a string');
  } else {
    assert.equal(err.cause.message, 'just a string');
    assert.equal(err.cause.value, 'just a string');
  }
});

test('a thrown non-Error becomes an Error with code ERR_NON_ERROR_THROWN and .value', TEST, async (t) => {
  const { pool } = openPool(t, { module: errors, maxWorkers: 1 });
  const cases = [
    ['throwsString', 'a plain string', 'a plain string'],
    ['throwsObject', '[object Object]', { reason: 'object', n: 1 }],
    ['throwsNumber', '42', 42],
    ['throwsNull', 'null', null],
    ['rejectsWithString', 'async string', 'async string'],
  ];
  for (const [fn, message, value] of cases) {
    const err = await rejectsWith(pool.call(fn), 'ERR_NON_ERROR_THROWN');
    assert.equal(err.name, 'Error', fn);
    assert.equal(err.message, message, fn);
    assert.deepEqual(err.value, value, fn);
  }
  const undef = await rejectsWith(pool.call('throwsUndefined'), 'ERR_NON_ERROR_THROWN');
  assert.equal(undef.message, 'undefined');
  assert.equal(undef.value, undefined);
});

test('a rejected promise from an async function rejects the call the same way', TEST, async (t) => {
  const { pool } = openPool(t, { module: errors, maxWorkers: 1 });
  const err = await errorOf(pool.call('rejects', 'async failure'));
  assert.ok(err instanceof Error);
  assert.equal(err.message, 'async failure');
  assert.equal(err.code, 'E_ASYNC');
  assert.match(err.stack, /rejectsLater/);
  const te = await errorOf(pool.call('rejectsPromise', 'plain promise'));
  assert.ok(te instanceof TypeError);
  assert.equal(te.message, 'plain promise');
});

test('a Node system error keeps code, errno, syscall and path', TEST, async (t) => {
  const { pool } = openPool(t, { module: errors, maxWorkers: 1 });
  const err = await errorOf(pool.call('systemError'));
  assert.equal(err.code, 'ENOENT');
  assert.equal(err.syscall, 'open');
  assert.equal(err.path, '/nonexistent/comrade/file');
  assert.equal(typeof err.errno, 'number');
  assert.match(err.message, /ENOENT/);
});

test('an error with properties that cannot be serialized still arrives with its essentials', TEST, async (t) => {
  const { pool } = openPool(t, { module: errors, maxWorkers: 1 });
  const err = await errorOf(pool.call('throwsUnserializableProps'));
  assert.equal(err.message, 'has a bigint');
  assert.equal(err.code, 'E_BIG');
  assert.match(err.stack, /^Error: has a bigint\n/);
  assert.equal(await pool.call('ok'), 'ok');
});

test('an unknown function or a missing default rejects ERR_UNKNOWN_FUNCTION', TEST, async (t) => {
  const { pool } = openPool(t, { module: errors, maxWorkers: 1 });
  const err = await rejectsWith(pool.call('noSuchFunction', 1), 'ERR_UNKNOWN_FUNCTION');
  assert.match(err.message, /noSuchFunction/);
  await rejectsWith(pool.run('x', { name: 'alsoMissing' }), 'ERR_UNKNOWN_FUNCTION');
  // errors.js has no default function.
  const def = await rejectsWith(pool.run('x'), 'ERR_UNKNOWN_FUNCTION');
  assert.match(def.message, /no default function/);
  const cbArgs = await new Promise((resolve) => pool.enqueue('x', (...args) => resolve(args)));
  assert.equal(cbArgs.length, 1);
  assert.equal(cbArgs[0].code, 'ERR_UNKNOWN_FUNCTION');
  // Inherited names are not functions of the module.
  await rejectsWith(pool.call('toString'), 'ERR_UNKNOWN_FUNCTION');
  await rejectsWith(pool.call('constructor'), 'ERR_UNKNOWN_FUNCTION');
  await rejectsWith(pool.call('__proto__'), 'ERR_UNKNOWN_FUNCTION');
  assert.equal(await pool.call('ok'), 'ok');

  const named = openPool(t, { module: fixture('no-default.js'), maxWorkers: 1 }).pool;
  await rejectsWith(named.run('x'), 'ERR_UNKNOWN_FUNCTION');
  assert.equal(await named.call('named'), 'named');
});

test('a result that cannot be serialized rejects with a PoolError', TEST, async (t) => {
  const { pool } = openPool(t, { module: errors, maxWorkers: 1 });
  const big = await rejectsWith(pool.call('returnsBigInt'), 'ERR_UNSERIALIZABLE_RESULT');
  assert.ok(big instanceof PoolError);
  const cyc = await rejectsWith(pool.call('returnsCycle'), 'ERR_UNSERIALIZABLE_RESULT');
  assert.ok(cyc instanceof PoolError);
  assert.equal(await pool.call('ok'), 'ok');
});

test('many failing jobs at once: each rejects with its own error, the worker survives', TEST, async (t) => {
  const { pool, spawned } = openPool(t, { module: errors, maxWorkers: 2, concurrency: 2, spawnDelay: 0 });
  const results = await Promise.allSettled(Array.from({ length: 30 }, (_, i) =>
    i % 3 === 0 ? pool.call('ok') : pool.call('rejects', `m${i}`)));
  results.forEach((r, i) => {
    if (i % 3 === 0) assert.deepEqual(r, { status: 'fulfilled', value: 'ok' });
    else assert.equal(r.reason.message, `m${i}`);
  });
  assert.equal(spawned.length, 2, 'errors do not cost workers');
});
