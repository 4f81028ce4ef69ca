// Issue 11, item 2: serialization: 'advanced' (v8.serialize, the structured clone algorithm)
// for Node module workers: every structured-clone type survives both ways; the default stays
// JSON; a command worker cannot have it.
import assert from 'node:assert/strict';
import test from 'node:test';
import {
  codes, fixture, openPool, Pool, rejectsWith, TEST,
} from './pool-helpers.mjs';

test('every structured-clone type round-trips, cycles included', TEST, async (t) => {
  const { pool } = openPool(t, { module: fixture('binary.js'), maxWorkers: 1, serialization: 'advanced' });
  const cyclic = { name: 'self' };
  cyclic.me = cyclic;
  const shared = { s: 1 };
  const value = {
    map: new Map([[1, 'one'], ['k', { deep: true }]]),
    set: new Set([1, 'two', 3n]),
    date: new Date(1700000000000),
    re: /a+b/gi,
    big: 2n ** 70n,
    u8: new Uint8Array([1, 2, 3]),
    f64: new Float64Array([1.5, -0]),
    i16: new Int16Array([-2, 7]),
    ab: new Uint8Array([9, 8]).buffer,
    und: undefined,
    nan: NaN,
    negZero: -0,
    arr: [undefined, , 3], // eslint-disable-line no-sparse-arrays
    cyclic,
    twice: [shared, shared],
    err: new RangeError('boom'),
  };
  const back = await pool.call('echo', value);
  assert.ok(back.map instanceof Map && back.map.get('k').deep === true && back.map.get(1) === 'one');
  assert.ok(back.set instanceof Set && back.set.has(3n) && back.set.has('two'));
  assert.ok(back.date instanceof Date && back.date.getTime() === 1700000000000);
  assert.ok(back.re instanceof RegExp && back.re.source === 'a+b' && back.re.flags === 'gi');
  assert.equal(back.big, 2n ** 70n);
  assert.ok(back.u8 instanceof Uint8Array);
  assert.deepEqual([...back.u8], [1, 2, 3]);
  assert.ok(back.f64 instanceof Float64Array);
  assert.ok(Object.is(back.f64[1], -0));
  assert.ok(back.i16 instanceof Int16Array && back.i16[0] === -2);
  assert.ok(back.ab instanceof ArrayBuffer);
  assert.deepEqual([...new Uint8Array(back.ab)], [9, 8]);
  assert.ok('und' in back && back.und === undefined);
  assert.ok(Number.isNaN(back.nan));
  assert.ok(Object.is(back.negZero, -0));
  assert.equal(back.arr.length, 3);
  assert.equal(back.arr[0], undefined);
  assert.ok(!(1 in back.arr), 'the hole is kept');
  assert.equal(back.cyclic.me, back.cyclic, 'the cycle is kept');
  assert.equal(back.twice[0], back.twice[1], 'shared references stay shared');
  assert.ok(back.err instanceof RangeError && back.err.message === 'boom');
  // The worker saw the same types (describe() names a non-Buffer view as such).
  assert.deepEqual(await pool.call('describe', new Map([[1, 2]]), undefined, 5n),
    [{}, undefined, 5n]);
  // A top-level undefined result, and run() with one argument.
  assert.equal(await pool.call('echo', undefined), undefined);
  const m = await pool.run(new Map([['a', 1]]), { name: 'echo' });
  assert.ok(m instanceof Map && m.get('a') === 1);
});

test('what the structured clone cannot take fails its job clearly', TEST, async (t) => {
  const { pool } = openPool(t, { module: fixture('binary.js'), maxWorkers: 1, serialization: 'advanced', maxMessage: 1000 });
  const fn = await rejectsWith(pool.call('echo', { f() {} }), codes.UNSERIALIZABLE);
  assert.match(fn.message, /could not be cloned/);
  const big = await rejectsWith(pool.call('echo', 'x'.repeat(2000)), codes.MESSAGE_TOO_LARGE);
  assert.match(big.message, /serialized arguments are \d+ bytes, more than maxMessage \(1000\)/);
  const res = await rejectsWith(pool.call('big', 2000), codes.MESSAGE_TOO_LARGE);
  assert.match(res.message, /result is \d+ bytes serialized, more than maxMessage \(1000\)/);
  assert.equal(await pool.call('echo', 1n), 1n, 'the worker serves on');
});

test('the default is JSON; a command worker cannot have advanced', TEST, async (t) => {
  const { pool } = openPool(t, { module: fixture('binary.js'), maxWorkers: 1 });
  assert.deepEqual(await pool.call('echo', new Map([[1, 2]])), {});
  assert.deepEqual(await pool.call('echo', new Date(0)), '1970-01-01T00:00:00.000Z');
  assert.throws(() => new Pool({ command: ['python3', 'w.py'], serialization: 'advanced' }), {
    code: codes.INVALID_OPTION, message: /serialization 'advanced' is for Node module workers/,
  });
  assert.throws(() => new Pool({ module: fixture('binary.js'), serialization: 'v8' }), {
    code: codes.INVALID_OPTION, message: /serialization must be 'json' or 'advanced', got "v8"/,
  });
});
