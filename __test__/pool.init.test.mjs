// A worker module's init(initData): run once per worker, before its first job; initData is
// also readable through require('comrade-pool/worker').initData.
import assert from 'node:assert/strict';
import test from 'node:test';
import { TEST, entries, fixture, openPool } from './pool-helpers.mjs';

test('init runs once per worker, before its first job, with initData', TEST, async (t) => {
  const initData = { salt: 'pepper', n: [1, 2, 3], nested: { ok: true }, text: 'ünï' };
  const { pool, log } = openPool(t, { module: fixture('init.js'), maxWorkers: 2, initData });
  // Eight jobs at once: the pool grows to both workers, each runs several jobs.
  const results = await Promise.all(Array.from({ length: 8 }, () => pool.call('info', 20)));
  const pids = new Set(results.map((r) => r.pid));
  assert.equal(pids.size, 2, 'both workers ran jobs');
  assert.deepEqual(entries(log, 'workerSpawn').map((e) => e[1]).sort(), [...pids].sort());
  for (const r of results) {
    assert.equal(r.inits, 1, `worker ${r.pid} ran init once`);
    assert.deepEqual(r.initArg, initData);
    assert.deepEqual(r.apiInitData, initData);
    assert.equal(r.isWorker, true);
    assert.deepEqual(r.jobsBeforeInit, [], 'no job started before init finished');
  }
  // Later jobs on the same workers: still one init each.
  const again = await Promise.all([pool.call('info', 1), pool.call('info', 1)]);
  for (const r of again) assert.equal(r.inits, 1);
});

test('without initData, init receives null', TEST, async (t) => {
  const { pool } = openPool(t, { module: fixture('init.js'), maxWorkers: 1 });
  const r = await pool.call('info', 0);
  assert.equal(r.inits, 1);
  assert.equal(r.initArg, null);
  assert.equal(r.apiInitData, null);
});

test("initData without an init(): require('comrade-pool/worker').initData", TEST, async (t) => {
  const initData = ['a', { b: 2 }];
  const { pool } = openPool(t, { module: fixture('init-data-only.js'), maxWorkers: 1, initData });
  const r = await pool.run(null);
  assert.deepEqual(r.now, initData);
});

test('each replacement worker runs init again with the same initData', TEST, async (t) => {
  const initData = { gen: 1 };
  const { pool } = openPool(t, { module: fixture('init.js'), maxWorkers: 1, initData });
  const first = await pool.call('info', 0);
  process.kill(first.pid, 'SIGKILL');
  // The next job gets a new worker (the dead one may still be reported as the pool learns of it).
  let second;
  do {
    second = await pool.call('info', 0).catch(() => null);
  } while (second === null || second.pid === first.pid);
  assert.notEqual(second.pid, first.pid);
  assert.equal(second.inits, 1);
  assert.deepEqual(second.apiInitData, initData);
});
