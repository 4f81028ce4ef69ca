// Per-worker concurrency: with `concurrency: n`, up to n jobs run at once on one worker; with
// 1, jobs on a worker never overlap. Proved by ordering (barriers), never by timing.
import assert from 'node:assert/strict';
import test from 'node:test';
import { TEST, fixture, openPool } from './pool-helpers.mjs';

const mod = fixture('concurrency.js');

test('concurrency 4 on one worker: 4 jobs overlap (each waits until all 4 have started)', TEST, async (t) => {
  const { pool, spawned } = openPool(t, { module: mod, maxWorkers: 1, concurrency: 4 });
  assert.equal(pool.concurrency, 4);
  assert.equal(pool.maxWorkers, 1);
  // Each barrier job only returns once 4 jobs run together on its worker: without overlap
  // this would never settle.
  const results = await Promise.all(['a', 'b', 'c', 'd'].map((tag) => pool.call('barrier', 4, tag)));
  assert.deepEqual(results.map((r) => r.tag), ['a', 'b', 'c', 'd']);
  assert.equal(new Set(results.map((r) => r.pid)).size, 1, 'all on the one worker');
  const stats = await pool.call('stats');
  assert.equal(stats.max, 4);
  assert.equal(stats.running, 0);
  assert.equal(spawned.length, 1);
});

test('concurrency 1 (the default): jobs on a worker never overlap and run in order', TEST, async (t) => {
  const { pool } = openPool(t, { module: mod, maxWorkers: 1 });
  assert.equal(pool.concurrency, 1);
  const done = [];
  await Promise.all(['a', 'b', 'c', 'd', 'e'].map((tag) => pool.call('hold', 5, tag).then((r) => done.push(r.tag))));
  assert.deepEqual(done, ['a', 'b', 'c', 'd', 'e']);
  const stats = await pool.call('stats');
  assert.equal(stats.max, 1, 'never more than one job at once');
});

test('concurrency 2 on one worker: never more than 2 jobs at once', TEST, async (t) => {
  const { pool } = openPool(t, { module: mod, maxWorkers: 1, concurrency: 2 });
  // Barriers of 2: they complete pair by pair; a third job never joins a running pair.
  const results = await Promise.all(Array.from({ length: 6 }, (_, i) => pool.call('barrier', 2, i)));
  assert.deepEqual(results.map((r) => r.tag), [0, 1, 2, 3, 4, 5]);
  const holds = await Promise.all(Array.from({ length: 6 }, (_, i) => pool.call('hold', 2, i)));
  assert.equal(holds.length, 6);
  // Each job got its own result, all on the one worker.
  assert.deepEqual(holds.map((r) => r.tag), [0, 1, 2, 3, 4, 5]);
  assert.equal(new Set([...results, ...holds].map((r) => r.pid)).size, 1);
  const stats = await pool.call('stats');
  assert.equal(stats.max, 2);
  assert.equal(stats.running, 0, 'every job finished before its result came back');
});

// spawnDelay 0: the pool grows as soon as the work needs a second worker, not 100 ms later
// (with the default, whether the first worker finished the jobs by then depends on the load).
test('two workers with concurrency 2: the pool grows to both, each holds 2 jobs at once', TEST, async (t) => {
  const { pool, spawned } = openPool(t, { module: mod, maxWorkers: 2, concurrency: 2, spawnDelay: 0 });
  const results = await Promise.all(Array.from({ length: 4 }, (_, i) => pool.call('barrier', 2, i)));
  const byPid = new Map();
  for (const r of results) byPid.set(r.pid, (byPid.get(r.pid) || 0) + 1);
  assert.equal(byPid.size, 2, 'both workers ran jobs');
  assert.deepEqual([...byPid.values()], [2, 2]);
  assert.equal(spawned.length, 2);
});
