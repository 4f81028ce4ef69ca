// The Pool options table (lib/options.js): each row's default, its range and type errors, and
// the whole table resolved at once. No pool is started.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import os from 'node:os';
import test from 'node:test';
import { PoolError, fixture } from './pool-helpers.mjs';

const require = createRequire(import.meta.url);
const { OPTIONS, resolveOption, resolveOptions } = require('../lib/options.js');
const { DEFAULTS } = require('../lib/native.js');

const row = (name) => OPTIONS.find((r) => r.name === name);
const basic = fixture('basic.js');

// The error resolving `value` for option `name` throws.
function errorFor(name, value, resolved = {}) {
  try {
    resolveOption(row(name), { [name]: value }, resolved);
  } catch (e) {
    return e;
  }
  assert.fail(`${name}: ${String(value)} should be refused`);
}

test('every row has a name, a known type, a default; names are unique', () => {
  const names = OPTIONS.map((r) => r.name);
  assert.equal(new Set(names).size, names.length);
  for (const r of OPTIONS) {
    assert.equal(typeof r.name, 'string');
    assert.equal(typeof r.type, 'string');
    assert.ok(Object.hasOwn(r, 'default'), `${r.name} has a default`);
    if (r.range !== undefined) assert.equal(r.range.length, 2, `${r.name}: range is [min, max]`);
  }
  assert.ok(Object.isFrozen(OPTIONS) && OPTIONS.every(Object.isFrozen));
});

test('defaults, each written once', () => {
  const o = resolveOptions({ module: basic });
  const cpus = os.availableParallelism ? os.availableParallelism() : os.cpus().length;
  assert.equal(o.maxWorkers, Math.ceil(cpus * 1.25));
  assert.equal(o.concurrency, 1);
  assert.equal(o.minWorkers, 0);
  assert.equal(o.spawnDelay, 100);
  assert.equal(o.idleTimeout, 10000);
  assert.equal(o.retries, 0);
  assert.equal(o.timeout, null);
  assert.equal(o.affinity, false);
  assert.equal(o.maxBacklog, null);
  assert.deepEqual([o.maxRss, o.maxJobsPerWorker, o.maxExpectedWait], [null, null, null]);
  assert.equal(o.maxMessage, DEFAULTS.maxMessage);
  assert.equal(o.killGraceMs, DEFAULTS.killGraceMs);
  assert.equal(o.initData, 'null');
  assert.equal(o.module, basic);
  assert.ok(Array.isArray(o.execArgv));
  assert.equal(o.command, undefined);
});

test('Infinity where it means no limit; values pass through', () => {
  const o = resolveOptions({
    command: ['./w', '-x'], cwd: '/tmp', maxBacklog: Infinity, idleTimeout: Infinity,
    timeout: Infinity, maxJobsPerWorker: Infinity, killGraceMs: 2.7, minWorkers: 2, maxWorkers: 3,
    initData: { a: 1 }, env: { A: 1, B: undefined }, execArgv: 'ignored for a command',
  });
  assert.deepEqual([o.maxBacklog, o.idleTimeout, o.timeout, o.maxJobsPerWorker], [null, null, null, null]);
  assert.equal(o.killGraceMs, 2, 'floored');
  assert.deepEqual([o.minWorkers, o.maxWorkers], [2, 3]);
  assert.equal(o.initData, '{"a":1}');
  assert.deepEqual(o.env, { A: '1' });
  assert.deepEqual(o.command, { program: '/tmp/w', args: ['-x'] });
  assert.equal(o.module, undefined);
  assert.equal(o.execArgv, undefined);
});

test('range errors: PoolError, ERR_INVALID_OPTION, the option and its range in the message', () => {
  const cases = [
    ['maxWorkers', 0, 'comrade Pool: maxWorkers must be between 1 and 1024, got 0'],
    ['concurrency', 70000, 'comrade Pool: concurrency must be between 1 and 65536, got 70000'],
    ['retries', 1001, 'comrade Pool: retries must be an integer from 0 to 1000, got 1001'],
    ['niceIncrement', '5', 'comrade Pool: niceIncrement must be an integer from 0 to 19, got "5"'], // a string, quoted
    ['spawnDelay', -1, 'comrade Pool: spawnDelay must be a number of milliseconds >= 0'],
    ['timeout', 0, 'comrade Pool: timeout must be a number of milliseconds > 0'],
    ['killGraceMs', 2 ** 32, 'comrade Pool: killGraceMs must be a number of milliseconds >= 0'],
    ['maxBacklog', 1.5, 'comrade Pool: maxBacklog must be an integer >= 0, or Infinity'],
    ['maxExpectedWait', 'soon', 'comrade Pool: maxExpectedWait must be a number of milliseconds > 0'],
  ];
  for (const [name, value, message] of cases) {
    const e = errorFor(name, value);
    assert.ok(e instanceof PoolError, `${name}: ${e.name}`);
    assert.equal(e.code, 'ERR_INVALID_OPTION');
    assert.equal(e.message, message);
  }
  // A range bounded by another option.
  const e = errorFor('minWorkers', 5, { maxWorkers: 4 });
  assert.ok(e instanceof PoolError);
  assert.equal(e.message, 'comrade Pool: minWorkers must be an integer from 0 to 4, got 5');
});

test('type errors: PoolError, ERR_INVALID_OPTION', () => {
  const cases = [
    ['maxWorkers', 1.5, 'comrade Pool: maxWorkers must be an integer, got 1.5'],
    ['maxRss', '1', 'comrade Pool: maxRss must be an integer, got string'],
    ['affinity', 1, 'comrade Pool: affinity must be a boolean'],
    ['cwd', 5, 'comrade Pool: cwd must be a string'],
    ['env', 'A=1', 'comrade Pool: env must be an object'],
    ['initData', () => {}, 'comrade Pool: initData cannot be serialized'],
    ['module', 42, 'comrade Pool: module must be a path (string) or a file URL'],
    ['command', [], 'comrade Pool: command must be a non-empty array of strings: [executable, ...args]'],
    // An object without a prototype cannot be turned into a string: its type is named instead
    // (this once threw a TypeError from the message itself).
    ['niceIncrement', Object.create(null), 'comrade Pool: niceIncrement must be an integer from 0 to 19, got object'],
  ];
  for (const [name, value, message] of cases) {
    const e = errorFor(name, value);
    assert.ok(e instanceof PoolError, `${name}: ${e.name}`);
    assert.equal(e.code, 'ERR_INVALID_OPTION');
    assert.equal(e.message, message);
  }
  assert.throws(() => resolveOptions({ module: basic, execArgv: [1] }),
    { name: 'PoolError', code: 'ERR_INVALID_OPTION', message: 'comrade Pool: execArgv must be an array of strings' });
  assert.throws(() => resolveOptions({ module: basic, command: ['x'] }),
    { name: 'PoolError', code: 'ERR_INVALID_OPTION' });
});
