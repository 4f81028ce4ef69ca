// Hostile input on the JS side of ComputeCluster (issue 15): max_processes the engine cannot
// count, one tick of arguments too large to join, and closed clusters that must be collectable.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import { ComputeCluster, fixture } from './cc-helpers.mjs';
import { TEST, runNode } from './pool-helpers.mjs';

const require = createRequire(import.meta.url);

const echo = fixture('echo.js');

function throwsString(fn, expected) {
  let thrown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  assert.equal(typeof thrown, 'string', `expected a thrown string, got ${thrown}`);
  assert.equal(thrown, expected);
}

// --- 12. max_processes beyond what the engine counts ------------------------------------------

test('max_processes of Infinity, 1e300, 2**32 or 2**32+3 throws a compute-cluster-style string, never wraps', () => {
  for (const bad of [Infinity, 1e300, 2 ** 32, 2 ** 32 + 3]) {
    throwsString(() => new ComputeCluster({ module: echo, max_processes: bad }),
      'when provided, max_processes must be at most 4294967295');
  }
});

test('the largest accepted max_processes is kept as given', () => {
  const cc = new ComputeCluster({ module: echo, max_processes: 2 ** 32 - 1 });
  assert.equal(cc._MAX_KIDS, 2 ** 32 - 1);
  cc.exit();
});

// --- 4. One tick of large arguments --------------------------------------------------------------

test('one tick of arguments longer together than V8\'s longest string: every callback runs before exit() is done', { timeout: 120000 }, async () => {
  // 10 × 60 million characters, each under the default maxMessage (64 MiB), in one tick.
  const r = await runNode('host-big-batch.js', { args: ['cc', '10', '60'], timeout: 100000 });
  assert.deepEqual(r.lines, [...Array(10).fill('ok 60000000'), 'closed'], r.stdout + r.stderr);
  assert.equal(r.code, 0, r.stderr);
});

test('a native submit that throws gives every job of its batch an error string, once', TEST, async () => {
  const { NativePool } = require('../lib/native.js');
  const cc = new ComputeCluster({ module: echo, max_processes: 1 });
  const original = NativePool.prototype.submit;
  NativePool.prototype.submit = function submit() {
    throw new Error('engine unreachable');
  };
  const got = [];
  try {
    for (let i = 0; i < 3; i++) cc.enqueue({ i }, (err, r) => got.push([i, err, r]));
    await new Promise((resolve) => setImmediate(resolve));
  } finally {
    NativePool.prototype.submit = original;
  }
  assert.deepEqual(got, [0, 1, 2].map((i) => [i, 'cannot enqueue work: engine unreachable', undefined]));
  const r = await new Promise((resolve) => cc.enqueue({ n: 1 }, (err, v) => resolve([err, v])));
  assert.equal(r[0], null);
  await new Promise((resolve) => cc.exit(resolve));
});
