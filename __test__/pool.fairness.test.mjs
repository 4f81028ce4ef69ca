// Requestor groups (issue 10, item 7). With fairness: 'round-robin', free slots go to the
// waiting groups in turn, so one group's big batch cannot starve another group's single job;
// with groupAffinity, a worker takes the group it last served first. Proved by the order in
// which results arrive, never by timing.
import assert from 'node:assert/strict';
import test from 'node:test';
import {
  TEST, fixture, openPool, rejectsWith, waitFor, Pool,
} from './pool-helpers.mjs';

const mod = fixture('groups.js');

// One warm worker held by a gate job; returns the pool and a function that opens the gate.
async function gated(t, options) {
  const { pool } = openPool(t, { module: mod, maxWorkers: 1, ...options });
  const pid = await pool.call('pid');
  const gate = pool.exec('gate', ['gate'], { group: 'A' });
  return { pool, open: () => process.kill(pid, 'SIGUSR2'), gate };
}

// Group A's batch of `n` jobs, then group B's single job, all waiting behind the gate: how many
// of A's jobs had completed when B's did.
async function batchThenSingle(pool, open, n) {
  let doneA = 0;
  const batch = [];
  for (let i = 0; i < n; i++) batch.push(pool.exec('tag', [i], { group: 'A' }).then(() => { doneA++; }));
  let doneAWhenB = -1;
  const single = pool.run('b', { name: 'tag', group: 'B' }).then(() => { doneAWhenB = doneA; });
  await waitFor(() => pool.stats().queued === n + 1, 'every job to wait');
  open();
  await single;
  await Promise.all(batch);
  return doneAWhenB;
}

test("round-robin: a single job of group B completes while group A's 10k batch waits", TEST, async (t) => {
  const { pool, open, gate } = await gated(t, { fairness: 'round-robin' });
  const doneAWhenB = await batchThenSingle(pool, open, 10000);
  await gate;
  // A's turn came first (it started waiting first), then B's.
  assert.ok(doneAWhenB <= 1, `${doneAWhenB} of A's jobs completed before B's`);
});

test("fifo (the default): group B's job waits for all of A's batch", TEST, async (t) => {
  const { pool, open, gate } = await gated(t, {});
  assert.equal(await batchThenSingle(pool, open, 200), 200);
  await gate;
});

// Two warm workers: worker G holds group G's gate job, worker H group H's. Then group H's job
// h2 and group G's job g2 wait, in that order, and worker G is let go: the order in which the
// jobs complete, and the workers that ran them.
async function affinityRun(t, groupAffinity) {
  const { pool } = openPool(t, {
    module: mod, minWorkers: 2, maxWorkers: 2, concurrency: 1, groupAffinity,
  });
  await waitFor(() => pool.pids.length === 2, 'two workers');
  const pids = {};
  const done = [];
  const track = (p) => p.then(([tag, pid]) => done.push([tag, pid]));
  const g1 = track(pool.exec('gate', ['g1'], { group: 'G', onProgress: (pid) => { pids.G = pid; } }));
  const h1 = track(pool.exec('gate', ['h1'], { group: 'H', onProgress: (pid) => { pids.H = pid; } }));
  await waitFor(() => pids.G !== undefined && pids.H !== undefined, 'both gates to hold a worker');
  assert.notEqual(pids.G, pids.H);
  const h2 = track(pool.exec('tag', ['h2'], { group: 'H' }));
  const g2 = track(pool.exec('tag', ['g2'], { group: 'G' }));
  await waitFor(() => pool.stats().queued === 2, 'h2 and g2 to wait');
  process.kill(pids.G, 'SIGUSR2');
  await Promise.all([g1, h2, g2]);
  process.kill(pids.H, 'SIGUSR2');
  await h1;
  return { done: done.map(([tag, pid]) => [tag, pid === pids.G ? 'G' : 'H']) };
}

test('groupAffinity: the worker that served group G takes G\'s waiting job before the head of the queue', TEST, async (t) => {
  const { done } = await affinityRun(t, true);
  assert.deepEqual(done, [['g1', 'G'], ['g2', 'G'], ['h2', 'G'], ['h1', 'H']]);
});

test('without groupAffinity the freed worker takes the head of the queue', TEST, async (t) => {
  const { done } = await affinityRun(t, false);
  assert.deepEqual(done, [['g1', 'G'], ['h2', 'G'], ['g2', 'G'], ['h1', 'H']]);
});

test('bad group, fairness, groupAffinity: ERR_INVALID_ARGUMENT per job, ERR_INVALID_OPTION for the pool', TEST, async (t) => {
  const { pool } = openPool(t, { module: mod, maxWorkers: 1 });
  for (const group of ['', 5, null, {}]) {
    await rejectsWith(pool.exec('tag', ['x'], { group }), 'ERR_INVALID_ARGUMENT');
    await rejectsWith(pool.run('x', { name: 'tag', group }), 'ERR_INVALID_ARGUMENT');
  }
  for (const options of [{ fairness: 'fair' }, { fairness: 1 }, { groupAffinity: 'yes' }]) {
    assert.throws(() => new Pool({ module: mod, ...options }), { code: 'ERR_INVALID_OPTION' },
      JSON.stringify(options));
  }
  assert.deepEqual(await pool.exec('tag', ['ok'], { group: 'g' }), ['ok', await pool.call('pid')]);
});
