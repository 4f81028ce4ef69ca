// Hostile input on the JS side of Pool (issue 15): error objects from a worker that would make
// rebuilding them throw, one tick of arguments too large to join, function names that would
// stay cached, Node workers whose results or errors throw when touched, and options or
// arguments that used to throw the wrong thing.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import {
  Pool, TEST, codes, errorOf, fixture, openPool, rejectsWith, runNode, within,
} from './pool-helpers.mjs';

const require = createRequire(import.meta.url);
const { rebuildError } = require('../lib/errors.js');

const HOSTILE = [process.execPath, fixture('hostile-native.js')];

// --- 3. A worker's error object can kill the host ---------------------------------------------

test('rebuildError: a message whose conversion throws becomes text, never an exception', () => {
  const e = JSON.parse('{"message":{"toString":1}}');
  const err = rebuildError(e);
  assert.ok(err instanceof Error);
  assert.equal(err.message, '{"toString":1}');
  assert.equal(rebuildError(JSON.parse('{"message":{"valueOf":{},"toString":{}}}')).message,
    '{"valueOf":{},"toString":{}}');
  assert.equal(rebuildError({ message: 42 }).message, '42');
  assert.equal(rebuildError({ message: null }).message, 'null');
  // Not an object at all.
  assert.equal(rebuildError(7).code, codes.WORKER_EXITED);
});

test('rebuildError: a "__proto__" key does not replace the prototype; toString, valueOf and constructor keys are skipped', () => {
  const e = JSON.parse('{"name":"TypeError","message":"m","__proto__":{"message":"evil","x":1},' +
    '"toString":"not a function","valueOf":"nor this","constructor":"no","code":"E_X",' +
    '"cause":{"message":"c","__proto__":null,"toString":1}}');
  const err = rebuildError(e);
  assert.equal(Object.getPrototypeOf(err), TypeError.prototype);
  assert.ok(err instanceof TypeError);
  assert.equal(err.x, undefined);
  assert.equal(err.message, 'm');
  assert.equal(err.code, 'E_X');
  assert.equal(String(err), 'TypeError: m');
  assert.equal(err.toString, Error.prototype.toString);
  assert.equal(err.valueOf, Object.prototype.valueOf);
  assert.equal(err.constructor, TypeError);
  assert.equal(Object.hasOwn(err, '__proto__'), false);
  assert.ok(err.cause instanceof Error);
  assert.equal(Object.getPrototypeOf(err.cause), Error.prototype);
  assert.equal(String(err.cause), 'Error: c');
  // A name that is no class keeps its name on a plain Error.
  const custom = rebuildError(JSON.parse('{"name":"__proto__","message":"n"}'));
  assert.equal(Object.getPrototypeOf(custom), Error.prototype);
  assert.equal(String(custom), '__proto__: n');
});

test('rebuildError: properties are defined, not assigned (no setter of Error.prototype runs)', () => {
  let ran = false;
  Object.defineProperty(Error.prototype, 'hostileSetter', {
    set() { ran = true; }, get() { return undefined; }, configurable: true,
  });
  try {
    const err = rebuildError(JSON.parse('{"message":"m","hostileSetter":5}'));
    assert.equal(ran, false);
    assert.equal(Object.getOwnPropertyDescriptor(err, 'hostileSetter').value, 5);
  } finally {
    delete Error.prototype.hostileSetter;
  }
});

test('a native worker whose error message throws on conversion fails its job, and the pool goes on', TEST, async (t) => {
  const { pool } = openPool(t, { command: HOSTILE, maxWorkers: 1 });
  const a = errorOf(pool.run('{"message":{"toString":1}}'));
  const b = errorOf(pool.run('{"message":"m","__proto__":{"message":"evil"},"toString":"x",' +
    '"valueOf":"y","constructor":1}'));
  const [ea, eb] = await within(Promise.all([a, b]), 10000);
  assert.ok(ea instanceof Error);
  assert.equal(ea.message, '{"toString":1}');
  assert.equal(Object.getPrototypeOf(eb), Error.prototype);
  assert.equal(eb.message, 'm');
  assert.equal(String(eb), 'Error: m');
  // The pool still works.
  const ec = await within(errorOf(pool.run('{"name":"RangeError","message":"fine"}')), 10000);
  assert.ok(ec instanceof RangeError);
});

test('a native worker whose fatal error throws on conversion fails the job with ERR_WORKER_INIT_FAILED', TEST, async (t) => {
  const { pool } = openPool(t, {
    command: HOSTILE, maxWorkers: 1, initData: { fatal: '{"message":{"toString":1},"__proto__":{}}' },
  });
  const err = await within(rejectsWith(pool.run('{"message":"x"}'), codes.WORKER_INIT_FAILED), 10000);
  assert.ok(err.cause instanceof Error);
  assert.equal(Object.getPrototypeOf(err.cause), Error.prototype);
  assert.match(err.message, /toString/);
});

// --- 12. Errors that are unclear or wrong (the JS parts) --------------------------------------

test('module: a malformed file URL is ERR_INVALID_OPTION, not a bare URIError', () => {
  for (const bad of ['file:///bad%', 'file://remote-host/x.js', new URL('file:///bad%25%')]) {
    assert.throws(() => new Pool({ module: bad }), (err) => {
      assert.equal(err.code, codes.INVALID_OPTION, `${bad}: ${err.message}`);
      assert.match(err.message, /module is not a valid file URL/);
      return true;
    });
  }
});

test('run(): an options getter that throws rejects the job, and run() does not throw', TEST, async (t) => {
  const { pool } = openPool(t, { module: fixture('basic.js'), maxWorkers: 1 });
  const boom = new Error('getter');
  let p;
  assert.doesNotThrow(() => {
    p = pool.run('x', { get name() { throw boom; } });
  });
  const err = await rejectsWith(p, codes.INVALID_ARGUMENT);
  assert.equal(err.cause, boom);
  const q = pool.run('x', { get onProgress() { throw boom; } });
  assert.equal((await rejectsWith(q, codes.INVALID_ARGUMENT)).cause, boom);
  const r = pool.run('x', { signal: { get aborted() { throw boom; }, addEventListener() {} } });
  assert.equal((await rejectsWith(r, codes.INVALID_ARGUMENT)).cause, boom);
  const s = pool.run('x', { signal: { aborted: true, addEventListener() {}, get reason() { throw boom; } } });
  assert.equal((await rejectsWith(s, codes.INVALID_ARGUMENT)).cause, boom);
  // The pool is unharmed, and the name is read once.
  let reads = 0;
  const named = { get name() { reads++; return reads === 1 ? 'identity' : 42; } };
  assert.equal(await pool.run('ok', named), 'ok');
  assert.equal(reads, 1);
});

test("env: the user's env cannot put NODE_CHANNEL_FD or the cluster markers back into a Pool worker", TEST, async (t) => {
  const { pool } = openPool(t, {
    module: fixture('basic.js'),
    maxWorkers: 1,
    env: {
      NODE_CHANNEL_FD: '3', NODE_CHANNEL_SERIALIZATION_MODE: 'json', NODE_UNIQUE_ID: '1',
      NODE_WORKER_ID: '1', COMRADE_TEST_KEPT: 'yes',
    },
  });
  const names = ['NODE_CHANNEL_FD', 'NODE_CHANNEL_SERIALIZATION_MODE', 'NODE_UNIQUE_ID',
    'NODE_WORKER_ID', 'COMRADE_TEST_KEPT'];
  const got = await within(Promise.all(names.map((n) => pool.call('env', n))), 10000);
  assert.deepEqual(got, [null, null, null, null, 'yes']);
});

// --- 9. The process-wide function-name cache ----------------------------------------------------

test('long distinct function names are not retained after close()', TEST, async () => {
  const count = 100;
  const size = 256 * 1024;
  const r = await runNode('host-name-cache.js', {
    nodeArgs: ['--expose-gc'], args: [String(count), String(size)], timeout: 25000,
  });
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.lines.includes(`failed ${count}`), r.stdout);
  const grown = Number(r.lines.find((l) => l.startsWith('grown ')).slice(6));
  // Kept, the names and their JSON texts would be 2 × count × size bytes (50 MiB).
  assert.ok(grown < (count * size) / 4, `the heap grew by ${grown} bytes`);
});

// --- 11. The Node worker survives results and errors that throw when touched ----------------

test('a thenable whose then throws, an error with throwing getters, a hostile Proxy: each fails its own job; the worker survives and its other jobs finish', TEST, async (t) => {
  const { pool, log } = openPool(t, {
    module: fixture('hostile-results.js'), maxWorkers: 1, concurrency: 8,
  });
  const slow = [pool.call('sleep', 200, 'a'), pool.call('sleep', 300, 'b')];
  const errs = await within(Promise.all([
    errorOf(pool.call('thenThrows')),
    errorOf(pool.call('thenGetterThrows')),
    errorOf(pool.call('throwsGetterError')),
    errorOf(pool.call('rejectsGetterError')),
    errorOf(pool.call('throwsProxy')),
    errorOf(pool.call('resultThrows')),
  ]), 10000);
  const [thenThrows, thenGetter, getterError, rejectsGetter, proxy, result] = errs;
  assert.ok(thenThrows instanceof RangeError);
  assert.equal(thenThrows.message, 'then threw');
  assert.ok(thenGetter instanceof TypeError);
  assert.equal(thenGetter.message, 'then getter threw');
  for (const e of [getterError, rejectsGetter]) {
    assert.ok(e instanceof Error);
    assert.match(e.message, /could not be read/);
    assert.equal(e.kept, 'yes');
    assert.equal(e.detail, undefined);
  }
  assert.ok(proxy instanceof Error);
  assert.match(proxy.message, /could not be read/);
  assert.equal(result.code, 'ERR_UNSERIALIZABLE_RESULT');
  assert.deepEqual(await within(Promise.all(slow), 10000), ['a', 'b']);
  assert.deepEqual(await pool.call('nestedThenable'), { deep: 42 });
  // One worker did it all.
  assert.equal(log.filter((e) => e[0] === 'workerSpawn').length, 1);
  assert.equal(log.filter((e) => e[0] === 'workerExit').length, 0);
});

test('a nested thenable is followed to its value, not sent as {}', TEST, async (t) => {
  const { pool } = openPool(t, { module: fixture('hostile-results.js'), maxWorkers: 1 });
  assert.deepEqual(await within(pool.call('nestedThenable'), 10000), { deep: 42 });
});

// --- 4. One tick of large arguments --------------------------------------------------------------

test('one tick of arguments longer together than V8\'s longest string: every job runs, nothing is thrown on the event loop', { timeout: 120000 }, async () => {
  // 10 × 60 million characters (each under maxMessage, raised to 100 MB) in one tick.
  const r = await runNode('host-big-batch.js', { args: ['pool', '10', '60'], timeout: 100000 });
  assert.deepEqual(r.lines.filter((l) => !l.startsWith('ok ')), ['closed'], r.stdout + r.stderr);
  assert.deepEqual(r.lines.filter((l) => l.startsWith('ok ')), Array(10).fill('ok 1'));
  assert.equal(r.code, 0, r.stderr);
});

test('a native submit that throws fails the jobs of its batch with ERR_INTERNAL, none left pending', TEST, async (t) => {
  const { NativePool } = require('../lib/native.js');
  const { pool } = openPool(t, { module: fixture('basic.js'), maxWorkers: 1 });
  const original = NativePool.prototype.submitCalls;
  const boom = new Error('engine unreachable');
  NativePool.prototype.submitCalls = function submitCalls() {
    throw boom;
  };
  let jobs;
  try {
    jobs = [pool.run(1), pool.call('add', 1, 2), pool.run(3, { name: 'identity', retries: 1 })]
      .map((p) => errorOf(p));
    await new Promise((resolve) => setImmediate(resolve)); // the flush microtask ran
  } finally {
    NativePool.prototype.submitCalls = original;
  }
  for (const err of await within(Promise.all(jobs), 5000)) {
    assert.equal(err.code, codes.INTERNAL);
    assert.equal(err.cause, boom);
    assert.match(err.message, /engine unreachable/);
  }
  assert.equal(pool.pending, 0);
  // The next tick's jobs go through.
  assert.equal(await within(pool.call('add', 2, 3), 10000), 5);
});
