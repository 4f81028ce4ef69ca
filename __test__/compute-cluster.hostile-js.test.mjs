// Hostile input on the JS side of ComputeCluster (issue 15): max_processes the engine cannot
// count, one tick of arguments too large to join, and closed clusters that must be collectable.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ComputeCluster, fixture } from './cc-helpers.mjs';

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
