// Closed pools are garbage-collected (issue 15, point 8): once a Pool is closed or a
// ComputeCluster has exited, every worker is reaped and nothing references it, the native side
// holds nothing that keeps it alive (the drain callback's threadsafe function and the direct
// reads' reference are released).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runNode } from './pool-helpers.mjs';

const COUNT = 50;

for (const kind of ['pool', 'cc']) {
  const label = kind === 'pool' ? 'Pools' : 'ComputeClusters';
  test(`closed ${label} are garbage-collected (${COUNT}, half of them after running a job)`, { timeout: 90000 }, async () => {
    const r = await runNode('host-gc.js', {
      nodeArgs: ['--expose-gc'], args: [kind, String(COUNT)], timeout: 80000,
    });
    assert.equal(r.code, 0, r.stderr);
    const m = /^finalized (\d+) of (\d+)$/.exec(r.lines.at(-1) ?? '');
    assert.ok(m, r.stdout + r.stderr);
    // Most, not all: a collection is the GC's choice; before the fix, none ever was.
    assert.ok(Number(m[1]) >= COUNT * 0.8, r.lines.at(-1));
  });
}
