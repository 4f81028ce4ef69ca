// Pool basics with real Node workers: the default function, named functions (sync and async),
// enqueue() callbacks, structured values, ES module workers and modules given as file URLs.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'node:test';
import { pathToFileURL } from 'node:url';
import { TEST, fixture, openPool, runNode } from './pool-helpers.mjs';

const basic = fixture('basic.js');

test('run() calls the default function with the task', TEST, async (t) => {
  const { pool } = openPool(t, { module: basic, maxWorkers: 1 });
  const r = await pool.run({ hello: 'world' });
  assert.deepEqual(r.echoed, { hello: 'world' });
  assert.equal(typeof r.pid, 'number');
  assert.notEqual(r.pid, process.pid, 'the job runs in another process');
  assert.deepEqual(pool.pids, [r.pid]);
  assert.equal(pool.pending, 0);
});

test('call() and run({ name }) call named functions, sync and async', TEST, async (t) => {
  const { pool } = openPool(t, { module: basic, maxWorkers: 2 });
  assert.equal(await pool.call('add', 2, 3), 5);
  assert.equal(await pool.call('concat', 'a', 'b', 'c'), 'abc');
  assert.equal(await pool.call('asyncAdd', 40, 2), 42);
  assert.equal(await pool.run(7, { name: 'identity' }), 7);
  assert.equal(await pool.call('argCount'), 0);
  assert.deepEqual(await pool.run([1, 2], { name: 'identity' }), [1, 2], 'run() passes one argument');
  const many = await Promise.all(Array.from({ length: 20 }, (_, i) => pool.call('asyncAdd', i, i)));
  assert.deepEqual(many, Array.from({ length: 20 }, (_, i) => 2 * i));
  assert.equal(pool.pending, 0);
});

test('long strings come back exactly, whatever they hold, alone or in an array, sync and async', TEST, async (t) => {
  // The worker writes a long string result piece by piece, and skips the escape check for one
  // of the job's own arguments when the call's line has no backslash: each case below goes
  // one of those ways.
  const { pool } = openPool(t, { module: basic, maxWorkers: 1 });
  const plain = 'abc'.repeat(1024);
  const odd = ['"', '\\', '\n', '\u0000', '\u001f', '\ud800', '\udc00x', '\u{1f600}', 'é€'];
  const strings = [plain, 'x'.repeat(255), 'x'.repeat(256)];
  for (const c of odd) strings.push(plain.slice(0, 1000) + c + plain.slice(1000), c + plain, plain + c);
  for (const s of strings) {
    assert.equal(await pool.call('identity', s), s);
    assert.deepEqual(await pool.call('pair', s, 'tail'), [s, 'tail']);
    // A backslash elsewhere in the call's line: nothing is taken as plain.
    assert.deepEqual(await pool.call('pair', s, 'a"b\\c'), [s, 'a"b\\c']);
    // Not the argument itself: an equal string made in the worker.
    assert.equal(await pool.call('concat', s.slice(0, 500), s.slice(500)), s);
    assert.equal(await pool.call('sleep', 1, s), s);
  }
  assert.deepEqual(await pool.call('holes', plain), [plain, null, null]);
  await assert.rejects(pool.call('bigint', plain), { code: 'ERR_UNSERIALIZABLE_RESULT' });
  assert.deepEqual(await pool.call('pair', plain, plain), [plain, plain], 'the worker serves on');
});

test('jobs left unsettled while thousands of later ones settle are still found: settled, aborted, counted', TEST, async (t) => {
  // One worker each for the two waiting jobs (aborting one kills its worker), one for the rest.
  const { pool } = openPool(t, { module: basic, maxWorkers: 3 });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'comrade-pending-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const release = path.join(dir, 'release');
  const slow = pool.call('waitFile', release);
  const ac = new AbortController();
  const aborted = pool.run(path.join(dir, 'never'), { name: 'waitFile', signal: ac.signal });
  const n = 10000;
  const sums = await Promise.all(Array.from({ length: n }, (_, i) => pool.call('add', i, 1)));
  assert.deepEqual(sums, Array.from({ length: n }, (_, i) => i + 1));
  assert.equal(pool.pending, 2, 'the two waiting jobs, started before all the others');
  ac.abort();
  await assert.rejects(aborted, { name: 'AbortError' });
  assert.equal(pool.pending, 1);
  fs.writeFileSync(release, '');
  assert.equal(await slow, 'released');
  assert.equal(pool.pending, 0);
});

test('pending counts accepted jobs until they settle', TEST, async (t) => {
  const { pool } = openPool(t, { module: basic, maxWorkers: 1 });
  const jobs = [pool.call('sleep', 20, 'a'), pool.call('sleep', 1, 'b'), pool.run('c')];
  assert.equal(pool.pending, 3);
  await jobs[0];
  assert.ok(pool.pending < 3);
  const results = await Promise.all(jobs);
  assert.deepEqual(results.slice(0, 2), ['a', 'b']);
  assert.equal(pool.pending, 0);
});

test('a module that exports a function: it is the default, its properties are named functions', TEST, async (t) => {
  const { pool } = openPool(t, { module: fixture('fn-default.js'), maxWorkers: 1 });
  assert.equal(await pool.run(21), 42);
  assert.equal(await pool.call('triple', 5), 15);
});

test('enqueue() calls back Node-style, once, asynchronously', TEST, async (t) => {
  const { pool } = openPool(t, { module: basic, maxWorkers: 1 });
  const calls = [];
  let returned;
  await new Promise((resolve) => {
    returned = pool.enqueue('x', (...args) => {
      calls.push(args);
      resolve();
    });
    assert.equal(calls.length, 0, 'not called synchronously');
  });
  assert.equal(returned, pool, 'enqueue() returns the pool');
  assert.equal(calls.length, 1);
  assert.equal(calls[0][0], null);
  assert.equal(calls[0][1].echoed, 'x');

  // A failing job calls back with the error as the only argument.
  const failed = await new Promise((resolve) => {
    pool.enqueue(1n, (...args) => resolve(args));
  });
  assert.equal(failed.length, 1);
  assert.equal(failed[0].code, 'ERR_UNSERIALIZABLE');
});

test('enqueue() without a callback throws ERR_INVALID_ARGUMENT', TEST, async (t) => {
  const { pool } = openPool(t, { module: basic, maxWorkers: 1 });
  assert.throws(() => pool.enqueue('x'), { code: 'ERR_INVALID_ARGUMENT', name: 'PoolError' });
  assert.equal(pool.pending, 0);
});

test('a throwing enqueue() callback surfaces as uncaught and does not break other jobs', TEST, async () => {
  const r = await runNode('host-throwing-callback.js');
  assert.equal(r.timedOut, false, `host hung: ${r.stdout}${r.stderr}`);
  assert.equal(r.code, 0, r.stderr);
  const cbs = r.lines.filter((l) => l.startsWith('cb '));
  assert.deepEqual([...cbs].sort(), ['cb a null a', 'cb b null b', 'cb c null c']);
  assert.deepEqual(r.lines.filter((l) => l.startsWith('uncaught ')), ['uncaught boom from a']);
  assert.equal(r.lines.at(-1), 'closed {"a":1,"b":1,"c":1}');
});

test('structured values round-trip: nested objects, unicode, numbers, null, empty values', TEST, async (t) => {
  const { pool } = openPool(t, { module: basic, maxWorkers: 1 });
  const values = [
    { a: { b: { c: [1, 2, { d: 'deep' }] } }, e: [], f: {} },
    'héllo wörld ✓ 日本語 emoji 🎉 \u0000 nul, "quotes", \\backslash\\, \n newline \t tab',
    '\u2028\u2029 line separators',
    0, -0.5, 1e21, 2 ** 53 - 1, -(2 ** 31), 3.141592653589793, Number.MIN_VALUE,
    true, false, null, '', [], {},
    [null, [null, [null]]],
    { 'key with spaces': 1, '': 2, 'ключ': 3, '🔑': 4 },
    'x'.repeat(100000),
  ];
  for (const v of values) {
    assert.deepEqual(await pool.call('identity', v), v, `round trip of ${JSON.stringify(v).slice(0, 40)}`);
  }
  assert.deepEqual(await Promise.all(values.map((v) => pool.call('identity', v))), values);
  assert.deepEqual(await pool.call('types', 1, 's', null, [], {}, true), [
    'number', 'string', 'null', 'array', 'object', 'boolean',
  ]);
});

test('values follow JSON semantics: undefined, NaN, Date, Map become JSON', TEST, async (t) => {
  const { pool } = openPool(t, { module: basic, maxWorkers: 1 });
  assert.equal(await pool.call('identity', NaN), null);
  assert.equal(await pool.call('identity', Infinity), null);
  const when = new Date(0);
  assert.equal(await pool.call('identity', when), when.toJSON());
  assert.deepEqual(await pool.call('identity', { a: undefined, b: 1 }), { b: 1 });
  assert.deepEqual(await pool.call('identity', [undefined, 1]), [null, 1]);
  // Positional arguments travel as a JSON array: an undefined argument arrives as null.
  assert.deepEqual(await pool.call('types', undefined, 1), ['null', 'number']);
  // run() sends its one argument without an array around it, with the same result.
  assert.deepEqual(await pool.run(undefined, { name: 'types' }), ['null']);
  assert.deepEqual(await pool.run({ toJSON: () => undefined }, { name: 'types' }), ['null']);
  assert.deepEqual(await pool.run('x\ny', { name: 'types' }), ['string']);
  assert.deepEqual(await pool.call('identity', new Map([[1, 2]])), {});
});

test('a function returning undefined resolves undefined (sync and async)', TEST, async (t) => {
  const { pool } = openPool(t, { module: basic, maxWorkers: 1 });
  const sync = await pool.call('nothing');
  assert.equal(sync, undefined);
  const async_ = await pool.call('asyncNothing');
  assert.equal(async_, undefined);
  assert.equal(await pool.call('identity', null), null, 'null stays null');
});

test('an ES module worker: default export and named exports', TEST, async (t) => {
  const { pool } = openPool(t, { module: fixture('esm.mjs'), maxWorkers: 1 });
  assert.equal(await pool.run('hi'), 'HI!');
  assert.equal(await pool.call('add', 1, 2), 3);
  assert.deepEqual(await pool.call('later', 'v'), { v: 'v', esm: true });
});

test('an ES module whose default export is an object of functions', TEST, async (t) => {
  const { pool } = openPool(t, { module: fixture('esm-object.mjs'), maxWorkers: 1 });
  assert.equal(await pool.call('mul', 6, 7), 42);
  assert.equal(await pool.call('neg', 3), -3);
});

test('a module given as a file URL (URL object or string)', TEST, async (t) => {
  const url = pathToFileURL(fixture('esm.mjs'));
  const a = openPool(t, { module: url, maxWorkers: 1 }).pool;
  const b = openPool(t, { module: pathToFileURL(basic).href, maxWorkers: 1 }).pool;
  assert.equal(await a.run('url'), 'URL!');
  assert.equal(await b.call('add', 1, 1), 2);
});

test('a relative module path is resolved against the current directory', TEST, async (t) => {
  const rel = path.relative(process.cwd(), basic);
  assert.ok(!path.isAbsolute(rel));
  const { pool } = openPool(t, { module: rel, maxWorkers: 1 });
  assert.equal(await pool.call('add', 1, 2), 3);
});

test('env and cwd options reach the worker', TEST, async (t) => {
  const { pool } = openPool(t, {
    module: basic,
    maxWorkers: 1,
    env: { COMRADE_TEST_VAR: 'value-✓', COMRADE_TEST_NUM: 5 },
    cwd: '/tmp',
  });
  assert.equal(await pool.call('env', 'COMRADE_TEST_VAR'), 'value-✓');
  assert.equal(await pool.call('env', 'COMRADE_TEST_NUM'), '5');
  assert.equal(await pool.call('env', 'COMRADE_CHANNEL_FD'), null, 'the channel fd is not left in env');
  assert.equal(await pool.call('cwd'), '/tmp');
});
